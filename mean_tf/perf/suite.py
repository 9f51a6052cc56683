"""The benchmark parts behind `mean-tf perf ...`: each prepares its data, measures, and returns one JSON-able dict."""
from __future__ import annotations

import os
import tempfile
import time
from typing import Dict, Optional, Sequence

from mean_tf.config import MEANConfig
from mean_tf.perf import environment
from mean_tf.perf.data import BenchData, prepare

DEFAULT_TRAIN_MODELS = ("mean", "mtl_mean", "dnn_ziln")


def set_threads(intra_op: Optional[int], inter_op: Optional[int]) -> None:
    """TensorFlow's thread pools; must run before TensorFlow executes its first op."""
    import tensorflow as tf

    if intra_op is not None:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def _data_record(data: BenchData, rows: int, features: int) -> Dict:
    m = data.manifest
    return {"rows": rows, "features": features, "train_rows": data.train_rows,
            "numeric_features": len(m.numeric_features), "categorical_features": len(m.categorical_features),
            "root": m.root, "prepare_seconds": data.seconds}


def _start(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, note: str):
    """The record of a part (command, machine, its data) and its data, generated and transformed if not cached."""
    record = {"command": command, "environment": environment.describe(), "started_unix": time.time()}
    data = prepare(work_dir, rows, features, config)
    record.update(data=_data_record(data, rows, features), note=note)
    return record, data


def _finish(record: Dict) -> Dict:
    record["seconds"] = time.time() - record.pop("started_unix")
    record["load_average_after"] = environment.load_average()
    return record


def run_train(command: str, work_dir: str, rows: int, features: int, config: MEANConfig,
              models: Sequence[str] = DEFAULT_TRAIN_MODELS, steps: int = 30, warmup: int = 5,
              jit_compile: bool = False, profile_models: Sequence[str] = ("mean", "dnn_ziln"),
              roofline_min_seconds: float = 0.05, peak_size: int = 1024, note: str = "") -> Dict:
    """Benchmark 1: throughput, FLOPs and roofline share of each model; peak matmul rate; profiles."""
    from mean_tf.perf import throughput
    from mean_tf.perf.roofline import peak_matmul_rate

    record, data = _start(command, work_dir, rows, features, config, note)
    tft_output = data.materialized.tf_transform_output()
    files = data.materialized.files("train")
    record.update(jit_compile=jit_compile, batch_size=config.batch_size)
    record.update(throughput.train_throughput(list(models), config, tft_output, files, data.train_rows, steps, warmup,
                                              jit_compile, roofline_min_seconds, profile_models))
    record["roofline_min_seconds"] = roofline_min_seconds
    record["peak_matmul_size"] = peak_size
    record["peak_matmul_gflops_per_s"] = peak_matmul_rate(peak_size, min_seconds=4 * roofline_min_seconds)
    return _finish(record)


def run_input(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, batches: int = 40,
              warmup: int = 5, note: str = "") -> Dict:
    """Benchmark 2: examples per second of the input pipeline alone (and its variants)."""
    from mean_tf.perf.input_pipeline import input_throughput

    record, data = _start(command, work_dir, rows, features, config, note)
    tft_output = data.materialized.tf_transform_output()
    record.update(input_throughput(data.materialized.files("train"), tft_output, list(config.labels),
                                   config.batch_size, data.train_rows, batches, warmup))
    return _finish(record)


def run_serving(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, model: str = "mean",
                label: str = "cltv_365", batch_sizes: Sequence[int] = (1, 64, 1024), requests: int = 200,
                note: str = "") -> Dict:
    """Benchmark 3: p50/p99 latency of serving_default through the TF1 Session loader."""
    from mean_tf.perf.serving import export_briefly_trained, serving_latency

    record, data = _start(command, work_dir, rows, features, config, note)
    tft_output = data.materialized.tf_transform_output()
    raw_features = list(data.manifest.numeric_features) + list(data.manifest.categorical_features)
    export_dir = tempfile.mkdtemp(prefix="mean_tf_serving_")
    record["export"] = export_briefly_trained(model, config, tft_output, data.materialized.files("train"), label,
                                              raw_features, os.path.join(export_dir, "model"))
    record.update(serving_latency(record["export"]["export_dir"], raw_test_examples(data, max(batch_sizes)),
                                  batch_sizes, requests))
    return _finish(record)


def raw_test_examples(data: BenchData, count: int):
    """Up to `count` serialized raw tf.Examples of the test split, as clients would send them (labels included:
    `serving_default` parses only the features it needs)."""
    import tensorflow as tf

    files = [os.path.join(data.manifest.root, f) for f in data.manifest.splits["test"]]
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


def run_score(command: str, work_dir: str, rows: int, features: int, config: MEANConfig, model: str = "mean",
              label: str = "cltv_365", sizes: Sequence[int] = (100_000, 1_000_000), note: str = "") -> Dict:
    """Benchmark 5: `mean-tf score` on growing numbers of customers, each run in a fresh process: wall
    time and peak resident memory (the process tree, sampled), which should stay flat in the customers."""
    import math
    import shutil
    import subprocess
    import sys

    from mean_tf.data.splits import FRACTIONS
    from mean_tf.perf.data import synthetic_data
    from mean_tf.perf.memory import RSSSampler
    from mean_tf.perf.serving import export_briefly_trained

    record, data = _start(command, work_dir, rows, features, config, note)
    raw_features = list(data.manifest.numeric_features) + list(data.manifest.categorical_features)
    export_dir = tempfile.mkdtemp(prefix="mean_tf_score_")
    record["scoring_runs"] = []
    record["export"] = export_briefly_trained(model, config, data.materialized.tf_transform_output(),
                                              data.materialized.files("train"), label, raw_features,
                                              os.path.join(export_dir, "model"))
    for customers in sizes:
        # The same generator (features, seed) at more rows; its train split is scored.
        scoring, generate_seconds = synthetic_data(work_dir, math.ceil(customers / FRACTIONS[0]), features,
                                                   config.seed)
        scored = scoring.row_counts["train"]
        out = os.path.join(export_dir, "scores.parquet")
        argv = [sys.executable, "-m", "mean_tf.cli", "score", "--model", record["export"]["export_dir"],
                "--data", scoring.root, "--split", "train", "--out", out]
        load_before = environment.load_average()
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with RSSSampler(process.pid, 0.2) as sampler:
            log = process.communicate()[0]
        wall = time.perf_counter() - start
        if process.returncode != 0:
            raise RuntimeError(f"mean-tf score failed at {customers:,} customers:\n{log[-2000:]}")
        record["scoring_runs"].append({"customers": scored, "wall_seconds": wall, "peak_rss_mib": sampler.peak() / 2 ** 20,
                               "customers_per_s": scored / wall, "generate_seconds": generate_seconds,
                               "load_average_before": load_before, "load_average_after": environment.load_average(),
                               "summary": log.strip().splitlines()[-1]})
        os.remove(out)
    shutil.rmtree(export_dir, ignore_errors=True)
    return _finish(record)
