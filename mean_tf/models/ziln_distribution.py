"""The zero-inflated lognormal (ZILN) loss and prediction of Wang et al. 2019 (google/lifetime_value).

A ZILN head emits three logits per label: the payer logit, the lognormal location mu and a raw scale
that softplus turns into sigma. `ziln_loss` is the negative log-likelihood of the mixture
"zero with probability 1 - p, LogNormal(mu, sigma) otherwise", split as Google's reference does into
BCE(1[y > 0], logit) + 1[y > 0] * (-log LogNormal(y; mu, sigma)), the log-density including its
-log y Jacobian term. `ziln_predict` is the mixture's mean, sigmoid(logit) * exp(mu + sigma^2 / 2).

ZILN works on the raw (money) label. Deviation from google/lifetime_value, at prediction only: the
log of the mean, mu + sigma^2 / 2, is unbounded (a few rows with extreme inputs reached exp(60)), so
`ziln_predict` caps it at `max_log_prediction`, which the models set to log of the largest train label
(`DataFacts.label_max`, a Transform analyzer), and in any case at `FLOAT32_SAFE_LOG`. Nothing is capped
inside the loss: a `tf.minimum` on sigma there zeroes its gradient once sigma passes the cap and traps
it above, so every prediction then explodes. Where the cap binds, it changes a prediction only above the
largest spend seen in training; below it the outputs equal Google's.
"""
from __future__ import annotations

import math
from typing import List

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.data_facts import DataFacts

# exp(80) ~ 5.5e34: float32-safe (exp overflows above ~88.7), and a weighted sum of such means stays finite.
FLOAT32_SAFE_LOG = 80.0
# Google's floor on sigma, so that log(sigma) stays finite.
_MIN_SIGMA = math.sqrt(1e-7)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def log_prediction_caps(config: MEANConfig, facts: DataFacts) -> List[float]:
    """Per label of `config.labels`: log of the largest train label (`facts.label_max`), or FLOAT32_SAFE_LOG if
    unknown."""
    caps = []
    for label in config.labels:
        largest = facts.label_max.get(label)
        caps.append(min(math.log(largest), FLOAT32_SAFE_LOG) if largest and largest > 0 else FLOAT32_SAFE_LOG)
    return caps


def lognormal_sigma(raw_scale):
    """The lognormal σ from its raw scale logit: softplus, floored (a ZILN head's third output)."""
    return tf.maximum(tf.nn.softplus(raw_scale), _MIN_SIGMA)


def ziln_loss(y, logits):
    """Per-example ZILN negative log-likelihood.

    y: money labels [..., 1] (>= 0); logits: [..., 3] (payer logit, mu, raw sigma). Returns [...],
    one loss per example (Google's shape convention).
    """
    y = tf.cast(tf.convert_to_tensor(y), tf.float32)
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    positive = tf.cast(y > 0, tf.float32)
    payer_logit, mu = logits[..., :1], logits[..., 1:2]
    sigma = lognormal_sigma(logits[..., 2:])
    classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=payer_logit)
    safe_y = positive * y + (1.0 - positive)  # log(1) = 0 where y = 0; those terms are masked anyway
    log_y = tf.math.log(safe_y)
    neg_log_density = log_y + tf.math.log(sigma) + _HALF_LOG_2PI + tf.square(log_y - mu) / (2.0 * tf.square(sigma))
    return tf.reduce_mean(classification + positive * neg_log_density, axis=-1)


def ziln_predict(logits, max_log_prediction=None):
    """Mean of the ZILN mixture, sigmoid(logit) * exp(min(mu + sigma^2 / 2, cap)): logits [..., 3] -> money [..., 1].

    `max_log_prediction`: the cap, a number or a tensor broadcastable to [..., 1] (per label); default
    and upper bound FLOAT32_SAFE_LOG.
    """
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    sigma = lognormal_sigma(logits[..., 2:])
    log_mean = logits[..., 1:2] + 0.5 * tf.square(sigma)
    cap = FLOAT32_SAFE_LOG if max_log_prediction is None else tf.minimum(
        tf.cast(max_log_prediction, tf.float32), FLOAT32_SAFE_LOG)
    return tf.sigmoid(logits[..., :1]) * tf.exp(tf.minimum(log_mean, cap))


def ziln_outputs(logits, caps):
    """{"cltv": [B, H] money, "ziln_logits": [B, H, 3]} from ZILN logits [B, H, 3]; caps: [H, 1] log caps."""
    return {"cltv": ziln_predict(logits, caps)[..., 0], "ziln_logits": logits}
