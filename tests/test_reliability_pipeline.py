"""Reliability of the TFX pipeline, run with `mean-tf pipeline run` in one output folder, on a small slice of
the bundled Online Retail II data (the real builder, so the checked-in schema applies):

1. a Trainer that diverges (learning rate 1e30) fails the run with one `error:` line; nothing is pushed;
2. the rerun with a sane learning rate takes every component up to Transform from the cache, trains,
   blesses and pushes;
3. a deliberately degraded model (train labels shuffled) is trained next: the Evaluator does not bless it,
   Pusher pushes nothing, and the serving folder still holds the good model only;
and the pushed model's serving signature: a missing feature fails the request naming it, a malformed
example is an error of that request, and the model goes on answering. Data with anomalies (a feature
missing, a feature of another type, an out-of-domain value) is checked at the validation gate itself
(ExampleValidator's anomalies of that data, the gate's error naming each one, `mean-tf pipeline run`'s
error line) and by the wiring: Transform reads only the gate's output. (A whole pipeline run on the bad
data would add a minute of Beam jobs to show the same.)
"""
import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from mean_tf import contract
from mean_tf import cli
from mean_tf.data import manifest as mf
from mean_tf.data import online_retail
from pipeline import components, local_runner
from pipeline import schema as schemas

CUSTOMERS = 250
SMALL_MODEL = ["--set", "shared_units=[16,8]", "--set", "expert_units=8", "--set", "attention_units=8",
               "--set", "dam_shared_units=8", "--set", "dam_units=[8]", "--set", "embedding_dim=2",
               "--set", "batch_size=128", "--set", "epochs=3"]
UPSTREAM = {"ImportExampleGen", "StatisticsGen", "BundledSchema", "ExampleValidator", "ValidationGate", "Transform"}


def _frame(manifest):
    return pd.concat([mf.read_split(manifest, s).assign(split=s) for s in contract.SPLITS], ignore_index=True)


def _rewrite(frame, manifest, out):
    """The frame as a dataset folder with the manifest's name and features (so the bundled schema applies)."""
    return mf.write_dataset(frame, out, dataclasses.replace(manifest, splits={}, row_counts={}, zero_shares={}))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """good: the builder's output; shuffled: the same with the train labels permuted across rows."""
    root = tmp_path_factory.mktemp("reliability_pipeline")
    lines = pd.read_parquet(online_retail.default_input())
    customers = np.random.default_rng(1).choice(np.sort(lines["customer_id"].dropna().unique()), CUSTOMERS,
                                                replace=False)
    lines[lines["customer_id"].isin(customers)].to_parquet(root / "lines.parquet")
    good = online_retail.build(root / "good", input_path=root / "lines.parquet")
    frame = _frame(good)

    shuffled = frame.copy()
    train = np.flatnonzero(shuffled["split"].to_numpy() == "train")
    permuted = np.random.default_rng(0).permutation(train)
    shuffled.loc[train, list(good.labels)] = shuffled.loc[permuted, list(good.labels)].to_numpy()
    degraded = _rewrite(shuffled, good, root / "shuffled")
    return good, degraded, frame, root


def _one_error_line(err):
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def runs(datasets):
    """The three runs, in order, in one output folder: (code, stdout, stderr, summary, served versions)."""
    good, degraded, _, root = datasets
    out = root / "out"
    capsys = _Capture()
    results = {}
    for name, data, extra in (("diverged", good, ["--set", "learning_rate=1e30"]), ("good", good, []),
                              ("degraded", degraded, []), ("again", good, [])):
        with capsys:
            code = cli.main(["pipeline", "run", "--data", str(data.root), "--out", str(out),
                             "--gini-floor", "0.0", *SMALL_MODEL, *extra])
        summary = local_runner.summarize(str(out))
        results[name] = (code, capsys.out, capsys.err, summary, sorted(_serving_versions(out)))
    return results, out


