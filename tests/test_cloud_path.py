"""The gs:// path, run for real against a local Cloud Storage (tests/gcs_emulator.py): everything the pipeline
reads and writes is in a bucket, as on Vertex AI; only ML Metadata is a local SQLite file.

One session in a private network namespace (`pipeline_session`) builds the example log's training and scoring
datasets into the bucket (`mean-tf data transactions --out gs://...`), runs `mean-tf pipeline run --data gs://...
--out gs://... --score gs://...` (every component, blessed, pushed, BulkInferrer), scores the scoring dataset
with `mean-tf score --model gs://... --out gs://...`, reruns the pipeline (served from the cache), then starts a
run whose Trainer must train again and stops the emulator while that Trainer is exporting the model; the
emulator restarts on the same filesystem backend and the run is repeated. The session writes what it found to
facts.json; the tests below check it.

Run just these (as root): `.venv/bin/python -m pytest tests/test_cloud_path.py -q -p no:cacheprovider`.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import gcs_emulator

UNAVAILABLE = gcs_emulator.unavailable()
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")

SMALL_MODEL = ["--set", "shared_units=[16]", "--set", "expert_units=8", "--set", "attention_units=8",
               "--set", "dam_shared_units=8", "--set", "dam_units=[8]", "--set", "embedding_dim=2",
               "--set", "batch_size=256", "--set", "epochs=2"]
# Any Gini blesses, and a retrained model may fall any amount below the last blessed one: the test is about
# where things are written, not about the model.
BLESS_ANY = ["--gini-floor", "-1", "--gini-max-drop", "2"]
LOG_COLUMNS = ["--customer", "customer_id", "--time", "time", "--amount", "amount", "--quantity", "quantity",
               "--categorical", "country"]
CUTOFFS = "2010-06-01,2010-12-01"
RETRAIN = ["--set", "epochs=1"]  # a Trainer-only change: ExampleGen ... Transform come from the cache
SESSION_TIMEOUT = 1800


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    work = tmp_path_factory.mktemp("cloud_path")
    log = str(work / "session.log")
    start = time.time()
    code = gcs_emulator.run_isolated(f"{os.path.abspath(__file__)}:pipeline_session", str(work), log=log,
                                     timeout=SESSION_TIMEOUT, cwd=str(work))
    assert code == 0, f"the gs:// session failed (exit {code}); its output ends:\n{gcs_emulator.log_tail(log)}"
    with open(work / "facts.json", encoding="utf-8") as f:
        found = json.load(f)
    print(f"gs:// session: {time.time() - start:.0f} s ({found['seconds']})")
    return found


def test_the_datasets_are_written_to_the_bucket(facts):
    assert {"manifest.json", "train-00000-of-00001.tfrecord.gz", "test-00000-of-00001.tfrecord.gz"} <= set(
        facts["data_files"])
    assert set(facts["score_files"]) == {"manifest.json", "score-00000-of-00001.tfrecord.gz"}


def test_every_component_runs_on_gs_and_the_blessed_model_is_pushed_to_the_bucket(facts):
    first = facts["first"]
    assert all(state == "COMPLETE" for state in first["executions"].values()), first["executions"]
    assert {"Trainer", "Evaluator", "Pusher", "BulkInferrer"} <= set(first["executions"])
    assert first["blessed"] is True
    assert first["model_uri"].startswith("gs://") and first["pushed_model"].startswith("gs://")
    assert {"saved_model.pb", "variables/variables.index", "assets.extra/mean_tf.json"} <= set(first["pushed_files"])
    assert {"fit_summary.json", "calibration.json"} <= set(first["model_run_files"])  # the Trainer's own files


def test_the_bulk_inferrer_writes_prediction_logs_to_the_bucket(facts):
    first = facts["first"]
    assert first["inference_uri"].startswith("gs://")
    assert first["prediction_logs"] == facts["score_rows"] > 0


def test_score_reads_the_pushed_model_and_writes_the_scores_to_the_bucket(facts):
    score = facts["score"]
    assert score["rows"] == facts["score_rows"] and score["customers_unique"]
    assert score["max_relative_difference_to_prediction_logs"] < 1e-4
    assert score["exit_code"] == 0 and "scored" in score["printed"]


def test_a_rerun_is_served_from_the_cache(facts):
    cached = facts["cached"]
    rerun = {node for node, state in cached["executions"].items() if state != "CACHED"}
    assert rerun == {"latest_blessed_model_resolver", "Evaluator", "Pusher"}, cached["executions"]
    assert cached["model_uri"] == facts["first"]["model_uri"]


def test_a_run_cut_off_mid_trainer_leaves_nothing_taken_for_complete_and_its_rerun_succeeds(facts):
    cut = facts["interrupted"]
    assert cut["trainer_started"] and cut["half_exported"], cut
    assert cut["exit_code"] != 0, cut["output_tail"]  # it failed, or was killed like a preempted machine
    assert cut["bucket_kept_across_restart"]
    rerun = facts["after_restart"]
    assert rerun["executions"]["Trainer"] == "COMPLETE" and rerun["executions"]["Transform"] == "CACHED"
    assert rerun["blessed"] is True and rerun["pushed_model"]
    assert not rerun["model_uri"].startswith(cut["half_exported"])  # a new model, not the half-exported one
    [unfinished] = cut["unfinished_trainers"]  # the cut-off Trainer, and it is not taken for complete:
    assert not unfinished["live"], unfinished  # its model is no live artifact a later run could resolve
    assert rerun["incomplete_pushed_versions"] == [] and rerun["pushed_versions"] >= 2
    assert rerun["predictions_finite"]


# --- the session, inside the namespace ------------------------------------------------------------------
def _cli(*argv) -> tuple:
    """`mean-tf --debug ARGV` in-process (an error raises, its traceback in the session's log): (exit code, what
    it printed)."""
    from mean_tf import cli

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["--debug", *argv])
    print(f"$ mean-tf {' '.join(argv)}\n{printed.getvalue()}", flush=True)  # the session's log
    return code, printed.getvalue()


def _files_under(root: str) -> list:
    import tensorflow as tf

    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in tf.io.gfile.walk(root) for name in names)


def _run_facts(out: str) -> dict:
    from pipeline import local_runner

    summary = local_runner.summarize(out)
    return {"executions": summary.executions, "blessed": summary.blessed, "pushed_model": summary.pushed_model,
            "model_uri": summary.model_uri, "inference_uri": summary.inference_uri}


def _pipeline(data: str, out: str, *extra) -> dict:
    code, printed = _cli("pipeline", "run", "--data", data, "--out", out, *BLESS_ANY, *SMALL_MODEL, *extra)
    assert code == 0, printed
    return _run_facts(out)


def _trainer_executions(out: str) -> list:
    """{"state", "outputs", "live"} of every Trainer execution in ML Metadata (its model URIs, the LIVE ones)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    from pipeline import local_runner

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(local_runner.paths(out)[1]))
    context = store.get_context_by_type_and_name("node", "mean-tf.Trainer")
    executions = store.get_executions_by_context(context.id)
    found = []
    for execution in executions:
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)]
        models = store.get_artifacts_by_id([e.artifact_id for e in events])
        found.append({"state": metadata_store_pb2.Execution.State.Name(execution.last_known_state),
                      "outputs": [m.uri for m in models],
                      "live": [m.uri for m in models if m.state == metadata_store_pb2.Artifact.LIVE]})
    return found


