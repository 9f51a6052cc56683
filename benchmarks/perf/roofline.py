"""A model's hardware limit here: every distinct matmul of its training step (`flops`) timed alone at its shapes
with random inputs, summed (the step time if it did nothing but matmuls); `peak_matmul_rate` is the machine's
best dense rate."""
from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Dict, List, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from benchmarks.perf.flops import MatmulOp

# Copies of an op per timed call: amortises the ~10-50 us cost of one tf.function call.
COPIES_PER_CALL = 8


def _op_fn(op: MatmulOp):
    attrs = dict(op.attrs)
    if op.op_type == "Einsum":
        return lambda a, b: tf.einsum(attrs["equation"], a, b)
    if op.op_type == "MatMul":
        return lambda a, b: tf.linalg.matmul(a, b, transpose_a=attrs["transpose_a"], transpose_b=attrs["transpose_b"])
    return lambda a, b: tf.linalg.matmul(a, b, adjoint_a=attrs["adj_x"], adjoint_b=attrs["adj_y"])


def time_op(op: MatmulOp, repeats: int = 7, min_seconds: float = 0.05) -> float:
    """Median seconds of one run of `op` alone (distinct random inputs per copy, so nothing is folded or shared)."""
    fn = _op_fn(op)
    a_shape, b_shape = op.shapes
    firsts = [tf.random.normal(a_shape) for _ in range(COPIES_PER_CALL)]
    second = tf.random.normal(b_shape)

    @tf.function
    def run(xs, y):
        return [fn(x, y) for x in xs]

    run(firsts, second)  # trace and warm up
    calls = 1
    while True:  # calls per sample so that a sample lasts at least min_seconds
        start = time.perf_counter()
        for _ in range(calls):
            run(firsts, second)
        if time.perf_counter() - start >= min_seconds or calls >= 4096:
            break
        calls *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = run(firsts, second)
        _ = out[-1].numpy()
        samples.append((time.perf_counter() - start) / (calls * COPIES_PER_CALL))
    return statistics.median(samples)


def matmul_roofline(ops: Sequence[MatmulOp], repeats: int = 7, min_seconds: float = 0.05) -> Dict:
    """Time each distinct op once; return the step's matmul FLOPs, their summed time and the per-shape table."""
    counts = Counter(op.key for op in ops)
    first = {op.key: op for op in reversed(ops)}  # each key's first op
    rows: List[Dict] = []
    total_flops = total_seconds = 0.0
    for key, count in counts.most_common():
        op = first[key]
        seconds = time_op(op, repeats=repeats, min_seconds=min_seconds)
        rows.append({"op": op.describe(), "count": count, "flops": op.flops, "seconds": seconds,
                     "gflops_per_s": op.flops / seconds / 1e9})
        total_flops += count * op.flops
        total_seconds += count * seconds
    rows.sort(key=lambda r: -r["count"] * r["seconds"])
    return {"flops_per_step": total_flops, "matmul_seconds_per_step": total_seconds,
            "gflops_per_s": total_flops / total_seconds / 1e9, "ops": rows}


def peak_matmul_rate(n: int = 1024, repeats: int = 5, min_seconds: float = 0.2) -> float:
    """GFLOP/s of an n x n x n float32 matmul: the machine's best dense rate."""
    op = MatmulOp("MatMul", (("transpose_a", False), ("transpose_b", False)), ((n, n), (n, n)), 2 * n ** 3)
    return op.flops / time_op(op, repeats=repeats, min_seconds=min_seconds) / 1e9