class _Capture:
    """Captures stdout and stderr of an in-process CLI call (a module-scoped capsys)."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


def _serving_versions(out):
    serving = os.path.join(out, "serving_model")
    return os.listdir(serving) if os.path.isdir(serving) else []


def test_a_diverged_trainer_fails_the_run_and_pushes_nothing(runs):
    (code, _, err, summary, versions) = runs[0]["diverged"]
    assert code == 2
    assert "diverged" in _one_error_line(err) and "learning_rate" in _one_error_line(err)
    assert summary.executions["Trainer"] == "FAILED"
    assert all(summary.executions[node] == "COMPLETE" for node in UPSTREAM), summary.executions
    assert "Pusher" not in summary.executions and versions == []


def test_the_rerun_after_the_failure_reuses_the_cached_upstream_outputs(runs):
    (code, printed, err, summary, versions) = runs[0]["good"]
    assert code == 0, err[-3000:]
    assert all(summary.executions[node] == "CACHED" for node in UPSTREAM), summary.executions
    assert summary.executions["Trainer"] == "COMPLETE"
    assert summary.blessed is True and "blessed: yes" in printed and len(versions) == 1
    assert summary.metrics["Overall"]["normalized_gini"] > 0.3


def test_a_cached_rerun_pushes_the_same_model_no_second_time(runs):
    (code, printed, err, summary, versions) = runs[0]["again"]
    assert code == 0, err[-3000:]
    assert summary.executions["Trainer"] == "CACHED" and summary.blessed is True
    assert versions == runs[0]["good"][4]  # still the one version of the good run
    assert summary.pushed_model is None and summary.already_served.endswith(versions[0])
    assert f"pushed model: none (identical to the served version {summary.already_served})" in printed


def test_a_degraded_model_is_not_blessed_and_the_good_model_stays_served(runs):
    results, out = runs
    good_summary, good_versions = results["good"][3], results["good"][4]
    (code, printed, err, summary, versions) = results["degraded"]
    assert code == 0, err[-3000:]
    assert summary.executions["Trainer"] == "COMPLETE" and summary.model_uri != good_summary.model_uri
    gini = summary.metrics["Overall"]["normalized_gini"]
    assert gini < good_summary.metrics["Overall"]["normalized_gini"] - 0.1  # it is worse
    assert summary.blessed is False and summary.pushed_model is None and "blessed: no" in printed
    change = summary.metrics["Overall"]["normalized_gini_diff"]  # TFMA's change against the last blessed model
    assert change == pytest.approx(gini - good_summary.metrics["Overall"]["normalized_gini"], abs=1e-4)
    assert f"change {change:+.4f}, largest drop allowed 0.01" in printed
    assert versions == good_versions  # nothing new in the serving folder: the good model is still served
    served = os.path.join(out, "serving_model", versions[0])
    assert served == good_summary.pushed_model and os.path.isfile(os.path.join(served, "saved_model.pb"))


def _gate_on(frame, tmp_path):
    """ExampleValidator's anomalies of `frame` (eval split) against the bundled schema, through ValidationGate."""
    schema = schemas.read_schema(schemas.bundled_schema_file(online_retail.NAME))
    schema_artifact, anomalies, validated = (standard_artifacts.Schema(), standard_artifacts.ExampleAnomalies(),
                                             standard_artifacts.Schema())
    for artifact, name in ((schema_artifact, "schema"), (anomalies, "anomalies"), (validated, "validated")):
        artifact.uri = str(tmp_path / name)
        os.makedirs(artifact.uri)
    schemas.write_schema(schema, os.path.join(schema_artifact.uri, components.SCHEMA_FILE))
    anomalies.split_names = artifact_utils.encode_split_names(["eval"])
    os.makedirs(os.path.join(anomalies.uri, "Split-eval"))
    found = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema)
    with open(os.path.join(anomalies.uri, "Split-eval", components.ANOMALIES_FILE), "wb") as f:
        f.write(found.SerializeToString())
    components.ValidationGate.test_call(anomalies=anomalies, schema=schema_artifact, validated_schema=validated)
    return validated


