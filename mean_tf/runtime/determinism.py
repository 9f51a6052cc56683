"""The one place where mean-tf sets TensorFlow's randomness and determinism (used by `training.fit`).

Every training run seeds Python's `random`, NumPy and TensorFlow with `config.seed`
(`tf.keras.utils.set_random_seed`): weight initialisation, the seeded shuffle of `training.make_dataset`
and random ops (OptDist's Gumbel noise) then repeat. That alone is not enough for equal metrics: some
TensorFlow kernels may reduce in a different order from run to run. With `MEANConfig.deterministic`
(off by default: it can slow GPU training, and ops without a deterministic kernel raise),
`tf.config.experimental.enable_op_determinism()` makes every op deterministic, and tf.data keeps its
element order. The same seed then gives the same metrics (to float precision) on the same machine with
the same thread counts; on CPU the intra-op thread count changes how Eigen splits reductions, so
to compare across machines fix it with the environment variables `TF_NUM_INTRAOP_THREADS` and
`TF_NUM_INTEROP_THREADS` (e.g. 1) before TensorFlow starts. Determinism, once on, stays on for the process.
"""
from __future__ import annotations

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf


def configure(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, make TF ops deterministic too."""
    tf.keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
