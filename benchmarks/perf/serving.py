"""Benchmark 3: latency of `serving_default` (serialized raw tf.Example in, money out) of a briefly trained export,
loaded as TF Serving does (TF1 loader, one Session), one `Session.run` per request through a callable made once
(no feed-dict handling, which TF Serving does not have)."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

from mean_tf import contract
from mean_tf.serving import export
from benchmarks.perf.throughput import compiled_model, streamed_dataset, time_steps


def export_briefly_trained(model_name: str, config, tf_transform_output, files: Sequence[str], label: str,
                           raw_features: Sequence[str], export_dir: str, steps: int = 3) -> Dict:
    """Train `model_name` for a few steps on the transformed files and export the servable model."""
    model = compiled_model(model_name, config, tf_transform_output)
    time_steps(model, streamed_dataset(files, tf_transform_output, list(model.config.labels), model.config.batch_size, 1),
               steps, 1)
    export.export_serving_model(model, tf_transform_output, label, raw_features, export_dir)
    return {"model": model_name, "label": label, "train_steps": steps + 1, "export_dir": export_dir}


def serving_latency(export_dir: str, serialized: Sequence[bytes], batch_sizes: Sequence[int] = (1, 64, 1024),
                    requests: int = 200, warmup: int = 10, max_seconds_per_batch_size: float = 30.0) -> Dict:
    """p50/p99 milliseconds of one `serving_default` request per batch size (TF1 loader, one Session)."""
    graph = tf.Graph()
    results: Dict[str, Dict] = {}
    with tf.compat.v1.Session(graph=graph) as session:
        start = time.perf_counter()
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        load_seconds = time.perf_counter() - start
        signature = meta.signature_def["serving_default"]
        feed = graph.get_tensor_by_name(signature.inputs[contract.SERVING_INPUT].name)
        fetches = [graph.get_tensor_by_name(info.name) for info in signature.outputs.values()]
        run = session.make_callable(fetches, [feed])
        for batch_size in batch_sizes:
            batch = np.array([serialized[i % len(serialized)] for i in range(batch_size)], dtype=object)
            for _ in range(warmup):
                run(batch)
            latencies: List[float] = []
            budget = time.perf_counter() + max_seconds_per_batch_size
            while len(latencies) < requests and (time.perf_counter() < budget or len(latencies) < 20):
                t0 = time.perf_counter()
                outputs = run(batch)
                latencies.append((time.perf_counter() - t0) * 1000.0)
            assert outputs[0].shape[0] == batch_size
            p50, p99 = np.percentile(latencies, [50, 99])
            results[str(batch_size)] = {"requests": len(latencies), "p50_ms": float(p50), "p99_ms": float(p99),
                                        "mean_ms": statistics.fmean(latencies),
                                        "examples_per_s": batch_size / (statistics.median(latencies) / 1e3)}
    return {"load_seconds": load_seconds, "outputs": list(signature.outputs), "batch_sizes": results}
