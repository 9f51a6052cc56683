"""mean-tf: the MEAN CLTV model (Liu et al.) as tf.keras layers, its baselines, metrics and a TFX pipeline.

Importing this package pins tf.keras to Keras 2 (tf_keras): TFMA 0.47 and the TF1 SavedModel
loader that TF Serving uses both need it. TensorFlow resolves `tf.keras` on its first use, so the
switch must be set before that; if Keras 3 is already active, importing mean_tf fails loudly.

Subpackages, bottom up (each may import only those below it; `docs/design.md`, "Layout"): runtime, data,
models, transform, evaluation, training, serving, tfx_modules, benchmark, commands; the top-level modules
contract, errors, config and cli.

May import: nothing.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def _check_keras_mode() -> None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    if not tf.keras.__name__.startswith("tf_keras"):
        raise ImportError(
            "mean_tf needs Keras 2 (tf_keras) but tf.keras is Keras 3 here: set TF_USE_LEGACY_KERAS=1 "
            "before TensorFlow is first used (or import mean_tf first)"
        )


_check_keras_mode()

_SUBPACKAGES = ("benchmark", "commands", "data", "evaluation", "models", "runtime", "serving", "tfx_modules", "training",
                "transform")


def __getattr__(name):
    """`mean_tf.data`, `mean_tf.models`, ... without an explicit `import mean_tf.data` (loaded on first use)."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
