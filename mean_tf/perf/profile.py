"""Where a training step spends its time: the TensorFlow profiler's trace, summed by op type.

`profile_steps` traces a few steps with `tf.profiler.experimental` and reads the XSpace it writes
(`*.xplane.pb`): every TensorFlow op event on the host's compute threads is named `<op name>:<op type>`,
and the summed durations per type (across threads, so they can exceed the wall time on 2 cores)
show which kernels the step is made of: matmuls, einsums, element-wise ops, the optimizer.
"""
from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
import time
from typing import Dict

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

_OP_EVENT = re.compile(r"^(?P<name>[^:]+):(?P<type>[A-Za-z0-9_]+)$")
MATMUL_KERNELS = ("MatMul", "_FusedMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
                  "_MklMatMul", "_MklNativeFusedMatMul", "_MklFusedMatMul", "_MklEinsum", "_MklBatchMatMulV2")  # oneDNN


def op_time_by_type(xplane_path: str) -> Dict[str, float]:
    """Seconds per op type over every TensorFlow op event of a host trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    totals: Dict[str, float] = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                match = _OP_EVENT.match(names.get(event.metadata_id, ""))
                if match:
                    totals[match.group("type")] += event.duration_ps / 1e12
    return dict(totals)


def profile_steps(train_step, iterator, steps: int = 5, log_dir: str | None = None) -> Dict:
    """Trace `steps` calls of a (warm) Keras train function; op time by type, per step, largest first."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="mean_tf_profile_")
    tf.profiler.experimental.start(log_dir)
    start = time.perf_counter()
    for _ in range(steps):
        logs = train_step(iterator)
    _ = float(logs["loss"])
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not paths:
        return {"error": "the profiler wrote no trace"}
    per_type = {k: v / steps for k, v in op_time_by_type(paths[-1]).items()}
    total = sum(per_type.values())
    matmul = sum(v for k, v in per_type.items() if k in MATMUL_KERNELS)
    top = sorted(per_type.items(), key=lambda kv: -kv[1])[:15]
    return {"steps": steps, "wall_seconds_per_step": wall, "op_seconds_per_step": total,
            "matmul_share_of_op_time": matmul / total if total else 0.0,
            "top_op_types": [{"type": k, "seconds_per_step": v, "share": v / total} for k, v in top]}
