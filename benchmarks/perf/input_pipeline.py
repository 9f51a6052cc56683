"""Benchmark 2: the input pipeline alone (TFRecord -> parsed, transformed batches), examples per second, for
`training.make_dataset` as training reads (`training`) and variants one change away from it."""
from __future__ import annotations

import time
from typing import Callable, Dict, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.training import protocol
from mean_tf.transform import preprocessing


def _parsed(records, spec, labels, batch_size: int, parallel_reads: bool):
    ds = records.shuffle(protocol.SHUFFLE_BUFFER, seed=0).batch(batch_size)
    ds = ds.map(lambda r: preprocessing.split_targets(tf.io.parse_example(r, spec), labels),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=not parallel_reads)
    return ds.prefetch(tf.data.AUTOTUNE)


def variant_parallel_reads(files, spec, labels, batch_size):
    """Files read by a parallel interleave (`num_parallel_reads=AUTOTUNE`), order not deterministic."""
    records = tf.data.TFRecordDataset(list(files), compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return _parsed(records, spec, labels, batch_size, parallel_reads=True)


VARIANTS: Dict[str, Callable] = {
    "training": lambda files, spec, labels, batch: protocol.make_dataset(files, spec, labels, batch, shuffle=True),
    "no_shuffle": lambda files, spec, labels, batch: protocol.make_dataset(files, spec, labels, batch),  # evaluation
    "parallel_reads": variant_parallel_reads,
}


def time_dataset(dataset: tf.data.Dataset, batches: int, warmup: int) -> Dict:
    """Examples per second over `batches` batches after `warmup` (autotuning, shuffle buffer fill)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    examples = 0
    start = time.perf_counter()
    for _ in range(batches):
        features, _targets = next(iterator)
        examples += int(features["numeric"].shape[0])
    seconds = time.perf_counter() - start
    return {"batches": batches, "warmup": warmup, "examples": examples, "seconds": seconds,
            "examples_per_s": examples / seconds}


def input_throughput(files: Sequence[str], tf_transform_output, labels: Sequence[str], batch_size: int, rows: int,
                     batches: int, warmup: int, variants: Sequence[str] = tuple(VARIANTS)) -> Dict:
    """Examples per second of each pipeline variant over the same files (listed often enough for every batch to be full)."""
    passes = max(1, -(-(batches + warmup + 1) * batch_size // max(rows, 1)))
    spec = tf_transform_output.transformed_feature_spec()
    results = {}
    for name in variants:
        dataset = VARIANTS[name](list(files) * passes, spec, list(labels), batch_size)
        results[name] = time_dataset(dataset, batches, warmup)
    return {"batch_size": batch_size, "files": len(files), "variants": results}