def _cut_off_mid_trainer(emulator, data: str, out: str) -> dict:
    """Run the pipeline in a process of its own; stop the emulator once the Trainer has begun writing the
    model into the bucket; end the run (it fails, or is killed after 10 s like a preempted machine)."""
    command = [sys.executable, "-c", "import sys; from mean_tf.cli import main; sys.exit(main(sys.argv[1:]))",
               "pipeline", "run", "--data", data, "--out", out, *BLESS_ANY, *SMALL_MODEL, *RETRAIN]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()
    lines = []

    def watch():
        for line in run.stdout:
            lines.append(line)
            if "component Trainer started" in line:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    found = {"trainer_started": started.wait(600), "half_exported": None}
    known = set(emulator.objects("out/pipeline_root/Trainer/model/"))  # the models of the earlier runs
    deadline = time.time() + 300
    while found["trainer_started"] and time.time() < deadline and run.poll() is None:
        new = sorted(set(emulator.objects("out/pipeline_root/Trainer/model/")) - known)
        if new:  # the export has begun: its folder, gs://BUCKET/out/pipeline_root/Trainer/model/<execution>
            found["half_exported"] = emulator.uri("/".join(new[0].split("/")[:5]))
            break
        time.sleep(0.05)
    emulator.stop()
    try:
        run.wait(10)
        found["ended"] = "failed"
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        found["ended"] = "killed"
    found["exit_code"] = run.returncode
    found["output_tail"] = "".join(lines)[-3000:]
    emulator.start()
    return found


