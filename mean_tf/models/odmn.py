"""ODMN (Li et al., CIKM 2022, Kuaishou): per-horizon MDME towers linked by monotone order-dependency units.

MDME (multi distribution multi experts) cuts the scaled label range into `odmn_sub_distributions`
sub-distributions and each into `odmn_buckets` buckets. Per horizon the tower classifies the
sub-distribution, then the bucket inside it (one bucket classifier per sub-distribution: the
"experts"), and regresses a bias in [0, 1] inside each bucket; value = bucket left edge + bias x
bucket width. Training uses the true sub-distribution and bucket (teacher forcing); inference takes
the argmax sub-distribution, then the argmax bucket inside it.

Left open by the source paper, and the simple readings taken here:
- Cut points: ODMN splits the label range into "relatively balanced" sub-distributions. Here the S x K
  buckets are equal-frequency ranges of the positive train labels (`quantile_edges`; training fills
  `DataFacts.odmn_edges` per label); the zero labels join the first bucket with bias 0, so its bias head
  still ranks them below its buyers (a zero-width bucket of their own would predict a tie at 0 for
  everyone classified there). Sub-distribution s holds buckets s K .. s K + K - 1. Without edges (a
  model built outside training) the buckets have equal widths over [0, label_clip].
- Losses: cross-entropy for the two classifications and squared error for the bias, summed over the
  horizons with weight 1 each.
- Order dependency: tower t's hidden vector gets + h_{t-1} W_t with W_t = softplus(V_t) >= 0 (the
  "Mono unit"). That links the horizons but cannot by itself make argmax predictions ordered, so the
  predictions are made non-decreasing in the horizon by a running maximum over the horizons
  (inference-only: the losses act on the MDME parts).
"""
from __future__ import annotations

from typing import List, Tuple

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

from mean_tf.models.layers import MLP, feature_encoder
from mean_tf.models.base import CLTVModel


@tf.keras.utils.register_keras_serializable("mean_tf")
class MonotoneLink(tf.keras.layers.Layer):
    """x W with W = softplus(V) element-wise, so every weight is non-negative (ODMN's Mono unit)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.raw_kernel = self.add_weight(name="raw_kernel", shape=(int(input_shape[-1]), self.units),
                                          initializer=tf.keras.initializers.RandomNormal(-3.0, 0.5))
        super().build(input_shape)

    def call(self, x):
        return tf.matmul(x, tf.nn.softplus(self.raw_kernel))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def quantile_edges(positive_scaled: np.ndarray, label_clip: float, sub_distributions: int,
                   buckets: int) -> Tuple[float, ...]:
    """S x K + 1 bucket edges from 0 to `label_clip`: equal-frequency ranges of the positive scaled labels
    (equal widths when there are none)."""
    count = sub_distributions * buckets
    positive = np.asarray(positive_scaled, dtype=np.float64)
    positive = positive[positive > 0]
    if positive.size:
        inner = np.quantile(positive, np.arange(1, count) / count)
    else:
        inner = np.linspace(0.0, label_clip, count + 1)[1:-1]
    inner = np.clip(inner, 0.0, label_clip)
    return tuple(float(e) for e in np.concatenate([[0.0], inner, [label_clip]]))


def _edges(config, facts) -> List[Tuple[float, ...]]:
    """Per label of the config: the data's `odmn_edges`, or the equal-width edges."""
    fallback = quantile_edges(np.zeros(0), config.label_clip, config.odmn_sub_distributions, config.odmn_buckets)
    return [tuple(facts.odmn_edges.get(label, fallback)) for label in config.labels]


def mdme_targets(y_scaled, edges, sub_distributions: int, buckets: int):
    """(sub-distribution id, bucket id inside it, bias in [0, 1]) of scaled labels [B, H].

    `edges` [H, S K + 1]: bucket b spans [edges[b], edges[b + 1]]; zero labels are in bucket 0, bias 0.
    """
    edges = tf.cast(tf.convert_to_tensor(edges), tf.float32)
    y = tf.cast(y_scaled, tf.float32)
    count = sub_distributions * buckets
    # The bucket whose left edge is the last one <= y (the inner edges 1 .. count - 1 decide).
    flat = tf.transpose(tf.searchsorted(edges[:, 1:count], tf.transpose(y), side="right"))  # [B, H]
    flat = tf.where(y > 0, tf.cast(flat, tf.int32), 0)
    left, width = _left_and_width(edges, flat)
    bias = tf.where(width > 0, tf.clip_by_value((y - left) / tf.maximum(width, 1e-12), 0.0, 1.0), 0.0)
    return flat // buckets, flat % buckets, bias


