"""DNN-ZILN (Wang et al. 2019) and MTL-ZILN: ZILN heads on an MLP, or on shared experts per horizon.

Both predict money directly (`output_space = "money"`) and train on the raw label with
`mean_tf.models.ziln_distribution.ziln_loss`, summed over the horizons of `config.labels` and averaged over the batch;
predictions cap the log mean at log of the largest train label (`mean_tf.models.ziln_distribution`).
"""
from __future__ import annotations

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.models.layers import MLP, MVFE, feature_encoder
from mean_tf.models.base import CLTVModel
from mean_tf.models.ziln_distribution import log_prediction_caps, ziln_loss, ziln_outputs


def _ziln_terms(targets, outputs, labels):
    """Total ZILN loss (sum over horizons, mean over the batch) and one term per label."""
    per_horizon = tf.reduce_mean(ziln_loss(targets["raw"][..., None], outputs["ziln_logits"]), axis=0)
    terms = {f"loss_{label}": per_horizon[i] for i, label in enumerate(labels)} if len(labels) > 1 else {}
    total = tf.reduce_sum(per_horizon)
    return {"loss": total, "loss_ziln": total, **terms}


class ZILNModel(CLTVModel):
    """A model with ZILN heads (3 logits per label): money output, the ZILN NLL as its loss, predictions capped at
    the largest train label."""

    output_space = "money"
    prediction_loss = "loss_ziln"

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        self.log_caps = [[cap] for cap in log_prediction_caps(config, self.facts)]  # [H, 1]
        self.encoder = feature_encoder(config, self.facts)

    def loss_terms(self, targets, outputs):
        return _ziln_terms(targets, outputs, self.config.labels)


@tf.keras.utils.register_keras_serializable("mean_tf")
class DNNZILN(ZILNModel):
    """DNN-ZILN: encoder -> MLP(`ziln_units`, ReLU) -> one linear layer of 3 logits per label.

    Left open by the source: the hidden layers (Google's notebook uses [64, 32]; we take
    `config.ziln_units`) and multi-label use (Google fits one label; here each label of
    `config.labels` gets its own 3 logits on the shared MLP, which for one label is exactly Google's).
    """

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        self.body = MLP(config.ziln_units, dropout=config.dropout, name="mlp")
        self.head = tf.keras.layers.Dense(3 * len(config.labels), name="ziln_logits")

    def call(self, features, training=None):
        logits = self.head(self.body(self.encoder(features), training=training))
        return ziln_outputs(tf.reshape(logits, [-1, len(self.config.labels), 3]), self.log_caps)


@tf.keras.utils.register_keras_serializable("mean_tf")
class MTLZILN(ZILNModel):
    """MTL-ZILN (paper Table 1): MMoE over the horizons, one ZILN head per horizon, losses summed.

    The MEAN paper names the model but not its layout; we take the plain MMoE of Ma et al. 2018:
    `num_experts` shared experts with one softmax gate per horizon (the MVFE layer of
    `mean_tf.models.layers`, whose "distributions" are here the horizons), then per horizon a tower
    MLP(`ziln_units`) and a linear layer of 3 ZILN logits. The experts are one ReLU layer each, without
    MEAN's batch normalisation (Ma et al.'s experts have none).
    """

    def __init__(self, config, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        # Plain MMoE experts (no batch norm): MVFE's BN is MEAN's, and at small data it kept MTL-ZILN at epoch 0.
        self.mmoe = MVFE(config.num_experts, config.expert_units, len(config.labels), batch_norm=False, name="mmoe")
        self.towers = [MLP(config.ziln_units, dropout=config.dropout, name=f"tower_{label}") for label in config.labels]
        self.heads = [tf.keras.layers.Dense(3, name=f"ziln_logits_{label}") for label in config.labels]

    def call(self, features, training=None):
        mixtures = self.mmoe(self.encoder(features), training=training)  # [B, H, expert_units]
        logits = [head(tower(mixtures[:, i], training=training))
                  for i, (tower, head) in enumerate(zip(self.towers, self.heads))]
        return ziln_outputs(tf.stack(logits, axis=1), self.log_caps)
