"""mean_tf.training on a tiny materialized dataset: datasets, fit with early stopping, money predictions."""
import json

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf import training
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from tiny_dataset import materialized_tiny

SMALL = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
             ziln_units=(8,), batch_size=64, epochs=3, patience=1, embedding_dim=2)


@pytest.fixture(scope="module")
def materialized():
    return materialized_tiny()


def test_dataset_batches_inputs_and_targets_deterministically(materialized):
    _, done = materialized
    spec = done.tf_transform_output().transformed_feature_spec()

    def first_ids(seed):
        ds = training.make_dataset(done.files("train"), spec, ["cltv_365", "cltv_30"], 32, shuffle=True, seed=seed)
        return next(iter(ds))[1]["raw"].numpy()

    inputs, targets = next(iter(training.make_dataset(done.files("train"), spec, ["cltv_365", "cltv_30"], 32)))
    assert sorted(inputs) == ["cat__country", "numeric"] and inputs["numeric"].shape == (32, 4)
    assert targets["raw"].shape == (32, 2) and targets["bucket"].dtype == tf.int64
    assert np.all(targets["raw"][:, 0] >= targets["raw"][:, 1])  # cltv_365 >= cltv_30, stacked in label order
    np.testing.assert_array_equal(first_ids(1), first_ids(1))
    assert not np.array_equal(first_ids(1), first_ids(2))


def test_fit_mean_early_stops_restores_best_and_predicts_money(materialized, tmp_path):
    _, done = materialized
    config = MEANConfig(**SMALL)
    result = training.fit("mean", config, done.out_dir, done.files("train"), done.files("eval"),
                          log_dir=str(tmp_path / "logs"), verbose=0)
    val = result.history["val_loss"]
    assert 1 <= len(val) <= 3 and result.best_epoch == int(np.argmin(val))
    assert result.config.categorical_vocab_sizes == {"country": 4}  # 3 countries + 1 OOV bucket
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))

    spec = done.tf_transform_output().transformed_feature_spec()
    test = training.make_dataset(done.files("test"), spec, result.config.labels, 16)
    predictions = training.predict_money(result.model, test, result.label_transform)
    truth = training.dataset_targets(test)
    assert predictions.shape == truth.shape == (30, 1)
    assert np.all(np.isfinite(predictions)) and np.all(predictions >= 0)
    # the best epoch's weights are the model's: its eval loss equals the best val_loss
    evaluation = training.make_dataset(done.files("eval"), spec, result.config.labels, 64)
    assert result.model.evaluate(evaluation, verbose=0, return_dict=True)["loss"] == pytest.approx(min(val), rel=1e-4)


def test_fit_refuses_a_label_scaling_the_transform_did_not_use(materialized):
    _, done = materialized
    with pytest.raises(MeanTFError, match="label_scaling"):
        training.fit("mean", MEANConfig(**{**SMALL, "label_scaling": "log1p"}), done.out_dir, done.files("train"),
                     done.files("eval"), verbose=0)
    with pytest.raises(MeanTFError, match="classical"):
        training.fit("last_period", MEANConfig(), done.out_dir, done.files("train"), done.files("eval"))


def test_classical_models_fit_on_raw_splits(materialized):
    manifest, _ = materialized
    model = training.fit_classical("last_period", MEANConfig(labels=("cltv_30",)), manifest)
    predictions = training.predict_classical(model, manifest, "test")
    assert predictions.shape == (30, 1) and np.all(predictions >= 0)


def test_strategy_is_multi_worker_only_with_a_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert training.strategy_from_env() is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", lambda: "multi-worker")
    assert training.strategy_from_env() == "multi-worker"
