"""Quiet logs by default (the CLI's; `mean-tf --verbose` keeps everything).

A pipeline run on the DirectRunner prints dozens of known-harmless lines: FutureWarnings of Google's
client libraries about Python 3.10, absl warnings of TFT's analyzer cache, TensorFlow deprecations, CUDA
factory errors on a machine without a GPU. `quiet()` (the CLI's default; `mean-tf --verbose` keeps them)
raises TensorFlow's C++ log level to errors only, ignores Python warnings of the FutureWarning and
DeprecationWarning kinds and of TensorFlow/Beam/TFX, and routes Python logging through `ErrorHandler`,
which prints records at ERROR or above only. Call it before TensorFlow is imported. (The pipeline's
per-component progress lines come from `pipeline.local_runner`.)
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY_MODULES = r"(tensorflow|tf_keras|apache_beam|tfx|tfx_bsl|tensorflow_transform|tensorflow_model_analysis|" \
                r"tensorflow_data_validation|google|absl|keras|ml_metadata|kfp)(\..*)?"


class ErrorHandler(logging.Handler):
    """Prints log records at ERROR or above, one line each."""

    def __init__(self, stream=None):
        super().__init__(logging.ERROR)
        self.stream = stream

    def emit(self, record):
        print(f"[{record.levelname}] {record.name}: {record.getMessage().splitlines()[0]}",
              file=self.stream or sys.stderr, flush=True)


def quiet() -> None:
    """Silence the known-harmless output (see the module docstring) and show component progress instead."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, (logging.StreamHandler, ErrorHandler))
                     or type(h).__module__.startswith("_pytest")] + [ErrorHandler()]
    for name in ("absl", "tensorflow", "apache_beam", "tfx"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    try:
        from absl import logging as absl_logging

        absl_logging.use_python_logging(quiet=True)
    except ImportError:  # absl is a TensorFlow dependency; without it there is nothing to route
        pass
