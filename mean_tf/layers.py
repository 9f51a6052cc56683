"""Custom Keras layers of MEAN (paper, sec. 3.2) and the building blocks the baselines share."""
from __future__ import annotations

from typing import Dict, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

NUMERIC_KEY = "numeric"
CATEGORICAL_PREFIX = "cat__"


@tf.keras.utils.register_keras_serializable("mean_tf")
class FeatureEncoder(tf.keras.layers.Layer):
    """x_u of the paper: the transformed-feature dict as one dense vector.

    `numeric` [B, D] (already normalised by Transform) is concatenated with one embedding of width
    `embedding_dim` per categorical input `cat__<name>` (int ids, shape [B] or [B, 1]).
    """

    def __init__(self, categorical_vocab_sizes: Dict[str, int] | None = None, embedding_dim: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.categorical_vocab_sizes = dict(sorted((categorical_vocab_sizes or {}).items()))
        self.embedding_dim = embedding_dim
        self.embeddings = {
            name: tf.keras.layers.Embedding(size, embedding_dim, name=f"embed_{name}")
            for name, size in self.categorical_vocab_sizes.items()
        }

    def call(self, inputs):
        parts = []
        if NUMERIC_KEY in inputs:
            parts.append(tf.cast(inputs[NUMERIC_KEY], tf.float32))
        for name, embedding in self.embeddings.items():
            ids = tf.reshape(tf.cast(inputs[CATEGORICAL_PREFIX + name], tf.int64), [-1])
            parts.append(embedding(ids))
        if not parts:
            raise ValueError("FeatureEncoder got neither a 'numeric' input nor a known categorical input")
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def get_config(self):
        return {**super().get_config(), "categorical_vocab_sizes": self.categorical_vocab_sizes,
                "embedding_dim": self.embedding_dim}


@tf.keras.utils.register_keras_serializable("mean_tf")
class MLP(tf.keras.layers.Layer):
    """A stack of Dense layers (ReLU by default), optionally each followed by batch normalisation."""

    def __init__(self, units: Sequence[int], activation: str = "relu", batch_norm: bool = False,
                 final_activation: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.batch_norm = batch_norm
        self.final_activation = final_activation
        self.dense = [
            tf.keras.layers.Dense(
                u, activation=activation if (i < len(self.units) - 1 or final_activation) else None, name=f"dense_{i}"
            )
            for i, u in enumerate(self.units)
        ]
        self.norms = [tf.keras.layers.BatchNormalization(name=f"bn_{i}") for i in range(len(self.units))] if batch_norm else []

    def call(self, x, training=None):
        for i, dense in enumerate(self.dense):
            x = dense(x)
            if self.norms:
                x = self.norms[i](x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "batch_norm": self.batch_norm, "final_activation": self.final_activation}
