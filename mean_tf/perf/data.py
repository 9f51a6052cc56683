"""The benchmarks' data: a synthetic data set (`mean_tf.data.synthetic`) and its Transform output, cached by size."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, Sequence

from mean_tf.config import MEANConfig


@dataclasses.dataclass
class BenchData:
    manifest: object  # mean_tf.data.manifest.Manifest
    materialized: object  # mean_tf.transform.Materialized
    seconds: Dict[str, float]  # time spent generating / transforming in this call (0 when cached)

    @property
    def train_rows(self) -> int:
        return int(self.manifest.row_counts["train"])


def synthetic_dir(work_dir: str, rows: int, features: int, seed: int) -> str:
    return os.path.join(work_dir, f"synthetic-{rows}x{features}-s{seed}")


def prepare(work_dir: str, rows: int, features: int, config: MEANConfig, seed: int = 0,
            beam_pipeline_args: Sequence[str] = ()) -> BenchData:
    """Generate `rows` x `features` synthetic rows (unless cached) and materialise their Transform (cached too)."""
    from mean_tf import transform
    from mean_tf.data import synthetic
    from mean_tf.data.manifest import MANIFEST_FILE, read_manifest

    data_dir = synthetic_dir(work_dir, rows, features, seed)
    seconds = {"generate": 0.0, "transform": 0.0}
    start = time.perf_counter()
    if os.path.exists(os.path.join(data_dir, MANIFEST_FILE)):
        manifest = read_manifest(os.path.join(data_dir, MANIFEST_FILE))
    else:
        manifest = synthetic.build(data_dir, rows, features, seed=seed)
        seconds["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    materialized = transform.materialize(manifest, config, data_dir + "-transform", beam_pipeline_args)
    seconds["transform"] = time.perf_counter() - start
    return BenchData(manifest, materialized, seconds)