def test_anomalies_stop_the_run_at_the_gate_before_transform_naming_each_one(datasets, tmp_path, monkeypatch, capsys):
    good, _, frame, _ = datasets
    columns = [c for c in frame.columns if c != "split"]
    eval_rows = frame[frame["split"] == "eval"][columns].reset_index(drop=True)
    assert os.listdir(_gate_on(eval_rows, tmp_path / "clean").uri)  # the good data passes the gate

    odd = eval_rows.drop(columns=["weekend_order_share"])  # a feature missing
    odd["cutoff_month"] = "13"  # out of the schema's domain
    odd["n_orders"] = odd["n_orders"].astype(int).astype(str)  # schema drift: text instead of a number
    with pytest.raises(components.DataValidationError) as stopped:
        _gate_on(odd, tmp_path / "odd")
    message = str(stopped.value)
    assert message.startswith("data validation failed, training stopped: ")
    for feature in ("weekend_order_share", "cutoff_month", "n_orders"):
        assert f"split 'eval': feature {feature!r}" in message, message

    # Nothing downstream can run on data that failed: Transform (and so Trainer) reads the gate's schema.
    pipeline = local_runner.build(good.root, str(tmp_path / "out"))
    nodes = {node.id: node for node in pipeline.components}
    assert nodes["Transform"].inputs["schema"].producer_component_id == "ValidationGate"
    assert nodes["Trainer"].inputs["examples"].producer_component_id == "Transform"

    # ... and `mean-tf pipeline run` reports the gate's message as its one error line, exit code 2.
    def stopped_run(pipeline_object):
        raise components.DataValidationError(message)

    monkeypatch.setattr("tfx.v1.orchestration.LocalDagRunner.run", lambda self, p: stopped_run(p))
    code = cli.main(["pipeline", "run", "--data", str(good.root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err) == f"error: {message}"
    assert not os.path.exists(tmp_path / "out" / "serving_model")


def _example(row, features, drop=()):
    feature = {}
    for name, value in row.items():
        if name in drop or name not in features:
            continue
        if isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_serving_refuses_a_missing_feature_and_a_malformed_example(runs, datasets):
    good = datasets[0]
    model_dir = runs[0]["good"][3].pushed_model
    row = mf.read_split(good, "test").iloc[0].to_dict()
    features = set(good.features)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:  # the TF1 loader, as TF Serving runs the model
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], model_dir).signature_def["serving_default"]

        def predict(examples):
            return session.run(signature.outputs[contract.CLTV_OUTPUT].name,
                               {signature.inputs[contract.SERVING_INPUT].name: examples})

        full = predict([_example(row, features)])
        assert np.isfinite(full).all() and (full >= 0).all()
        with pytest.raises(tf.errors.InvalidArgumentError, match="recency_days"):
            predict([_example(row, features, drop=("recency_days",))])
        for bad in (b"not a tf.Example", _example({**row, "recency_days": "recent"}, features)):
            with pytest.raises(tf.errors.InvalidArgumentError):
                predict([bad])
        assert predict([_example(row, features)]) == pytest.approx(full, rel=1e-6)  # still serving


def test_a_run_prints_one_line_per_component_and_the_summary_and_no_library_noise(tmp_path):
    """In a fresh process (C++ and import-time logs included): no FutureWarnings, absl warnings, TF
    deprecations or CUDA factory errors unless `--verbose`."""
    import subprocess
    import sys

    from tiny_dataset import write_tiny_dataset

    write_tiny_dataset(tmp_path / "data", rows=300)
    code = ("import sys; from mean_tf.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", code, "pipeline", "run", "--data", str(tmp_path / "data"),
                          "--out", str(tmp_path / "out"), *SMALL_MODEL], capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = (run.stdout + run.stderr).splitlines()
    progress = [line for line in lines if line.startswith("component ")]
    assert "component Transform started" in progress and any(line.startswith("component Pusher finished in ")
                                                              for line in progress)
    summary_start = next(i for i, line in enumerate(lines) if line.startswith("components: "))
    other = [line for line in lines[:summary_start] if not line.startswith(("component ", "Trainer: "))]
    assert len(other) <= 20, other
    assert not any(word in run.stderr for word in ("FutureWarning", "cuFFT", "WARNING:absl", "deprecat"))
