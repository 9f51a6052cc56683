"""The whole TFX pipeline, locally, on the shipped example transaction log, the way a user runs it.

`mean-tf data transactions` turns `data/example_transactions.csv` (400 Online Retail II customers, one row
per order) into a training dataset and, at the log's last day, a scoring dataset; `mean-tf pipeline run`
then runs three times in one output folder: the first run executes every component, blesses, pushes and
scores the scoring dataset (BulkInferrer); the second takes ExampleGen ... Trainer from the cache, and
only the Evaluator reruns, now against the first run's blessed model as baseline (and Pusher after it);
the third raises the Gini floor above 1, so the Evaluator refuses the blessing and Pusher pushes nothing.
`mean-tf score` scores the scoring dataset with the pushed model.
"""
import contextlib
import io
import os

import numpy as np
import pandas as pd
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf import contract
from mean_tf import cli
from mean_tf.evaluation import metrics
from mean_tf.serving import export
from mean_tf.tfx_modules import tfma_metrics
from mean_tf.data import online_retail, read_manifest
from mean_tf.data.manifest import read_split
from pipeline import local_runner

SMALL_MODEL = ["--set", "shared_units=[32,16]", "--set", "expert_units=16", "--set", "attention_units=16",
               "--set", "dam_shared_units=16", "--set", "dam_units=[16]", "--set", "embedding_dim=4",
               "--set", "batch_size=256", "--set", "epochs=2"]
NODES = {"ImportExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator", "ValidationGate", "Transform",
         "Trainer", "latest_blessed_model_resolver", "EvaluationSchema", "Evaluator", "Pusher"}
SCORING_NODES = {"ScoreExampleGen", "BulkInferrer"}  # the first run scores a scoring dataset (--score)
# (user data: the schema is inferred and curated; the bundled datasets use their bundled schema instead)
LOG_COLUMNS = ["--customer", "customer_id", "--time", "time", "--amount", "amount", "--quantity", "quantity",
               "--categorical", "country"]


def transactions_cli(root, *extra):
    """`mean-tf data transactions` on the shipped example log, in-process."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["data", "transactions", "--input", str(online_retail.example_log_path()), *LOG_COLUMNS,
                         *extra]) == 0


@pytest.fixture(scope="module")
def log_end():
    return pd.read_csv(online_retail.example_log_path(), parse_dates=["time"])["time"].max().normalize()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Customer x monthly-cutoff snapshots of the example log (2010-01-01 .. 2010-12-01)."""
    root = tmp_path_factory.mktemp("pipeline_e2e")
    transactions_cli(root, "--cutoffs", ",".join(online_retail.DEFAULT_CUTOFFS), "--out", str(root / "data"))
    return read_manifest(root / "data"), root


@pytest.fixture(scope="module")
def scoring_dataset(dataset, log_end):
    """The same customers' features at the log's last day, without labels."""
    _, root = dataset
    transactions_cli(root, "--score-date", str(log_end.date()), "--out", str(root / "score"))
    return read_manifest(root / "score")


