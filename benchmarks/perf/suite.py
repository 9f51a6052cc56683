"""The benchmark parts behind `python -m benchmarks.perf ...`: each prepares its data, measures, and returns one JSON-able dict."""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Dict, Optional, Sequence

from mean_tf.config import MEANConfig
from benchmarks.perf import environment

DEFAULT_TRAIN_MODELS = ("mean", "mtl_mean", "dnn_ziln")


@dataclasses.dataclass
class BenchData:
    """A benchmark's synthetic data set (`mean_tf.data.synthetic`) and its Transform output, both cached by size."""

    manifest: object  # mean_tf.data.manifest.Manifest
    materialized: object  # mean_tf.transform.preprocessing.Materialized
    seconds: Dict[str, float]  # time spent generating / transforming in this call (0 when cached)

    @property
    def train_rows(self) -> int:
        return int(self.manifest.row_counts["train"])


def synthetic_data(work_dir: str, rows: int, features: int, seed: int = 0):
    """(manifest, seconds spent generating) of the cached synthetic data set of this size, generated if missing."""
    from mean_tf.data import synthetic
    from mean_tf.data.manifest import MANIFEST_FILE, read_manifest

    folder = os.path.join(work_dir, f"synthetic-{rows}x{features}-s{seed}")
    start = time.perf_counter()
    if not os.path.exists(os.path.join(folder, MANIFEST_FILE)):
        synthetic.build(folder, rows, features, seed=seed)
    return read_manifest(folder), time.perf_counter() - start


def prepare(work_dir: str, rows: int, features: int, config: MEANConfig, seed: int = 0) -> BenchData:
    """The synthetic data of this size and its materialised Transform, each made unless cached."""
    from mean_tf.transform import preprocessing

    manifest, generated = synthetic_data(work_dir, rows, features, seed)
    start = time.perf_counter()
    materialized = preprocessing.materialize(manifest, config, manifest.root + "-transform")
    return BenchData(manifest, materialized, {"generate": generated, "transform": time.perf_counter() - start})


def set_threads(intra_op: Optional[int], inter_op: Optional[int]) -> None:
    """TensorFlow's thread pools; must run before TensorFlow executes its first op."""
    import tensorflow as tf

    if intra_op is not None:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def _record(command: str, note: str) -> Dict:
    """A part's record as it starts: its command, the machine, the note; `_finish` adds the time it took."""
    return {"command": command, "environment": environment.describe(), "started_unix": time.time(), "note": note}


def _start(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, note: str):
    """The record of a part (command, machine, its data) and its data, generated and transformed if not cached."""
    record = _record(command, note)
    data = prepare(work_dir, rows, features, config)
    m = data.manifest
    record["data"] = {"rows": rows, "features": features, "train_rows": data.train_rows, "root": m.root,
                      "numeric_features": len(m.numeric_features), "categorical_features": len(m.categorical_features),
                      "prepare_seconds": data.seconds}
    return record, data


def _export(data: BenchData, model: str, config: MEANConfig, label: str, prefix: str) -> Dict:
    """A briefly trained `model` exported for serving into a new temporary folder (`export_dir` in the result)."""
    from benchmarks.perf.serving import export_briefly_trained

    raw_features = list(data.manifest.numeric_features) + list(data.manifest.categorical_features)
    return export_briefly_trained(model, config, data.materialized.tf_transform_output(), data.materialized.files("train"),
                                  label, raw_features, os.path.join(tempfile.mkdtemp(prefix=prefix), "model"))


def _finish(record: Dict) -> Dict:
    record["seconds"] = time.time() - record.pop("started_unix")
    record["load_average_after"] = environment.load_average()
    return record


def run_train(command: str, work_dir: str, rows: int, features: int, config: MEANConfig,
              models: Sequence[str] = DEFAULT_TRAIN_MODELS, steps: int = 30, warmup: int = 5,
              jit_compile: bool = False, roofline_min_seconds: float = 0.05, peak_size: int = 1024, note: str = "") -> Dict:
    """Benchmark 1: throughput, FLOPs and roofline share of each model; peak matmul rate."""
    from benchmarks.perf import throughput
    from benchmarks.perf.roofline import peak_matmul_rate

    record, data = _start(command, work_dir, rows, features, config, note)
    tft_output = data.materialized.tf_transform_output()
    files = data.materialized.files("train")
    record.update(throughput.train_throughput(list(models), config, tft_output, files, data.train_rows, steps, warmup,
                                              jit_compile, roofline_min_seconds))
    record.update(jit_compile=jit_compile, batch_size=config.batch_size, roofline_min_seconds=roofline_min_seconds,
                  peak_matmul_size=peak_size,
                  peak_matmul_gflops_per_s=peak_matmul_rate(peak_size, min_seconds=4 * roofline_min_seconds))
    return _finish(record)


