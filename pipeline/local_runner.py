"""Run the mean-tf pipeline locally (LocalDagRunner, sqlite ML Metadata) and print what it produced.

    python -m pipeline.local_runner [--data DATASET_DIR] [--out out/pipeline] [--label cltv_365]
    (the same as `mean-tf pipeline run ...`)

Everything lands under the output folder: `pipeline_root/` (artifacts), `metadata.sqlite` (ML
Metadata, which also drives the cache) and `serving_model/<version>/` (pushed models). The summary:
the Evaluator's metrics per slice, whether the model was blessed, and where it was pushed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
from mean_tf.errors import MeanTFError
from pipeline.configs import ALREADY_SERVED
from pipeline import configs



@dataclasses.dataclass
class RunSummary:
    """What one pipeline run did, read back from ML Metadata."""

    executions: Dict[str, str]  # node id -> last state (COMPLETE, CACHED, FAILED, ...)
    metrics: Dict[str, Dict[str, float]]  # slice ("Overall", "country:France", ...) -> metric -> value
    blessed: Optional[bool]
    pushed_model: Optional[str]
    evaluation_uri: Optional[str]
    model_uri: Optional[str]
    already_served: Optional[str] = None  # blessed, but identical to this served version: nothing pushed
    gini_floor: Optional[float] = None  # the blessing thresholds the run used
    gini_max_drop: Optional[float] = None
    inference_uri: Optional[str] = None  # the BulkInferrer's InferenceResult (`--score`), when it ran


def paths(output_dir: str) -> Tuple[str, str, str]:
    """(pipeline root, metadata sqlite path, serving dir) under the output folder. ML Metadata is a local SQLite
    file: for an output folder that is a URI (gs://...) it lives under `configs.LOCAL_METADATA_DIR`, in a
    folder named after the URI."""
    from mean_tf.runtime.files import absolute, is_uri

    output_dir = absolute(output_dir)
    metadata_dir = (os.path.join(os.path.abspath(configs.LOCAL_METADATA_DIR), output_dir.replace("://", "/", 1))
                    if is_uri(output_dir) else output_dir)
    return (os.path.join(output_dir, configs.PIPELINE_ROOT_SUBDIR), os.path.join(metadata_dir, configs.METADATA_FILE),
            os.path.join(output_dir, configs.SERVING_SUBDIR))


def build(data_dir: str, output_dir: str, settings: Optional[configs.PipelineSettings] = None,
          score_data: Optional[str] = None):
    """The local pipeline object for a dataset folder (and a scoring dataset for the BulkInferrer)."""
    from tfx import v1 as tfx

    from mean_tf.data.manifest import read_manifest
    from pipeline.pipeline import create_pipeline

    manifest = read_manifest(data_dir)
    pipeline_root, metadata_path, serving_dir = paths(output_dir)
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    return create_pipeline(
        settings or configs.PipelineSettings(), pipeline_root=pipeline_root, manifest=manifest,
        serving_model_dir=serving_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        score_manifest=read_manifest(score_data) if score_data else None)


def run(data_dir: str, output_dir: str, settings: Optional[configs.PipelineSettings] = None,
        score_data: Optional[str] = None) -> RunSummary:
    """Build and run the pipeline with LocalDagRunner; MeanTFError when a split file is damaged (checked first,
    before anything is written) or data validation stops it."""
    from mean_tf.data.manifest import read_manifest, verify_split_files

    settings = settings or configs.PipelineSettings()
    verify_split_files(read_manifest(data_dir))
    if score_data:
        verify_split_files(read_manifest(score_data))
    from tfx import v1 as tfx

    from pipeline.components import DataValidationError

    pipeline = build(data_dir, output_dir, settings, score_data)
    try:
        with component_progress(), failed_outputs_removed_quietly():
            tfx.orchestration.LocalDagRunner().run(pipeline)
    except DataValidationError as e:
        raise MeanTFError(str(e)) from None
    summary = summarize(output_dir, pipeline.pipeline_info.pipeline_name)
    return dataclasses.replace(summary, gini_floor=settings.gini_floor, gini_max_drop=settings.gini_max_drop)


@contextlib.contextmanager
def component_progress(stream=None):
    """Print "component X started" and "component X finished in N s" (or "failed after N s") around every
    component the LocalDagRunner launches, whatever the log settings."""
    from tfx.orchestration.portable import launcher

    launch = launcher.Launcher.launch

    def timed(self, *args, **kwargs):
        node, start = self._pipeline_node.node_info.id, time.time()
        print(f"component {node} started", file=stream or sys.stdout, flush=True)
        try:
            result = launch(self, *args, **kwargs)
        except BaseException:
            print(f"component {node} failed after {time.time() - start:.0f} s", file=stream or sys.stdout, flush=True)
            raise
        print(f"component {node} finished in {time.time() - start:.0f} s", file=stream or sys.stdout, flush=True)
        return result

    launcher.Launcher.launch = timed
    try:
        yield
    finally:
        launcher.Launcher.launch = launch


@contextlib.contextmanager
def failed_outputs_removed_quietly():
    """TFX removes a failed component's output folders before it reports the failure. On gs:// a folder that
    holds no object does not exist, and TFX's removal then raises an empty NotFoundError in place of the
    component's own error ("error: NotFoundError"). Within this context a missing output is skipped, so the
    component's error is the one reported."""
    from tfx.dsl.io import fileio
    from tfx.orchestration.portable import outputs_utils

    remove = outputs_utils.remove_output_dirs

    def remove_existing(output_dict):
        for key, artifacts in output_dict.items():
            for artifact in artifacts:
                try:
                    remove({key: [artifact]})
                except fileio.NotFoundError:
                    pass

    outputs_utils.remove_output_dirs = remove_existing
    try:
        yield
    finally:
        outputs_utils.remove_output_dirs = remove


def summarize(output_dir: str, pipeline_name: str = configs.PIPELINE_NAME) -> RunSummary:
    """Read the latest run of `pipeline_name` back from the output folder's ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx

    _, metadata_path, _ = paths(output_dir)
    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        raise MeanTFError(f"no run of pipeline {pipeline_name!r} in {metadata_path}")
    in_pipeline = {e.id for e in store.get_executions_by_context(pipeline_context.id)}
    runs = [c for c in store.get_contexts_by_type("pipeline_run")
            if in_pipeline & {e.id for e in store.get_executions_by_context(c.id)}]
    latest = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = sorted(store.get_executions_by_context(latest.id), key=lambda e: e.id)
    states, outputs = {}, {}
    for execution in executions:
        node = _node_id(store, execution.id, pipeline_name)
        states[node] = _state_name(execution.last_known_state)
        outputs[node] = _output_artifacts(store, execution.id)
    evaluation = outputs.get("Evaluator", {}).get("evaluation")
    blessing = outputs.get("Evaluator", {}).get("blessing")
    pushed = outputs.get("Pusher", {}).get("pushed_model")
    model = outputs.get("Trainer", {}).get("model")
    inference = outputs.get("BulkInferrer", {}).get("inference_result")
    return RunSummary(
        executions=states,
        metrics=_evaluation_metrics(evaluation.uri) if evaluation else {},
        blessed=bool(blessing.custom_properties["blessed"].int_value) if blessing else None,
        pushed_model=(pushed.custom_properties["pushed_destination"].string_value
                      if pushed and pushed.custom_properties["pushed"].int_value else None),
        evaluation_uri=evaluation.uri if evaluation else None,
        model_uri=model.uri if model else None,
        inference_uri=inference.uri if inference and states.get("BulkInferrer") in ("COMPLETE", "CACHED") else None,
        already_served=(pushed.custom_properties[ALREADY_SERVED].string_value
                        if pushed and ALREADY_SERVED in pushed.custom_properties else None))


def _node_id(store, execution_id: int, pipeline_name: str) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.name.startswith(pipeline_name + "."):
            return context.name[len(pipeline_name) + 1:]
    return str(execution_id)


def _state_name(state: int) -> str:
    from ml_metadata.proto import metadata_store_pb2

    return metadata_store_pb2.Execution.State.Name(state)


def _output_artifacts(store, execution_id: int) -> Dict:
    from ml_metadata.proto import metadata_store_pb2

    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return {e.path.steps[0].key: artifacts[e.artifact_id] for e in events if e.path.steps}


def _evaluation_metrics(uri: str) -> Dict[str, Dict[str, float]]:
    """slice name -> {metric: value} of a TFMA evaluation (the candidate model's values)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    table = {}
    for slice_key, by_output in result.slicing_metrics:
        name = tfma.slicer.stringify_slice_key(slice_key) or "Overall"
        values = by_output.get("", {}).get("", {})
        table[name] = {metric: _number(value) for metric, value in values.items()}
    return dict(sorted(table.items(), key=lambda item: (item[0] != "Overall", item[0])))


def _number(value) -> float:
    if isinstance(value, dict):
        if "doubleValue" in value:
            return float(value["doubleValue"])
        if "int64Value" in value:
            return float(value["int64Value"])
    return float("nan")


def shown_slices(metrics: Dict[str, Dict[str, float]], min_slice_size: int = configs.MIN_SLICE_SIZE):
    """The slices the summary prints: Overall and every slice of at least `min_slice_size` customers, then one
    "other" row counting the smaller ones (their metrics are noise or NaN; TFMA's evaluation keeps them all)."""
    shown, small = {}, []
    for name, values in metrics.items():
        if name == "Overall" or values.get("example_count", 0) >= min_slice_size:
            shown[name] = values
        else:
            small.append(values.get("example_count", 0))
    if small:
        shown[f"other ({len(small)} slices < {min_slice_size})"] = {"example_count": float(sum(small))}
    return shown


def blessing_context(summary: RunSummary) -> str:
    """Why the Evaluator blessed or not: the test Gini against the floor, the baseline and the allowed drop."""
    overall = summary.metrics.get("Overall", {})
    gini = overall.get("normalized_gini")
    if gini is None or summary.gini_floor is None:
        return ""
    text = f" (test Gini {gini:.4f}, floor {summary.gini_floor:g}"
    change = overall.get("normalized_gini_diff")
    if change is None:
        return text + "; no earlier blessed model to compare with)"
    return (text + f"; last blessed model {gini - change:.4f}, change {change:+.4f}, "
            f"largest drop allowed {summary.gini_max_drop:g})")


def format_summary(summary: RunSummary, metric_names: Optional[List[str]] = None,
                   min_slice_size: int = configs.MIN_SLICE_SIZE) -> str:
    """Text report: component states, the metrics table (slices under `min_slice_size` customers folded into
    one "other" row), blessed or not, the pushed model's path."""
    from mean_tf.contract import CALIBRATION_NAMES, METRIC_NAMES

    names = metric_names or ["example_count", *METRIC_NAMES, *CALIBRATION_NAMES]
    lines = ["components: " + ", ".join(f"{node} {state}" for node, state in summary.executions.items()), ""]
    if summary.metrics:
        table = shown_slices(summary.metrics, min_slice_size)
        width = max(len(s) for s in table) + 2
        lines.append("Evaluator (test split)".ljust(width) + "".join(f"{n:>17}" for n in names))
        for slice_name, values in table.items():
            cells = "".join(f"{values.get(n, float('nan')):>17.4f}" if n != "example_count"
                            else f"{values.get(n, float('nan')):>17.0f}" for n in names)
            lines.append(slice_name.ljust(width) + cells.replace("nan", "  -"))
        lines.append("")
    lines.append(f"blessed: {'yes' if summary.blessed else 'no'}" + blessing_context(summary))
    if summary.already_served:
        lines.append(f"pushed model: none (identical to the served version {summary.already_served})")
    else:
        lines.append(f"pushed model: {summary.pushed_model or 'none (not blessed)'}")
    if "BulkInferrer" in summary.executions:
        lines.append(f"scored (BulkInferrer): {summary.inference_uri or 'none (not blessed)'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """`python -m pipeline.local_runner ARGS` is `mean-tf pipeline run ARGS`."""
    from mean_tf.cli import main as cli

    return cli(["pipeline", "run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
