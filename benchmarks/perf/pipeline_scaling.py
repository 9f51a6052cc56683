"""Benchmark 4: the local TFX pipeline (`pipeline.local_runner.run`, cache off, DirectRunner multi-processing) in a
child process at several sizes: component times from ML Metadata, peak memory of the process tree (runner and
Beam workers, sampled every `SAMPLE_SECONDS`) overall and in each component's window."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from benchmarks.perf import environment
from benchmarks.perf.memory import run_sampled

SAMPLE_SECONDS = 0.5
GIB = 2 ** 30


def component_times(metadata_path: str) -> List[Dict]:
    """[{name, start, end, seconds, state}] of every execution in an ML Metadata SQLite file, in start order."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    node_type = {t.id for t in store.get_context_types() if t.name == "node"}
    out = []
    for execution in store.get_executions():
        contexts = store.get_contexts_by_execution(execution.id)
        node = next((c.name for c in contexts if c.type_id in node_type), None)
        name = (node or store.get_execution_types_by_id([execution.type_id])[0].name).split(".")[-1]
        start, end = execution.create_time_since_epoch / 1e3, execution.last_update_time_since_epoch / 1e3
        out.append({"name": name, "start": start, "end": end, "seconds": end - start,
                    "state": metadata_store_pb2.Execution.State.Name(execution.last_known_state)})
    return sorted(out, key=lambda e: e["start"])


def run_child(argv: Sequence[str]) -> None:
    """The child process of `run_once`: one LocalDagRunner run of the project's pipeline, every component
    executed (no cache), with the settings `run_once` passes as one JSON argument."""
    from pipeline import configs, local_runner

    a = json.loads(argv[0])
    settings = configs.PipelineSettings(model_name=a["model"], label=a["label"], config=MEANConfig.from_dict(a["config"]),
                                        beam_pipeline_args=tuple(a["beam"]), enable_cache=False,
                                        shuffle_examples=a["shuffle"])
    local_runner.run(a["data"], a["out"], settings)


def checkout_env() -> Dict[str, str]:
    """This environment, with the checkout that holds `benchmarks` first on PYTHONPATH (for `-m` children)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def run_once(data_dir: str, out_dir: str, model: str, config: MEANConfig, label: str, beam_args: Sequence[str],
             log_path: str, shuffle_examples: bool = False, profile: bool = False) -> Dict:
    """Run the pipeline once in a child process; wall time, peak tree RSS, and per-component time and peak RSS;
    with `profile`, under py-spy, and the CPU time per component and function (`profile.pyspy_summary`)."""
    from benchmarks.perf import profile as profiler
    from pipeline.local_runner import paths

    cmd = [sys.executable, "-m", __name__, json.dumps({"data": data_dir, "out": out_dir, "model": model, "label": label,
                                                     "config": config.to_dict(), "beam": list(beam_args),
                                                     "shuffle": shuffle_examples})]
    raw_profile = os.path.join(out_dir, "py-spy.txt")
    if profile:
        cmd = profiler.pyspy_command(raw_profile, cmd)
    with open(log_path, "w", encoding="utf-8") as log:
        sampler = run_sampled(cmd, log, SAMPLE_SECONDS, env=checkout_env())
    if sampler.returncode != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"pipeline run failed (exit {sampler.returncode}); log {log_path}:\n{tail}")
    components = component_times(paths(out_dir)[1])
    for c in components:
        # Widened by one sampling interval, so that a component shorter than the interval still gets a sample.
        c["peak_rss_gib"] = sampler.peak(c["start"] - SAMPLE_SECONDS, c["end"] + SAMPLE_SECONDS) / GIB
    run = {"wall_seconds": sampler.wall_seconds, "peak_rss_gib": sampler.peak() / GIB, "components": components, "log": log_path}
    if profile:
        run["profile"] = profiler.pyspy_summary(raw_profile)
    return run


_SAME_SETUP = {"features": None, "model": None, "label": None, "epochs": None, "beam_pipeline_args": None,
               "shuffle_examples": False, "profile": False}  # setting -> its value in records older than it


def extended_runs(earlier: Dict, record: Dict, sizes: Sequence[int]) -> List[Dict]:
    """The runs of `earlier` that `record` keeps, each naming its session; an error if the setups differ."""
    for key, old_default in _SAME_SETUP.items():
        if earlier.get(key, old_default) != record[key]:
            raise MeanTFError(f"--extend: the earlier record has {key}={earlier.get(key, old_default)!r}, this run "
                              f"{record[key]!r}; extend only a record of the same setup")
    session = {"command": earlier["command"], "environment": earlier["environment"]}
    return [{"session": session, **run} for run in earlier["runs"] if run["rows"] not in sizes]


def run_scaling(command: str, work_dir: str, sizes: Sequence[int], features: int, config: MEANConfig, model: str,
                direct_num_workers: int, epochs: Optional[int] = None, label: str = "cltv_365", not_run: str = "",
                note: str = "", shuffle_examples: bool = False, extend: Optional[Dict] = None,
                on_run: Optional[Callable[[Dict], None]] = None, profile: bool = False) -> Dict:
    """Benchmark 4 at each size (smallest first); the data of each size is generated first (not timed here).

    `on_run(record)` is called after each size with the record so far (`pending`: the sizes not run yet), so a
    run stopped before its largest size still leaves the sizes it finished. `extend`, an earlier record of the
    same setup, keeps its runs (each run names the session it ran in: `session`, its command and environment).
    `profile` runs each size under py-spy (`run_once`); its times then include the sampler's small overhead.
    """
    from benchmarks.perf.suite import synthetic_data

    beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={direct_num_workers}"]
    if epochs is not None:
        config = config.replace(epochs=epochs)
    record = {"command": command, "environment": environment.describe(), "features": features, "model": model,
              "label": label, "beam_pipeline_args": beam_args, "sample_seconds": SAMPLE_SECONDS, "note": note,
              "not_run": not_run, "epochs": config.epochs, "shuffle_examples": shuffle_examples, "profile": profile,
              "runs": [], "pending": sorted(sizes)}
    session = {"command": command, "environment": record["environment"]}
    if extend is not None:
        record["runs"] = extended_runs(extend, record, sizes)
    started = time.time()
    for rows in sorted(sizes):
        manifest, generate_seconds = synthetic_data(work_dir, rows, features, config.seed)
        out_dir = os.path.join(work_dir, f"pipeline-{rows}x{features}-{int(time.time())}")
        os.makedirs(out_dir, exist_ok=True)
        run = run_once(manifest.root, out_dir, model, config, label, beam_args, os.path.join(out_dir, "run.log"),
                       shuffle_examples, profile)
        run.update(session=session, rows=rows, train_rows=int(manifest.row_counts["train"]),
                   generate_seconds=generate_seconds, load_average_after=environment.load_average())
        record["runs"] = sorted(record["runs"] + [run], key=lambda r: r["rows"])
        record["pending"].remove(rows)
        record["seconds"] = time.time() - started
        if on_run:
            on_run(record)
    return record


if __name__ == "__main__":
    run_child(sys.argv[1:])
