"""Benchmark 4: the full local TFX pipeline at several data sizes: wall time per component and peak memory.

Each size runs `mean-tf pipeline run` in a child process (Beam DirectRunner in multi-processing mode) on a
fresh synthetic data set. Component wall times come from ML Metadata (each execution's create and last
update times); peak resident memory is the largest sum over the child's process tree (runner and Beam
workers), sampled every `SAMPLE_SECONDS`, overall and within each component's time window.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from mean_tf.config import MEANConfig
from mean_tf.perf import environment
from mean_tf.perf.memory import RSSSampler

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


def find_metadata(root: str) -> Optional[str]:
    """The ML Metadata SQLite file under a pipeline run's folder."""
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".sqlite") or f.endswith(".db"):
                return os.path.join(folder, f)
    return None


def pipeline_command(manifest_path: str, root: str, model: str, label: str, beam_args: Sequence[str],
                     overrides: Sequence[str]) -> List[str]:
    """`mean-tf pipeline run` for one size, all output under `root`."""
    cmd = [sys.executable, "-m", "mean_tf.cli", "pipeline", "run", "--data", manifest_path, "--label", label,
           "--model", model, "--root", root]
    cmd += [f"--beam-arg={a}" for a in beam_args]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def run_once(manifest_path: str, root: str, model: str, label: str, beam_args: Sequence[str],
             overrides: Sequence[str], log_path: str) -> Dict:
    """Run the pipeline once in a child process; wall time, peak tree RSS, and per-component time and peak RSS."""
    cmd = pipeline_command(manifest_path, root, model, label, beam_args, overrides)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        with RSSSampler(proc.pid, SAMPLE_SECONDS) as sampler:
            proc.wait()
    wall = time.time() - start
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"pipeline run failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    metadata = find_metadata(root)
    components = component_times(metadata) if metadata else []
    for c in components:
        c["peak_rss_gib"] = sampler.peak(c["start"], c["end"]) / GIB
    return {"wall_seconds": wall, "peak_rss_gib": sampler.peak() / GIB, "components": components,
            "command": " ".join(cmd[2:]).replace("mean_tf.cli", "mean-tf", 1), "log": log_path}


def run_scaling(command: str, work_dir: str, sizes: Sequence[int], features: int, config: MEANConfig, model: str,
                direct_num_workers: int, epochs: Optional[int] = None, label: str = "cltv_365", not_run: str = "",
                note: str = "") -> Dict:
    """Benchmark 4 at each size (smallest first); the data of each size is generated first (not timed here)."""
    from mean_tf.data import synthetic
    from mean_tf.data.manifest import MANIFEST_FILE, read_manifest
    from mean_tf.perf.data import synthetic_dir

    beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={direct_num_workers}"]
    overrides = [f"{k}={v}" for k, v in (("epochs", epochs),) if v is not None]
    record = {"command": command, "environment": environment.describe(), "features": features, "model": model,
              "label": label, "beam_pipeline_args": beam_args, "sample_seconds": SAMPLE_SECONDS, "note": note,
              "not_run": not_run, "config_overrides": overrides, "runs": []}
    started = time.time()
    for rows in sorted(sizes):
        data_dir = synthetic_dir(work_dir, rows, features, config.seed)
        gen_start = time.time()
        if not os.path.exists(os.path.join(data_dir, MANIFEST_FILE)):
            synthetic.build(data_dir, rows, features, seed=config.seed)
        manifest = read_manifest(os.path.join(data_dir, MANIFEST_FILE))
        root = os.path.join(work_dir, f"pipeline-{rows}x{features}-{int(time.time())}")
        os.makedirs(root, exist_ok=True)
        run = run_once(os.path.join(data_dir, MANIFEST_FILE), root, model, label, beam_args, overrides,
                       os.path.join(root, "run.log"))
        run.update(rows=rows, train_rows=int(manifest.row_counts["train"]), generate_seconds=time.time() - gen_start
                   - run["wall_seconds"], load_average_after=environment.load_average())
        record["runs"].append(run)
    record["seconds"] = time.time() - started
    return record
