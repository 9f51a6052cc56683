"""Benchmark 1: training throughput of several models in one run, built and compiled as `training.fit` does,
on batches streamed from the transformed TFRecords and on a few cached in memory (the step alone), next to
their matmul roofline (`flops`, `roofline`): the share is the matmuls' time alone over the step's."""
from __future__ import annotations

import time
from typing import Dict, List, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)

from mean_tf.training import protocol
from mean_tf.config import MEANConfig
from mean_tf.contract import NUMERIC_KEY
from mean_tf.models import registry
from mean_tf.models.data_facts import DataFacts
from benchmarks.perf.flops import count_model_flops
from benchmarks.perf.roofline import matmul_roofline

IN_MEMORY_BATCHES = 4


def compiled_model(model_name: str, config: MEANConfig, tf_transform_output, jit_compile: bool = False):
    """registry.build (with the Transform's vocabulary sizes) + compile(Adam), as `training.fit` does;
    `jit_compile` turns on XLA for the step. The built model's `config` is the variant's."""
    facts = DataFacts(categorical_vocab_sizes=protocol.categorical_vocab_sizes(tf_transform_output))
    model = registry.build(model_name, config, facts)
    model.compile(optimizer=protocol.optimizer(config), jit_compile=jit_compile)
    return model


def streamed_dataset(files: Sequence[str], tf_transform_output, labels, batch_size: int, passes: int):
    """`training.make_dataset` (shuffled, as in training) over the files listed `passes` times, so the
    batches run on across file and epoch boundaries and only the very last one is short."""
    return protocol.make_dataset(list(files) * passes, tf_transform_output.transformed_feature_spec(), labels,
                                 batch_size, shuffle=True)


def time_steps(model, dataset, steps: int, warmup: int) -> Dict:
    """Seconds per training step over `steps` steps after `warmup` steps (tracing, caches, autotuning)."""
    train_step = model.make_train_function()
    iterator = iter(dataset)
    for _ in range(warmup):
        logs = train_step(iterator)
    _ = float(logs["loss"])
    start = time.perf_counter()
    for _ in range(steps):
        logs = train_step(iterator)
    _ = float(logs["loss"])
    seconds = (time.perf_counter() - start) / steps
    return {"steps": steps, "warmup": warmup, "seconds_per_step": seconds}


def benchmark_model(model_name: str, config: MEANConfig, tf_transform_output, files: Sequence[str], rows: int,
                    steps: int, warmup: int, jit_compile: bool = False, roofline_repeats: int = 5,
                    roofline_min_seconds: float = 0.05) -> Dict:
    """One model's streamed and in-memory throughput, FLOPs per example and roofline share."""
    model = compiled_model(model_name, config, tf_transform_output, jit_compile)
    batch = model.config.batch_size
    labels = list(model.config.labels)
    passes = max(1, -(-(steps + warmup + 1) * batch // max(rows, 1)))  # every timed batch full
    streamed = time_steps(model, streamed_dataset(files, tf_transform_output, labels, batch, passes), steps, warmup)
    cached = streamed_dataset(files, tf_transform_output, labels, batch, passes).take(IN_MEMORY_BATCHES).cache().repeat()
    in_memory = time_steps(model, cached, steps, warmup)
    num_numeric = int(tf_transform_output.transformed_feature_spec()[NUMERIC_KEY].shape[0])
    flops = count_model_flops(model, num_numeric, batch)
    roof = matmul_roofline(flops.train_ops, repeats=roofline_repeats, min_seconds=roofline_min_seconds)
    result = {"model": model_name, "batch_size": batch, "jit_compile": jit_compile, "labels": labels,
              "parameters": int(model.count_params()), **flops.to_dict(), "roofline": roof}
    for mode, timing in (("streamed", streamed), ("in_memory", in_memory)):
        seconds = timing["seconds_per_step"]
        result[mode] = {**timing, "examples_per_s": batch / seconds,
                        "achieved_gflops_per_s": flops.train_per_example * batch / seconds / 1e9,
                        "roofline_share": roof["matmul_seconds_per_step"] / seconds}
    return result


def train_throughput(model_names: List[str], config: MEANConfig, tf_transform_output, files: Sequence[str],
                     rows: int, steps: int, warmup: int, jit_compile: bool = False,
                     roofline_min_seconds: float = 0.05) -> Dict:
    """All models in one run (same process, same data, same threads), plus each model's ratio to the first
    baseline named `dnn_ziln` when it is among them."""
    results = [benchmark_model(name, config, tf_transform_output, files, rows, steps, warmup, jit_compile,
                               roofline_min_seconds=roofline_min_seconds)
               for name in model_names]
    by_name = {r["model"]: r for r in results}
    if "dnn_ziln" in by_name:
        base = by_name["dnn_ziln"]
        for r in results:
            for mode in ("streamed", "in_memory"):
                r[mode]["vs_dnn_ziln"] = r[mode]["examples_per_s"] / base[mode]["examples_per_s"]
    return {"models": results}
