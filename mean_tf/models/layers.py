"""Custom Keras layers of MEAN (paper, sec. 3.2) and the building blocks the baselines share."""
from __future__ import annotations

from typing import Dict, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.contract import CATEGORICAL_PREFIX, NUMERIC_KEY
from mean_tf.models.data_facts import DataFacts

# Bound on the z-scored numeric inputs. Real data stay far inside (the largest |z| of Online Retail II
# and CDNOW is ~43); an absurd serving value (or a feature constant in train, which Transform only
# centres) would otherwise reach the dense layers as e.g. 1e12, whose squared gradients overflow Adam.
NUMERIC_CLIP = 1e3
BN_MOMENTUM = 0.99  # Keras' default


@tf.keras.utils.register_keras_serializable("mean_tf")
class FeatureEncoder(tf.keras.layers.Layer):
    """x_u of the paper: the transformed-feature dict as one dense vector.

    `numeric` [B, D] as Transform wrote it (`MEANConfig.numeric_encoding`): "zscore", standardized values, used
    as they are (clipped to +-`numeric_clip`); "ple" and "bins", each value's position q in [0, K] among its
    feature's K quantile bins (`mean_tf.transform.preprocessing.quantile_position`), encoded here either
    piecewise-linearly, clip(q - t, 0, 1) for t = 0..K-1 (D x K values), or as one learned embedding of width
    `embedding_dim` per feature and bin (D x `embedding_dim` values) (Gorishniy et al., NeurIPS 2022).
    Concatenated with one embedding of width `embedding_dim` per categorical input `cat__<name>` (int ids,
    shape [B] or [B, 1]).
    """

    def __init__(self, categorical_vocab_sizes: Dict[str, int] | None = None, embedding_dim: int = 8,
                 numeric_clip: float = NUMERIC_CLIP, numeric_encoding: str = "zscore", numeric_bins: int = 8,
                 **kwargs):
        super().__init__(**kwargs)
        self.numeric_clip = float(numeric_clip)
        self.categorical_vocab_sizes = dict(sorted((categorical_vocab_sizes or {}).items()))
        self.embedding_dim = embedding_dim
        self.numeric_encoding = numeric_encoding
        self.numeric_bins = int(numeric_bins)
        self.embeddings = {
            name: tf.keras.layers.Embedding(size, embedding_dim, name=f"embed_{name}")
            for name, size in self.categorical_vocab_sizes.items()
        }
        self.bin_embedding = None

    def build(self, input_shape):
        if self.numeric_encoding == "bins" and NUMERIC_KEY in input_shape:
            features = int(input_shape[NUMERIC_KEY][-1])
            self.bin_embedding = tf.keras.layers.Embedding(features * self.numeric_bins, self.embedding_dim,
                                                           name="embed_numeric_bins")
        super().build(input_shape)

    def encode_numeric(self, numeric):
        """The model's view of the `numeric` input, [B, D'] (see the class docstring)."""
        if self.numeric_encoding == "zscore":
            return tf.clip_by_value(numeric, -self.numeric_clip, self.numeric_clip)
        position = tf.clip_by_value(numeric, 0.0, float(self.numeric_bins))
        features = tf.shape(position)[1]
        if self.numeric_encoding == "ple":
            steps = tf.range(self.numeric_bins, dtype=position.dtype)
            encoded = tf.clip_by_value(position[:, :, None] - steps, 0.0, 1.0)  # [B, D, K]
            return tf.reshape(encoded, [-1, features * self.numeric_bins])
        bins = tf.minimum(tf.cast(tf.floor(position), tf.int32), self.numeric_bins - 1)  # [B, D], 0..K-1
        ids = bins + self.numeric_bins * tf.range(features)[None, :]  # one table, each feature its own K rows
        return tf.reshape(self.bin_embedding(ids), [-1, features * self.embedding_dim])

    def call(self, inputs):
        parts = []
        if NUMERIC_KEY in inputs:
            parts.append(self.encode_numeric(tf.cast(inputs[NUMERIC_KEY], tf.float32)))
        for name, embedding in self.embeddings.items():
            ids = tf.reshape(tf.cast(inputs[CATEGORICAL_PREFIX + name], tf.int64), [-1])
            parts.append(embedding(ids))
        if not parts:
            raise ValueError("FeatureEncoder got neither a 'numeric' input nor a known categorical input")
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def get_config(self):
        return {**super().get_config(), "categorical_vocab_sizes": self.categorical_vocab_sizes,
                "embedding_dim": self.embedding_dim, "numeric_clip": self.numeric_clip,
                "numeric_encoding": self.numeric_encoding, "numeric_bins": self.numeric_bins}


