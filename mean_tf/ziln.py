"""The zero-inflated lognormal (ZILN) loss and prediction of Wang et al. 2019 (google/lifetime_value).

A ZILN head emits three logits per label: the payer logit, the lognormal location mu and a raw scale
that softplus turns into sigma. `ziln_loss` is the negative log-likelihood of the mixture
"zero with probability 1 - p, LogNormal(mu, sigma) otherwise", split as Google's reference does into
BCE(1[y > 0], logit) + 1[y > 0] * (-log LogNormal(y; mu, sigma)), the log-density including its
-log y Jacobian term. `ziln_predict` is the mixture's mean, sigmoid(logit) * exp(mu + sigma^2 / 2).

ZILN works on the raw (money) label. Two production guards, off by default so that the outputs
equal Google's: `max_sigma` caps sigma (a large sigma makes exp(sigma^2 / 2) explode) and
`max_log_prediction` caps mu + sigma^2 / 2 before the exp. Without them, the log of the mean is still
capped at `FLOAT32_SAFE_LOG` (float32's exp overflows to inf above ~88.7), so a prediction is always a
finite amount of money; the cap is far above any real value and never changes Google's outputs there.
"""
from __future__ import annotations

import math
from typing import Optional

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig

# Guard values used when MEANConfig.ziln_clip_sigma / ziln_clip_log_prediction are on.
SIGMA_CAP = 5.0
# exp(20) ~ 4.9e8 money units: above any single customer's spend, far below float32's overflow.
LOG_PREDICTION_CAP = 20.0
# exp(80) ~ 5.5e34: float32-safe (exp overflows above ~88.7), and a weighted sum of such means stays finite.
FLOAT32_SAFE_LOG = 80.0
# Google's floor on sigma, so that log(sigma) stays finite.
_MIN_SIGMA = math.sqrt(1e-7)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def ziln_guards(config: MEANConfig) -> dict:
    """The keyword arguments of `ziln_loss` / `ziln_predict` that the config's guard switches ask for."""
    return {
        "max_sigma": SIGMA_CAP if config.ziln_clip_sigma else None,
        "max_log_prediction": LOG_PREDICTION_CAP if config.ziln_clip_log_prediction else None,
    }


def _sigma(raw_scale, max_sigma: Optional[float]):
    sigma = tf.maximum(tf.nn.softplus(raw_scale), _MIN_SIGMA)
    return tf.minimum(sigma, max_sigma) if max_sigma is not None else sigma


def ziln_loss(y, logits, max_sigma: Optional[float] = None, max_log_prediction: Optional[float] = None):
    """Per-example ZILN negative log-likelihood.

    y: money labels [..., 1] (>= 0); logits: [..., 3] (payer logit, mu, raw sigma). Returns [...],
    one loss per example (Google's shape convention). `max_log_prediction` only affects
    `ziln_predict`; it is accepted here so that both functions take the same guard keywords.
    """
    del max_log_prediction
    y = tf.cast(tf.convert_to_tensor(y), tf.float32)
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    positive = tf.cast(y > 0, tf.float32)
    payer_logit, mu = logits[..., :1], logits[..., 1:2]
    sigma = _sigma(logits[..., 2:], max_sigma)
    classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=payer_logit)
    safe_y = positive * y + (1.0 - positive)  # log(1) = 0 where y = 0; those terms are masked anyway
    log_y = tf.math.log(safe_y)
    neg_log_density = log_y + tf.math.log(sigma) + _HALF_LOG_2PI + tf.square(log_y - mu) / (2.0 * tf.square(sigma))
    return tf.reduce_mean(classification + positive * neg_log_density, axis=-1)


def ziln_predict(logits, max_sigma: Optional[float] = None, max_log_prediction: Optional[float] = None):
    """Mean of the ZILN mixture, sigmoid(logit) * exp(mu + sigma^2 / 2): logits [..., 3] -> money [..., 1]."""
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    sigma = _sigma(logits[..., 2:], max_sigma)
    log_mean = logits[..., 1:2] + 0.5 * tf.square(sigma)
    log_mean = tf.minimum(log_mean, FLOAT32_SAFE_LOG if max_log_prediction is None else max_log_prediction)
    return tf.sigmoid(logits[..., :1]) * tf.exp(log_mean)