def run_input(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, batches: int = 40,
              warmup: int = 5, note: str = "") -> Dict:
    """Benchmark 2: examples per second of the input pipeline alone (and its variants)."""
    from benchmarks.perf.input_pipeline import input_throughput

    record, data = _start(command, work_dir, rows, features, config, note)
    tft_output = data.materialized.tf_transform_output()
    record.update(input_throughput(data.materialized.files("train"), tft_output, list(config.labels),
                                   config.batch_size, data.train_rows, batches, warmup))
    return _finish(record)


def run_serving(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, model: str = "mean",
                label: str = "cltv_365", batch_sizes: Sequence[int] = (1, 64, 1024), requests: int = 200,
                note: str = "") -> Dict:
    """Benchmark 3: p50/p99 latency of serving_default through the TF1 Session loader."""
    import tensorflow as tf

    from benchmarks.perf.serving import serving_latency

    record, data = _start(command, work_dir, rows, features, config, note)
    record["export"] = _export(data, model, config, label, "mean_tf_serving_")
    # Requests: serialized raw tf.Examples of the test split, as clients send them (serving ignores the labels).
    records = tf.data.TFRecordDataset(data.manifest.files("test"), compression_type="GZIP").take(max(batch_sizes))
    record.update(serving_latency(record["export"]["export_dir"], [r.numpy() for r in records], batch_sizes, requests))
    return _finish(record)


def run_score(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, model: str = "mean",
              label: str = "cltv_365", sizes: Sequence[int] = (100_000, 1_000_000), note: str = "") -> Dict:
    """Benchmark 5: `mean-tf score` on growing numbers of customers, each run in a fresh process: wall
    time and peak resident memory (the process tree, sampled), which should stay flat in the customers."""
    import math
    import shutil
    import sys

    from mean_tf.data.splits import FRACTIONS
    from benchmarks.perf.memory import run_sampled

    record, data = _start(command, work_dir, rows, features, config, note)
    record.update(export=_export(data, model, config, label, "mean_tf_score_"), scoring_runs=[])
    export_dir = os.path.dirname(record["export"]["export_dir"])
    for customers in sizes:
        # The same generator (features, seed) at more rows; its train split is scored.
        scoring, generate_seconds = synthetic_data(work_dir, math.ceil(customers / FRACTIONS[0]), features,
                                                   config.seed)
        scored = scoring.row_counts["train"]
        out, log_path = os.path.join(export_dir, "scores.parquet"), os.path.join(export_dir, "score.log")
        argv = [sys.executable, "-m", "mean_tf.cli", "score", "--model", record["export"]["export_dir"],
                "--data", scoring.root, "--split", "train", "--out", out]
        load_before = environment.load_average()
        with open(log_path, "w+", encoding="utf-8") as log:
            run = run_sampled(argv, log, 0.2)
            log.seek(0)
            printed = log.read()
        if run.returncode != 0:
            raise RuntimeError(f"mean-tf score failed at {customers:,} customers:\n{printed[-2000:]}")
        record["scoring_runs"].append({
            "customers": scored, "wall_seconds": run.wall_seconds, "peak_rss_mib": run.peak() / 2 ** 20,
            "customers_per_s": scored / run.wall_seconds, "generate_seconds": generate_seconds,
            "load_average_before": load_before, "load_average_after": environment.load_average(),
            "summary": printed.strip().splitlines()[-1]})
        os.remove(out)
    shutil.rmtree(export_dir, ignore_errors=True)
    return _finish(record)


def run_writer(command: str, work_dir: str, rows: int, features: int, passes: int = 10, note: str = "") -> Dict:
    """Benchmark 6: the hand tf.Example encoder against tfx_bsl's, writing the same synthetic rows."""
    from benchmarks.perf.writer import writer_rates

    record = _record(command, note)
    os.makedirs(work_dir, exist_ok=True)
    record.update(writer_rates(work_dir, rows, features, passes))
    return _finish(record)