def _left_and_width(edges, flat):
    """Left edge and width of flat bucket ids [B, H] under edges [H, E]."""
    per_example = tf.broadcast_to(edges[None], tf.concat([tf.shape(flat)[:1], tf.shape(edges)], 0))  # [B, H, E]
    left = tf.gather(per_example, flat, axis=2, batch_dims=2)
    right = tf.gather(per_example, flat + 1, axis=2, batch_dims=2)
    return left, right - left


@tf.keras.utils.register_keras_serializable("mean_tf")
class ODMN(CLTVModel):
    """Encoder -> shared MLP -> per-horizon tower (+ Mono unit from the shorter horizon) -> MDME head.

    Outputs: `cltv` [B, H] (scaled label, non-decreasing in H), `mdme_value` [B, H] (before the running
    maximum), `sub_logits` [B, H, S], `bucket_logits` [B, H, S, K], `bias` [B, H, S, K].
    """

    output_space = "scaled"
    uses_label_edges = True  # training fills DataFacts.odmn_edges from the train labels

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        self.num_sub = config.odmn_sub_distributions
        self.num_buckets = config.odmn_buckets
        self.edges = _edges(config, self.facts)  # [H, S K + 1], Python floats (constants of the graph)
        width = config.odmn_tower_units[-1]
        self.encoder = feature_encoder(config, self.facts)
        self.shared = MLP(config.shared_units, dropout=config.dropout, name="shared")
        self.towers = [MLP(config.odmn_tower_units, dropout=config.dropout, name=f"tower_{label}") for label in config.labels]
        self.links = [MonotoneLink(width, name=f"mono_{label}") for label in config.labels[1:]]
        self.sub_heads = [tf.keras.layers.Dense(self.num_sub, name=f"sub_{label}") for label in config.labels]
        self.bucket_heads = [tf.keras.layers.Dense(self.num_sub * self.num_buckets, name=f"bucket_{label}")
                             for label in config.labels]
        self.bias_heads = [tf.keras.layers.Dense(self.num_sub * self.num_buckets, activation="sigmoid",
                                                 name=f"bias_{label}") for label in config.labels]

    def call(self, features, training=None):
        x = self.shared(self.encoder(features), training=training)
        grid = [-1, self.num_sub, self.num_buckets]
        sub_logits, bucket_logits, biases, previous = [], [], [], None
        for i, tower in enumerate(self.towers):
            hidden = tower(x, training=training)
            if previous is not None:
                hidden = hidden + self.links[i - 1](previous)
            previous = hidden
            sub_logits.append(self.sub_heads[i](hidden))
            bucket_logits.append(tf.reshape(self.bucket_heads[i](hidden), grid))
            biases.append(tf.reshape(self.bias_heads[i](hidden), grid))
        sub_logits, bucket_logits, biases = (tf.stack(t, axis=1) for t in (sub_logits, bucket_logits, biases))
        value = self._argmax_value(sub_logits, bucket_logits, biases)
        return {"cltv": self._running_max(value), "mdme_value": value, "sub_logits": sub_logits,
                "bucket_logits": bucket_logits, "bias": biases}

    def _argmax_value(self, sub_logits, bucket_logits, biases):
        """Left edge + bias x width of the argmax bucket inside the argmax sub-distribution: [B, H]."""
        sub = tf.argmax(sub_logits, axis=-1, output_type=tf.int32)
        bucket = tf.argmax(tf.gather(bucket_logits, sub, axis=2, batch_dims=2), axis=-1, output_type=tf.int32)
        flat = sub * self.num_buckets + bucket
        flat_biases = tf.reshape(biases, [-1, len(self.config.labels), self.num_sub * self.num_buckets])
        bias = tf.gather(flat_biases, flat, axis=2, batch_dims=2)
        left, width = _left_and_width(tf.constant(self.edges, tf.float32), flat)
        return left + bias * width

    @staticmethod
    def _running_max(value):
        columns = tf.unstack(value, axis=1)
        for i in range(1, len(columns)):
            columns[i] = tf.maximum(columns[i], columns[i - 1])
        return tf.stack(columns, axis=1)

    def loss_terms(self, targets, outputs):
        sub, bucket, bias = mdme_targets(targets["scaled"], self.edges, self.num_sub, self.num_buckets)
        sub_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sub, logits=outputs["sub_logits"])
        true_sub_buckets = tf.gather(outputs["bucket_logits"], sub, axis=2, batch_dims=2)  # [B, H, K]
        bucket_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=bucket, logits=true_sub_buckets)
        true_bias = tf.gather(tf.gather(outputs["bias"], sub, axis=2, batch_dims=2), bucket, axis=2, batch_dims=2)
        bias_loss = tf.square(true_bias - bias)
        terms = {name: tf.reduce_sum(tf.reduce_mean(value, axis=0))
                 for name, value in (("loss_sub_distribution", sub_loss), ("loss_bucket", bucket_loss),
                                     ("loss_bias", bias_loss))}
        return {"loss": tf.add_n(list(terms.values())), **terms}