def feature_encoder(config: MEANConfig, facts: DataFacts) -> FeatureEncoder:
    """The FeatureEncoder every model builds: the config's numeric encoding, the data's vocabularies."""
    return FeatureEncoder(facts.categorical_vocab_sizes, config.embedding_dim, numeric_encoding=config.numeric_encoding,
                          numeric_bins=config.numeric_bins, name="encoder")


@tf.keras.utils.register_keras_serializable("mean_tf")
class MLP(tf.keras.layers.Layer):
    """A stack of Dense layers (ReLU by default), optionally each followed by batch normalisation.

    `bn_momentum`: momentum of the running statistics (Keras' 0.99 by default; see `MEANConfig.bn_momentum`).
    `dropout`: rate of a dropout after every layer, in training only (`MEANConfig.dropout`; 0 = none).
    """

    def __init__(self, units: Sequence[int], activation: str = "relu", batch_norm: bool = False,
                 final_activation: bool = True, bn_momentum: float = BN_MOMENTUM, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.batch_norm = batch_norm
        self.final_activation = final_activation
        self.bn_momentum = float(bn_momentum)
        self.dense = [
            tf.keras.layers.Dense(
                u, activation=activation if (i < len(self.units) - 1 or final_activation) else None, name=f"dense_{i}"
            )
            for i, u in enumerate(self.units)
        ]
        self.norms = [tf.keras.layers.BatchNormalization(momentum=self.bn_momentum, name=f"bn_{i}")
                      for i in range(len(self.units))] if batch_norm else []
        self.dropout = float(dropout)
        self.drops = [tf.keras.layers.Dropout(self.dropout, name=f"dropout_{i}")
                      for i in range(len(self.units))] if self.dropout > 0 else []

    def call(self, x, training=None):
        for i, dense in enumerate(self.dense):
            x = dense(x)
            if self.norms:
                x = self.norms[i](x, training=training)
            if self.drops:
                x = self.drops[i](x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "batch_norm": self.batch_norm, "final_activation": self.final_activation,
                "bn_momentum": self.bn_momentum, "dropout": self.dropout}


@tf.keras.utils.register_keras_serializable("mean_tf")
class MVFE(tf.keras.layers.Layer):
    """Multi-view feature expression (paper eq. 2-3): M view experts and one softmax gate per distribution.

    E_j(x) = BN(ReLU(W_j x + b_j)): one dense layer followed by batch normalisation (sec. 4.1; the ReLU is
    our choice, the paper names no activation; `batch_norm=False` gives plain MMoE experts). G_i(x) =
    softmax(W_g^i x) over the M experts (eq. 3, no bias, as written). f_i = sum_j G_i(x)_j E_j(x) (eq. 2).
    `call(x, gate_inputs=None)`: the experts read x, the gates read `gate_inputs` (default x; MEAN passes
    x_u there when `mvfe_gate_input` is "x_u", the literal eq. 3). Returns H = [f_1 ... f_n], [B, n, U].
    """

    def __init__(self, num_experts: int = 5, expert_units: int = 128, num_distributions: int = 5,
                 batch_norm: bool = True, bn_momentum: float = BN_MOMENTUM, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.expert_units = int(expert_units)
        self.num_distributions = int(num_distributions)
        self.batch_norm = bool(batch_norm)
        self.bn_momentum = float(bn_momentum)
        self.dropout = float(dropout)
        self.experts = [MLP([self.expert_units], batch_norm=self.batch_norm, bn_momentum=self.bn_momentum,
                            dropout=self.dropout, name=f"expert_{j}") for j in range(self.num_experts)]
        self.gates = [tf.keras.layers.Dense(self.num_experts, use_bias=False, name=f"gate_{i}")
                      for i in range(self.num_distributions)]

    def gate_weights(self, x):
        """G(x) of eq. 3 for every distribution: [B, n, M], each row sums to 1."""
        return tf.stack([tf.nn.softmax(gate(x), axis=-1) for gate in self.gates], axis=1)

    def call(self, x, gate_inputs=None, training=None):
        experts = tf.stack([expert(x, training=training) for expert in self.experts], axis=1)  # [B, M, U]
        gates = self.gate_weights(x if gate_inputs is None else gate_inputs)
        return tf.einsum("bnm,bmu->bnu", gates, experts)

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "expert_units": self.expert_units,
                "num_distributions": self.num_distributions, "batch_norm": self.batch_norm,
                "bn_momentum": self.bn_momentum, "dropout": self.dropout}


@tf.keras.utils.register_keras_serializable("mean_tf")
class DistributionAttention(tf.keras.layers.Layer):
    """Distribution attention over the n MVFE tokens (paper eq. 4-6 and 12).

    g'_t = tanh(W_q h_t + W_k h_t + b_g')  (eq. 4; two weight matrices kept as written, although
    W_q h_t + W_k h_t is just (W_q + W_k) h_t),
    alpha_t = softmax(g'_t W_a + b_a) in R^n  (eq. 5), A = [alpha_1 ... alpha_n] (n x n, rows sum to 1),
    z_i = sum_j A_ij h_j and e = (1/n) sum_i z_i  (eq. 6), theta_hat = (1/n) sum_i A_i  (eq. 12).
    Input [B, n, d]; returns (e [B, d], A [B, n, n], theta_hat [B, n]).
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        num_tokens, dim = int(input_shape[-2]), int(input_shape[-1])
        self.w_q = self.add_weight(name="w_q", shape=(dim, self.units), initializer="glorot_uniform")
        self.w_k = self.add_weight(name="w_k", shape=(dim, self.units), initializer="glorot_uniform")
        self.b_g = self.add_weight(name="b_g", shape=(self.units,), initializer="zeros")
        self.w_a = self.add_weight(name="w_a", shape=(self.units, num_tokens), initializer="glorot_uniform")
        self.b_a = self.add_weight(name="b_a", shape=(num_tokens,), initializer="zeros")
        super().build(input_shape)

    def call(self, tokens):
        g = tf.tanh(tf.einsum("bnd,du->bnu", tokens, self.w_q) + tf.einsum("bnd,du->bnu", tokens, self.w_k) + self.b_g)
        attention = tf.nn.softmax(tf.einsum("bnu,um->bnm", g, self.w_a) + self.b_a, axis=-1)
        attended = tf.einsum("bij,bjd->bid", attention, tokens)
        return tf.reduce_mean(attended, axis=1), attention, tf.reduce_mean(attention, axis=1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@tf.keras.utils.register_keras_serializable("mean_tf")
class DAM(tf.keras.layers.Layer):
    """Distribution approximation module (paper eq. 9-10): bucket logits k and probabilities b_hat.

    k = MLP(ReLU(W_s x_u + b_s)) with ReLU hidden layers `units` and a final linear layer of n logits
    (eq. 9); b_hat_i = exp(k_i - max k) / sum_j exp(k_j - max k) (eq. 10). Returns (k, b_hat), both [B, n].
    """

    def __init__(self, shared_units: int = 256, units: Sequence[int] = (256, 128, 64), num_distributions: int = 5,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.shared_units = int(shared_units)
        self.units = tuple(int(u) for u in units)
        self.num_distributions = int(num_distributions)
        self.dropout = float(dropout)
        self.projection = tf.keras.layers.Dense(self.shared_units, activation="relu", name="w_s")
        self.mlp = MLP(self.units, dropout=self.dropout, name="mlp")
        self.to_logits = tf.keras.layers.Dense(self.num_distributions, name="logits")

    def call(self, x, training=None):
        logits = self.to_logits(self.mlp(self.projection(x), training=training))
        shifted = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
        return logits, shifted / tf.reduce_sum(shifted, axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "shared_units": self.shared_units, "units": self.units,
                "num_distributions": self.num_distributions, "dropout": self.dropout}
