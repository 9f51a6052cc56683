"""The contract every neural CLTV model of mean-tf follows, so one training loop serves them all.

Inputs: the transformed-feature dict (`numeric` [B, D] float32, and one `cat__<name>` int64 id
tensor, shape [B] or [B, 1], per categorical feature). Targets: a dict of [B, H] tensors, one
column per label of `config.labels`: `raw` (money, >= 0), `scaled` (transformed label in
[0, label_clip]) and `bucket` (int, 0 = zero label, 1..n-1 = ranges of positive labels).
Outputs: a dict with at least `cltv` [B, H], in the space named by `output_space`
("scaled": invert the label transform to get money; "money": already money).
A model is built as `Model(config, facts)`: `config` the choices (`MEANConfig`), `facts` what the training data
fixes (`DataFacts`: vocabulary sizes, label maxima, ODMN's edges, the derived batch-norm momentum).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.data_facts import DataFacts


class CLTVModel(tf.keras.Model):
    """A Keras model whose loss is a sum of named terms, each logged in `fit`'s history."""

    output_space = "scaled"
    # The logged loss term of the model's own prediction (the tie-break of model selection, and the
    # "val_prediction_loss" criterion): the Huber term for MEAN, the ZILN NLL for the ZILN family.
    prediction_loss = "loss"

    def __init__(self, config: MEANConfig, facts: DataFacts | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.facts = facts or DataFacts()
        # Not tracked as model state: loss trackers created on first use must not change get_weights().
        object.__setattr__(self, "_trackers", {})

    def loss_terms(self, targets: Dict[str, tf.Tensor], outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Return {"loss": total, "loss_<term>": value, ...}; scalar tensors."""
        raise NotImplementedError

    def _tracker(self, name: str) -> tf.keras.metrics.Mean:
        if name not in self._trackers:
            self._trackers[name] = tf.keras.metrics.Mean(name=name)
        return self._trackers[name]

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _update(self, terms):
        for name, value in terms.items():
            self._tracker(name).update_state(value)
        return {name: self._tracker(name).result() for name in terms}

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: skip AutoGraph
    def train_step(self, data):
        features, targets = data
        with tf.GradientTape() as tape:
            outputs = self(features, training=True)
            terms = self.loss_terms(targets, outputs)
            total = terms["loss"] + tf.add_n(self.losses) if self.losses else terms["loss"]
            # Each replica's loss is its own batch mean, and the optimizer sums the replicas' gradients:
            # dividing by their number gives the gradient of the global batch mean (as Keras's compiled loss does).
            total = total / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(total, self.trainable_variables)
        self.optimizer.apply_gradients(
            (g, v) for g, v in zip(grads, self.trainable_variables) if g is not None
        )
        return self._update(terms)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        features, targets = data
        outputs = self(features, training=False)
        return self._update(self.loss_terms(targets, outputs))

    def get_config(self):
        return {"config": self.config.to_dict(), "facts": self.facts.to_dict()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(MEANConfig.from_dict(config["config"]), DataFacts.from_dict(config.get("facts")))
