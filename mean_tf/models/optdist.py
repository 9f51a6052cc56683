"""OptDist (Weng et al., CIKM 2024): candidate ZILN sub-distributions and a learned per-example selection.

DLM (distribution learning module): `optdist_candidates` sub-distribution networks, each an
MLP(`optdist_units`) with a ZILN head. DSM (distribution selection module): an MLP giving selection
logits over the candidates. Training selects with Gumbel-softmax (temperature
`optdist_gumbel_temperature`): the DLM loss is the selection-weighted sum of the candidates' ZILN
losses and the prediction the selection-weighted sum of their means. The alignment loss
KL(softmax(-per-candidate loss) || softmax(selection logits)), weight `optdist_alignment_weight`,
pulls the selection toward the candidates that fit the example best. Inference is a hard argmax:
the prediction is the mean of the single selected candidate.

Left open by the source paper, and the simple readings taken here: the candidates and the selector
share the `shared_units` MLP bottom; the Gumbel-softmax is the soft (not straight-through) one; the
alignment target is computed from the losses with the gradient stopped, so alignment teaches the
selector only; several labels get one selection per horizon (the paper trains one label).
"""
from __future__ import annotations

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.models.layers import MLP, feature_encoder
from mean_tf.models.base import CLTVModel
from mean_tf.models.ziln_distribution import log_prediction_caps, ziln_loss, ziln_predict


def gumbel_softmax(logits, temperature: float):
    """softmax((logits + Gumbel noise) / temperature) along the last axis (Jang et al. 2017)."""
    uniform = tf.random.uniform(tf.shape(logits), minval=1e-10, maxval=1.0)
    return tf.nn.softmax((logits - tf.math.log(-tf.math.log(uniform))) / temperature, axis=-1)


@tf.keras.utils.register_keras_serializable("mean_tf")
class OptDist(CLTVModel):
    """Encoder -> shared MLP -> L candidate ZILN networks (DLM) and a selector (DSM).

    Outputs: `cltv` [B, H] money, `candidate_logits` [B, H, L, 3], `candidate_cltv` [B, H, L],
    `selection_logits` [B, H, L] and `selection_weights` [B, H, L] (Gumbel-softmax when training,
    one-hot argmax otherwise).
    """

    prediction_loss = "loss_distribution"
    output_space = "money"

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        self.log_caps = [[[cap]] for cap in log_prediction_caps(config, self.facts)]  # [H, 1, 1]
        self.num_labels = len(config.labels)
        self.num_candidates = config.optdist_candidates
        self.encoder = feature_encoder(config, self.facts)
        self.shared = MLP(config.shared_units, dropout=config.dropout, name="shared")
        self.candidates = [MLP(config.optdist_units, dropout=config.dropout, name=f"candidate_{i}") for i in range(self.num_candidates)]
        self.candidate_heads = [tf.keras.layers.Dense(3 * self.num_labels, name=f"candidate_ziln_{i}")
                                for i in range(self.num_candidates)]
        self.selector = MLP(config.optdist_units, dropout=config.dropout, name="selector")
        self.selector_head = tf.keras.layers.Dense(self.num_labels * self.num_candidates, name="selection_logits")

    def call(self, features, training=None):
        x = self.shared(self.encoder(features), training=training)
        logits = tf.stack([tf.reshape(head(net(x, training=training)), [-1, self.num_labels, 3])
                           for net, head in zip(self.candidates, self.candidate_heads)], axis=2)  # [B, H, L, 3]
        candidate_cltv = ziln_predict(logits, self.log_caps)[..., 0]
        selection_logits = tf.reshape(self.selector_head(self.selector(x, training=training)),
                                      [-1, self.num_labels, self.num_candidates])
        if training:
            weights = gumbel_softmax(selection_logits, self.config.optdist_gumbel_temperature)
        else:
            weights = tf.one_hot(tf.argmax(selection_logits, axis=-1), self.num_candidates)
        return {"cltv": tf.reduce_sum(weights * candidate_cltv, axis=-1), "candidate_logits": logits,
                "candidate_cltv": candidate_cltv, "selection_logits": selection_logits, "selection_weights": weights}

    def loss_terms(self, targets, outputs):
        logits = outputs["candidate_logits"]
        labels = tf.broadcast_to(tf.cast(targets["raw"], tf.float32)[..., None, None], tf.shape(logits[..., :1]))
        per_candidate = ziln_loss(labels, logits)  # [B, H, L]
        distribution = tf.reduce_sum(tf.reduce_mean(
            tf.reduce_sum(outputs["selection_weights"] * per_candidate, axis=-1), axis=0))
        fit = tf.stop_gradient(tf.nn.softmax(-per_candidate, axis=-1))
        log_selection = tf.nn.log_softmax(outputs["selection_logits"], axis=-1)
        kl = tf.reduce_sum(fit * (tf.math.log(fit + 1e-12) - log_selection), axis=-1)
        alignment = tf.reduce_sum(tf.reduce_mean(kl, axis=0))
        return {"loss": distribution + self.config.optdist_alignment_weight * alignment,
                "loss_distribution": distribution, "loss_alignment": alignment}
