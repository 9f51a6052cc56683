"""Distributed engines on one machine: two MultiWorkerMirroredStrategy workers (TF_CONFIG, 127.0.0.1, free
ports) train one model that matches single-worker training, and Transform on Beam's multi-processing
DirectRunner writes what the single-process run writes."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf import contract
from mean_tf.transform import preprocessing
from mean_tf.config import MEANConfig
from tiny_dataset import write_tiny_dataset

SMALL = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
             batch_size=64, epochs=3, patience=3, embedding_dim=2)

# One training run, as `mean-tf train` / the Trainer do it: protocol.fit picks the strategy from TF_CONFIG.
WORKER = r"""
import json, sys
import numpy as np
import mean_tf
import tensorflow as tf
import tensorflow_transform as tft
from mean_tf.training import protocol
from mean_tf.config import MEANConfig
args = json.loads(sys.argv[1])
config = MEANConfig.from_dict(args["config"])
result = protocol.fit("mean", config, args["transform_dir"], args["train"], args["eval"], verbose=0)
spec = tft.TFTransformOutput(args["transform_dir"]).transformed_feature_spec()
ds = protocol.make_dataset(args["test"], spec, list(config.labels), 64)
pred = protocol.predict_money(result.model, ds, result.label_transform)
weights = float(sum(np.sum(np.abs(w)) for w in result.model.get_weights()))
with open(args["out"], "w") as f:
    json.dump({"history": result.history, "pred": pred[:, 0].tolist(), "weights": weights,
               "multi_worker": isinstance(result.model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy),
               "replicas": result.model.distribute_strategy.num_replicas_in_sync}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start(args, out, tf_config=None):
    payload = json.dumps({**args, "out": str(out)})
    return subprocess.Popen([sys.executable, "-c", WORKER, payload], env=_worker_env(tf_config),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, out, timeout=240):
    log, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    manifest = write_tiny_dataset(root / "data", rows=400)
    config = MEANConfig(**SMALL)
    single = preprocessing.materialize(manifest, config, str(root / "single"))
    return root, manifest, config, single


def test_two_multi_worker_mirrored_workers_train_one_model_matching_single_worker(data):
    root, _, config, done = data
    args = {"config": config.to_dict(), "transform_dir": done.transform_dir, "train": done.files("train"),
            "eval": done.files("eval"), "test": done.files("test")}
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [_start(args, root / f"worker{i}.json", {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    single = _finish(_start(args, root / "single.json"), root / "single.json")
    multi = [_finish(w, root / f"worker{i}.json") for i, w in enumerate(workers)]

    assert not single["multi_worker"] and single["replicas"] == 1
    assert all(m["multi_worker"] and m["replicas"] == 2 for m in multi)
    # One model: both workers end with the same weights and predict the same values.
    assert multi[0]["weights"] == pytest.approx(multi[1]["weights"], rel=1e-5)
    np.testing.assert_allclose(multi[0]["pred"], multi[1]["pred"], rtol=1e-4, atol=1e-4)
    # ... and it matches single-worker training within noise: same global batches and steps, only the
    # reduction order, per-worker batch-norm statistics and float rounding differ.
    assert len(multi[0]["history"]["loss"]) == len(single["history"]["loss"])
    np.testing.assert_allclose(multi[0]["history"]["val_loss"], single["history"]["val_loss"], rtol=0.05)
    p_multi, p_single = np.asarray(multi[0]["pred"]), np.asarray(single["pred"])
    assert np.corrcoef(np.log1p(p_multi), np.log1p(p_single))[0, 1] > 0.99


def _transformed_rows(done) -> np.ndarray:
    """Every transformed example as one row of numbers (features in name order), rows sorted: Beam's output
    order is not part of the contract. Each column is the same monotone function of the raw values in both
    runs (z-scores differ only in their last digits), so the sorted order is the same."""
    spec = done.tf_transform_output().transformed_feature_spec()
    rows = []
    for record in tf.data.TFRecordDataset(done.files("train") + done.files("eval") + done.files("test"),
                                          compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, spec)
        rows.append(np.concatenate([np.reshape(parsed[k].numpy(), [-1]).astype(np.float64) for k in sorted(parsed)]))
    rows = np.asarray(rows)
    return rows[np.lexsort(rows.T[::-1])]


def test_transform_on_multi_processing_direct_runner_equals_single_process(data):
    root, manifest, config, single = data
    multi = preprocessing.materialize(manifest, config, str(root / "multi"), beam_pipeline_args=[
        "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert len(single.files("train")) >= 1 and len(multi.files("train")) >= 1
    # Equal up to float rounding: the workers combine partial means and variances in another order.
    np.testing.assert_allclose(_transformed_rows(multi), _transformed_rows(single), rtol=1e-5, atol=1e-4)
    vocab = contract.VOCAB_PREFIX + "country"
    assert (multi.tf_transform_output().vocabulary_by_name(vocab)
            == single.tf_transform_output().vocabulary_by_name(vocab))