def run_cli(data, out, *extra) -> str:
    """`mean-tf pipeline run` in-process; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["pipeline", "run", "--data", str(data), "--out", str(out), "--gini-floor", "0.0",
                         *SMALL_MODEL, *extra])
    assert code == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def first_run(dataset, scoring_dataset):
    manifest, root = dataset
    out = root / "out"
    printed = run_cli(manifest.root, out, "--score", scoring_dataset.root)
    return manifest, out, local_runner.summarize(str(out)), printed


def test_every_component_runs_and_the_model_is_blessed_and_pushed(first_run):
    _, _, summary, printed = first_run
    assert set(summary.executions) == NODES | SCORING_NODES
    assert all(state == "COMPLETE" for state in summary.executions.values()), summary.executions
    assert summary.blessed is True
    assert summary.pushed_model and os.path.isfile(os.path.join(summary.pushed_model, "saved_model.pb"))
    assert {"Overall", "country:United Kingdom", "active_90d:0", "active_90d:1"} <= set(summary.metrics)
    assert "normalized_gini" in printed and "blessed: yes" in printed and summary.pushed_model in printed


def test_pushed_model_answers_through_tf_serving_loader_and_matches_the_evaluator(first_run):
    manifest, _, summary, _ = first_run
    records = [r.numpy() for r in tf.data.TFRecordDataset(manifest.files("test"), compression_type="GZIP")]
    answer = export.predict_serialized(summary.pushed_model, records)
    predictions = answer["cltv"].astype(np.float64)
    assert predictions.shape == (len(records),) and np.all(predictions >= 0)
    assert answer["bucket_probs"].shape == (len(records), 5)
    y = read_split(manifest, "test")["cltv_365"].to_numpy(dtype=np.float64)
    order = tfma_metrics.scoring_order(y, predictions)  # the order the TFMA metrics score pairs in
    expected = metrics.evaluate(y[order], predictions[order])
    overall = summary.metrics["Overall"]
    assert overall["example_count"] == len(records)
    for name in contract.METRIC_NAMES + contract.CALIBRATION_NAMES:
        np.testing.assert_allclose(overall[name], expected[name], rtol=1e-5, atol=1e-9, err_msg=name)


def test_bulk_inferrer_scores_the_scoring_dataset_with_the_served_signature(first_run, scoring_dataset):
    from tensorflow_serving.apis import prediction_log_pb2

    _, _, summary, printed = first_run
    assert summary.inference_uri and "scored (BulkInferrer)" in printed
    files = tf.io.gfile.glob(os.path.join(summary.inference_uri, "*", "*.gz")) or \
        tf.io.gfile.glob(os.path.join(summary.inference_uri, "*.gz"))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(logs) == scoring_dataset.row_counts["score"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(scoring_dataset.files("score"), compression_type="GZIP")]
    served = export.predict_serialized(summary.pushed_model, records)
    by_input = {}
    for log in logs:
        example = log.predict_log.request.inputs["examples"].string_val[0]
        by_input[example] = tf.make_ndarray(log.predict_log.response.outputs["cltv"]).reshape(-1)[0]
    got = np.array([by_input[r] for r in records])
    np.testing.assert_allclose(got, served["cltv"], rtol=1e-4)  # float32, other batch sizes (1.7e-5 seen)


def test_second_run_is_served_from_the_cache_up_to_the_trainer(first_run):
    manifest, out, first, _ = first_run
    run_cli(manifest.root, out)
    summary = local_runner.summarize(str(out))
    # The resolver now finds run 1's blessed model: a new baseline input, so the Evaluator reruns.
    rerun = {"latest_blessed_model_resolver", "Evaluator", "Pusher"}
    assert {node for node, state in summary.executions.items() if state != "CACHED"} == rerun, summary.executions
    assert summary.model_uri == first.model_uri
    overall = summary.metrics["Overall"]
    for name in ("example_count", *contract.METRIC_NAMES, *contract.CALIBRATION_NAMES):
        np.testing.assert_allclose(overall[name], first.metrics["Overall"][name], rtol=1e-6, err_msg=name)
    assert overall["normalized_gini_diff"] == pytest.approx(0.0, abs=1e-6)  # compared with itself as baseline
    assert summary.blessed is True


def test_gini_floor_above_one_blocks_the_blessing_and_the_push(first_run):
    manifest, out, first, _ = first_run
    pushed_before = sorted(os.listdir(os.path.dirname(first.pushed_model)))
    assert "blessed: no" in run_cli(manifest.root, out, "--gini-floor", "1.01")
    summary = local_runner.summarize(str(out))
    assert summary.executions["Evaluator"] == "COMPLETE" and summary.executions["Trainer"] == "CACHED"
    assert summary.blessed is False and summary.pushed_model is None
    assert sorted(os.listdir(os.path.dirname(first.pushed_model))) == pushed_before


def test_score_cli_ranks_todays_customers_with_the_pushed_model(first_run, scoring_dataset, log_end, tmp_path):
    _, _, summary, _ = first_run
    out = tmp_path / "today.csv"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli.main(["score", "--model", summary.pushed_model, "--data", scoring_dataset.root,
                         "--out", str(out)]) == 0
    assert "scored" in printed.getvalue()
    table = pd.read_csv(out, dtype={"customer_id": str})
    log = pd.read_csv(online_retail.example_log_path(), dtype={"customer_id": str}, parse_dates=["time"])
    assert set(table["cutoff"]) == {str(log_end.date())}
    assert set(table["customer_id"]) == set(log.loc[log["time"] < log_end, "customer_id"])
    records = [r.numpy() for r in tf.data.TFRecordDataset(scoring_dataset.files("score"), compression_type="GZIP")]
    np.testing.assert_allclose(table["cltv"], export.predict_serialized(summary.pushed_model, records)["cltv"],
                               rtol=1e-4)  # float32, other batch sizes
    assert table["target"].sum() == metrics.top_count(len(table), 0.1)
    assert table.loc[table["target"], "cltv"].min() >= table.loc[~table["target"], "cltv"].max()


def test_shipped_example_log_is_what_its_command_writes(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["data", "example-log", "--out", str(tmp_path / "log.csv")]) == 0
    assert (tmp_path / "log.csv").read_bytes() == online_retail.example_log_path().read_bytes()