def pipeline_session(emulator, work: str) -> None:
    """The whole gs:// path (module docstring); writes `work`/facts.json."""
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from mean_tf.contract import MODEL_INFO_FILE
    from mean_tf.serving import export
    from mean_tf.data import online_retail, read_manifest
    from tensorflow_serving.apis import prediction_log_pb2

    start, seconds = time.time(), {}
    data, score_data, out = emulator.uri("data"), emulator.uri("score"), emulator.uri("out")
    log = str(online_retail.example_log_path())
    for target, what in ((data, ["--cutoffs", CUTOFFS]), (score_data, ["--score-date", "end"])):
        code, printed = _cli("data", "transactions", "--input", log, *LOG_COLUMNS, *what, "--out", target)
        assert code == 0, printed
    facts = {"data_files": tf.io.gfile.listdir(data), "score_files": tf.io.gfile.listdir(score_data),
             "score_rows": read_manifest(score_data).row_counts["score"]}
    seconds["datasets"] = time.time() - start

    first = _pipeline(data, out, "--score", score_data)
    first["pushed_files"] = _files_under(first["pushed_model"])
    first["model_run_files"] = _files_under(first["model_uri"].replace("/model/", "/model_run/"))
    first["inference_files"] = _files_under(first["inference_uri"])
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(
        [os.path.join(first["inference_uri"], name) for name in first["inference_files"] if name.endswith(".gz")],
        compression_type="GZIP")]
    first["prediction_logs"] = len(logs)
    facts["first"] = first
    seconds["first run"] = time.time() - start

    scores = emulator.uri("scores/today.csv")
    code, printed = _cli("score", "--model", first["pushed_model"], "--data", score_data, "--out", scores)
    with tf.io.gfile.GFile(scores) as f:
        table = pd.read_csv(f, dtype={"customer_id": str})
    served = {}
    for entry in logs:
        example = tf.train.Example.FromString(entry.predict_log.request.inputs["examples"].string_val[0])
        customer = example.features.feature["customer_id"].bytes_list.value[0].decode()
        served[customer] = float(tf.make_ndarray(entry.predict_log.response.outputs["cltv"]).reshape(-1)[0])
    expected = table["customer_id"].map(served).to_numpy(dtype=np.float64)
    facts["score"] = {"exit_code": code, "printed": printed, "rows": len(table),
                      "customers_unique": bool(table["customer_id"].is_unique),
                      "max_relative_difference_to_prediction_logs": float(np.max(
                          np.abs(table["cltv"] - expected) / np.maximum(np.abs(expected), 1e-6)))}

    seconds["score"] = time.time() - start
    facts["cached"] = _pipeline(data, out)
    seconds["cached rerun"] = time.time() - start

    cut = _cut_off_mid_trainer(emulator, data, out)
    cut["bucket_kept_across_restart"] = tf.io.gfile.exists(os.path.join(first["pushed_model"], "saved_model.pb"))
    seconds["cut-off run"] = time.time() - start
    rerun = _pipeline(data, out, *RETRAIN)
    seconds["rerun after restart"] = time.time() - start
    cut["unfinished_trainers"] = [e for e in _trainer_executions(out) if e["state"] not in ("COMPLETE", "CACHED")]
    serving = os.path.dirname(rerun["pushed_model"])
    versions = [v.rstrip("/") for v in tf.io.gfile.listdir(serving)]
    needed = ("saved_model.pb", "variables/variables.index", MODEL_INFO_FILE)
    rerun["pushed_versions"] = len(versions)
    rerun["incomplete_pushed_versions"] = [v for v in versions if not all(
        tf.io.gfile.exists(os.path.join(serving, v, name)) for name in needed)]
    records = [r.numpy() for r in tf.data.TFRecordDataset(read_manifest(score_data).files("score"),
                                                          compression_type="GZIP").take(20)]
    rerun["predictions_finite"] = bool(np.isfinite(export.predict_serialized(rerun["pushed_model"],
                                                                              records)["cltv"]).all())
    facts["interrupted"], facts["after_restart"] = cut, rerun
    facts["seconds"] = {phase: round(end) for phase, end in seconds.items()}  # elapsed at the end of each
    with open(os.path.join(work, "facts.json"), "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=2)
