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


def synthetic_data(work_dir: str, rows: int, features: int, seed: int = 0):
    """(manifest, seconds spent generating) of the cached synthetic data set of this size, generated if missing."""
    from mean_tf.data import synthetic
    from mean_tf.data.manifest import MANIFEST_FILE, read_manifest

    folder = synthetic_dir(work_dir, rows, features, seed)
    start = time.perf_counter()
    if not os.path.exists(os.path.join(folder, MANIFEST_FILE)):
        synthetic.build(folder, rows, features, seed=seed)
    return read_manifest(folder), time.perf_counter() - start


def prepare(work_dir: str, rows: int, features: int, config: MEANConfig, seed: int = 0,
            beam_pipeline_args: Sequence[str] = ()) -> BenchData:
    """Generate `rows` x `features` synthetic rows (unless cached) and materialise their Transform (cached too)."""
    from mean_tf import transform

    manifest, generated = synthetic_data(work_dir, rows, features, seed)
    start = time.perf_counter()
    materialized = transform.materialize(manifest, config, manifest.root + "-transform", beam_pipeline_args)
    return BenchData(manifest, materialized, {"generate": generated, "transform": time.perf_counter() - start})
