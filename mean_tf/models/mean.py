"""MEAN, the Multi-Expert Adaptive Network (paper, sec. 3.2), and its multi-horizon variant MTL-MEAN.

x_u = FeatureEncoder(features); s = shared ReLU MLP [512, 256] (x_u); H = MVFE(s) (eq. 2-3);
the gates read x_u (eq. 3; `mvfe_gate_input="shared"` feeds them s instead);
(e, A, theta_hat) = DistributionAttention(H) (eq. 4-6, 12); y_hat = FC(e) (eq. 7);
(k, b_hat) = DAM(x_u) (eq. 9-10), a bypass on the encoded features with its own projection W_s.

Multi-horizon (H = len(config.labels) > 1, MTL-MEAN): MVFE and the attention are shared; the FC of
eq. 7 has one linear output per horizon (a Dense(H) is exactly H independent linear heads); each horizon
has its own DAM, trained on that horizon's bucket labels, and every DAM is aligned with the one shared
theta_hat; the loss terms are summed over horizons (the paper's "summing the losses").

`cltv_head="ziln"` (an extension beyond the paper, never reported as MEAN) keeps the body (MVFE, the attention,
DAM and the alignment losses) and replaces eq. 7-8 by a linear layer of 3 ZILN logits per horizon on e, trained
with the ZILN loss on money (`mean_tf.models.ziln_distribution`); its `cltv` is then money and it also outputs
`ziln_logits` [B, H, 3].

Outputs (scaled label space; money with the ZILN head):
  cltv [B, H]; attention [B, n, n]; attention_mean [B, n];
  bucket_logits, bucket_probs: [B, n] when H = 1, [B, H, n] when H > 1 (absent when use_dam is False).
"""
from __future__ import annotations

from typing import Dict

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.layers import BN_MOMENTUM, DAM, MLP, MVFE, DistributionAttention, feature_encoder
from mean_tf.models.losses import mean_loss
from mean_tf.models.base import CLTVModel
from mean_tf.models.data_facts import DataFacts
from mean_tf.models.ziln_distribution import log_prediction_caps, ziln_outputs

LOSS_TERMS = ("loss", "loss_cltv", "loss_kl", "loss_dis")


def training_bn_momentum(config: MEANConfig, facts: DataFacts) -> float:
    """The experts' batch-norm momentum: `config.bn_momentum`, else the one the data's steps per epoch give
    (`facts.bn_momentum`), else Keras' default."""
    for momentum in (config.bn_momentum, facts.bn_momentum):
        if momentum is not None:
            return momentum
    return BN_MOMENTUM


@tf.keras.utils.register_keras_serializable("mean_tf")
class MEAN(CLTVModel):
    """MEAN(config): call(features) -> outputs dict (see the module docstring); loss = L^MEAN (eq. 17)."""

    prediction_loss = "loss_cltv"

    def __init__(self, config: MEANConfig, facts=None, **kwargs):
        super().__init__(config, facts, **kwargs)
        self.num_horizons = len(config.labels)
        self.encoder = feature_encoder(config, self.facts)
        self.shared = MLP(config.shared_units, dropout=config.dropout, name="shared")
        self.mvfe = MVFE(config.num_experts, config.expert_units, config.num_distributions,
                         bn_momentum=training_bn_momentum(config, self.facts), dropout=config.dropout, name="mvfe")
        self.attention = DistributionAttention(config.attention_units, name="attention")
        if config.cltv_head == "ziln":
            self.output_space = "money"
            self.log_caps = [[cap] for cap in log_prediction_caps(config, self.facts)]  # [H, 1]
            self.head = tf.keras.layers.Dense(3 * self.num_horizons, name="ziln_logits")
        else:
            self.head = tf.keras.layers.Dense(self.num_horizons, name="cltv_head")
        self.dams = [
            DAM(config.dam_shared_units, config.dam_units, config.num_distributions, dropout=config.dropout,
                name=f"dam_{label}")
            for label in config.labels
        ] if config.use_dam else []
        for name in LOSS_TERMS:  # trackers made up front: a fresh and a trained model have the same weight list
            self._tracker(name)

    # No tensor-dependent Python control flow below, so AutoGraph is skipped: it halves the tracing time of fit/save.
    @tf.autograph.experimental.do_not_convert
    def call(self, features: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        x_u = self.encoder(features)
        gate_inputs = x_u if self.config.mvfe_gate_input == "x_u" else None
        tokens = self.mvfe(self.shared(x_u), gate_inputs=gate_inputs, training=training)
        embedding, attention, attention_mean = self.attention(tokens)
        if self.config.cltv_head == "ziln":
            outputs = ziln_outputs(tf.reshape(self.head(embedding), [-1, self.num_horizons, 3]), self.log_caps)
        else:
            outputs = {"cltv": self.head(embedding)}
        outputs.update(attention=attention, attention_mean=attention_mean)
        if self.dams:
            logits, probs = zip(*(dam(x_u, training=training) for dam in self.dams))
            if self.num_horizons == 1:
                outputs["bucket_logits"], outputs["bucket_probs"] = logits[0], probs[0]
            else:
                outputs["bucket_logits"], outputs["bucket_probs"] = tf.stack(logits, axis=1), tf.stack(probs, axis=1)
        return outputs

    @tf.autograph.experimental.do_not_convert
    def loss_terms(self, targets, outputs):
        return mean_loss(targets, outputs, self.config)
