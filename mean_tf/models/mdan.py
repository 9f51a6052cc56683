"""MDAN (Liu et al., PAKDD 2024): multi-channel towers fused by a supervised channel controller, plus RankSim.

Per horizon: a channel-learning controller turns the shared representation into softmax weights over
`mdan_channels` channel towers; the fused hidden vector (weighted sum of the channels) feeds a
regression head of the scaled label. Losses: squared error on the scaled label, cross-entropy of the
controller against the label's distribution segment, and `mdan_ranksim_weight` x the
distance-similarity loss `ranksim_loss` on the fused hidden vectors.

Left open by the source paper, and the simple readings taken here:
- Segments: the Transform's bucket (0 = zero label, 1..n-1 = quantile ranges of positive labels)
  mapped onto the channels by `channel_segments`: the zero labels have channel 0 to themselves and the
  positive buckets share channels 1..C-1 in order, so C = n gives one channel per bucket.
- Regression: plain squared error on the scaled label; the head's softplus keeps predictions >= 0.
- Several labels: the channels are shared and each horizon has its own controller, head and RankSim
  term (the paper trains one label).
- RankSim (Gong et al. 2022): cosine similarities of the hidden vectors, one example per distinct
  label value in the batch (the first), label similarity -|y_i - y_j|, ranks differentiated by the
  blackbox-combinatorial-solver gradient with lambda = 2 (RankSim's default), and the squared rank
  difference averaged over rows (RankSim sums the rows).
"""
from __future__ import annotations

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.models.layers import MLP, feature_encoder
from mean_tf.models.base import CLTVModel

RANKSIM_INTERPOLATION = 2.0  # lambda of the blackbox rank gradient (Vlastelica et al. 2020; RankSim's default)


def normalised_ranks(x):
    """Ascending ranks along the last axis, scaled to (0, 1]: (rank + 1) / n."""
    n = tf.cast(tf.shape(x)[-1], tf.float32)
    return tf.cast(tf.argsort(tf.argsort(x, axis=-1), axis=-1) + 1, tf.float32) / n


@tf.custom_gradient
def blackbox_ranks(x):
    """`normalised_ranks` whose gradient is the blackbox-solver one: (rank(x + lambda g) - rank(x)) / lambda."""
    ranks = normalised_ranks(x)

    def grad(upstream):
        return (normalised_ranks(x + RANKSIM_INTERPOLATION * upstream) - ranks) / RANKSIM_INTERPOLATION

    return ranks, grad


def ranksim_loss(hidden, labels):
    """RankSim: the ranking of pairwise hidden-vector similarities should follow that of label distances.

    hidden [B, U], labels [B] (scaled). Returns a scalar.
    """
    labels = tf.cast(labels, tf.float32)
    distinct, index = tf.unique(labels)
    first = tf.math.unsorted_segment_min(tf.range(tf.size(labels)), index, tf.size(distinct))
    z = tf.math.l2_normalize(tf.gather(hidden, first), axis=-1)
    y = tf.gather(labels, first)
    feature_ranks = blackbox_ranks(tf.matmul(z, z, transpose_b=True))
    label_ranks = normalised_ranks(-tf.abs(y[:, None] - y[None, :]))
    return tf.reduce_mean(tf.square(feature_ranks - label_ranks))


def channel_segments(bucket, num_distributions: int, channels: int):
    """Controller target per example: 0 for the zero bucket, 1 + (b - 1)(C - 1) // (n - 1) for bucket b >= 1.

    With one channel, everything is channel 0.
    """
    bucket = tf.cast(bucket, tf.int32)
    if channels == 1:
        return tf.zeros_like(bucket)
    positive = 1 + (tf.maximum(bucket, 1) - 1) * (channels - 1) // max(num_distributions - 1, 1)
    return tf.where(bucket > 0, tf.minimum(positive, channels - 1), 0)


@tf.keras.utils.register_keras_serializable("mean_tf")
class MDAN(CLTVModel):
    """Encoder -> shared MLP -> C channel towers -> per-horizon softmax controller and weighted-sum fusion -> head.

    Outputs: `cltv` [B, H] (scaled label), `channel_logits` [B, H, C], `hidden` [B, H, U] (fused vectors).
    """

    prediction_loss = "loss_regression"
    output_space = "scaled"

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        channels = config.mdan_channels
        self.encoder = feature_encoder(config, self.facts)
        self.shared = MLP(config.shared_units, dropout=config.dropout, name="shared")
        self.channels = [MLP(config.mdan_channel_units, dropout=config.dropout, name=f"channel_{c}") for c in range(channels)]
        self.controllers = [tf.keras.layers.Dense(channels, name=f"controller_{label}") for label in config.labels]
        self.heads = [tf.keras.layers.Dense(1, activation="softplus", name=f"head_{label}") for label in config.labels]

    def call(self, features, training=None):
        x = self.shared(self.encoder(features), training=training)
        channels = tf.stack([channel(x, training=training) for channel in self.channels], axis=1)  # [B, C, U]
        logits = tf.stack([controller(x) for controller in self.controllers], axis=1)  # [B, H, C]
        hidden = tf.einsum("bhc,bcu->bhu", tf.nn.softmax(logits, axis=-1), channels)
        cltv = tf.concat([head(hidden[:, i]) for i, head in enumerate(self.heads)], axis=1)
        return {"cltv": cltv, "channel_logits": logits, "hidden": hidden}

    def loss_terms(self, targets, outputs):
        scaled = tf.cast(targets["scaled"], tf.float32)
        channels = self.config.mdan_channels
        segment = channel_segments(targets["bucket"], self.config.num_distributions, channels)
        regression = tf.reduce_sum(tf.reduce_mean(tf.square(outputs["cltv"] - scaled), axis=0))
        controller = tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=segment, logits=outputs["channel_logits"]), axis=0))
        ranksim = tf.add_n([ranksim_loss(outputs["hidden"][:, i], scaled[:, i])
                            for i in range(len(self.config.labels))])
        return {"loss": regression + controller + self.config.mdan_ranksim_weight * ranksim,
                "loss_regression": regression, "loss_controller": controller, "loss_ranksim": ranksim}
