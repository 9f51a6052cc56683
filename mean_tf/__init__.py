"""mean-tf: the MEAN CLTV model (Liu et al.) as tf.keras layers, its baselines, metrics and a TFX pipeline.

Importing this package pins tf.keras to Keras 2 (tf_keras): TFMA 0.47 and the TF1 SavedModel
loader that TF Serving uses both need it, and TensorFlow reads the switch only at its first import.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
