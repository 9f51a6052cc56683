"""The model registry: `build(name, config)` for every model of the paper's Table 1 and the classical baselines.

Registry entries are filled in `mean_tf/models/registry.py`.
"""
from mean_tf.models.registry import MODEL_NAMES, build, is_multi_horizon, spec  # noqa: F401
