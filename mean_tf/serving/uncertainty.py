"""Per-customer uncertainty of the money prediction, for the serving signature and `mean-tf score`.

- ZILN-family models (DNN-ZILN, MTL-ZILN): quantiles of the predicted zero-inflated lognormal,
  P(Y = 0) = 1 - p and Y | Y > 0 ~ LogNormal(mu, sigma). The q-quantile is 0 when q <= 1 - p, else
  exp(mu + sigma * Phi^-1((q - (1 - p)) / p)), its log capped as the mean is (`mean_tf.models.ziln_distribution`).
- Bucket models (MEAN and its ablations with a DAM head): the bucket probabilities with each bucket's
  range in money. Bucket 0 is the zero label; bucket b >= 1 covers the train labels between the smallest
  train label of bucket b and that of bucket b + 1 (the last is open above), read off the train split.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)


def quantile_name(q: float) -> str:
    """Output name of a quantile: 0.1 -> "cltv_q10"."""
    return f"cltv_q{int(round(q * 100)):02d}"


def ziln_quantiles_tf(logits, quantiles: Sequence[float] = QUANTILES, max_log_prediction=None):
    """ZILN logits [B, 3] (payer logit, mu, raw sigma) -> money quantiles [B, len(quantiles)]."""
    import tensorflow as tf

    from mean_tf.models import ziln_distribution

    logits = tf.cast(logits, tf.float32)
    p = tf.sigmoid(logits[:, 0:1])
    mu = logits[:, 1:2]
    sigma = ziln_distribution.lognormal_sigma(logits[:, 2:3])
    q = tf.constant([list(quantiles)], tf.float32)
    share = (q - (1.0 - p)) / tf.maximum(p, 1e-12)  # the quantile's level within the payers
    z = tf.math.ndtri(tf.clip_by_value(share, 1e-7, 1.0 - 1e-7))
    cap = ziln_distribution.FLOAT32_SAFE_LOG if max_log_prediction is None else min(float(max_log_prediction),
                                                                          ziln_distribution.FLOAT32_SAFE_LOG)
    value = tf.exp(tf.minimum(mu + sigma * z, cap))
    return tf.where(share > 0.0, value, tf.zeros_like(value))


def bucket_money_ranges(money: np.ndarray, bucket: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper) money edges of the n buckets from train labels and their buckets (module docstring).
    A bucket without train rows gets the previous bucket's upper edge as both edges."""
    money = np.asarray(money, dtype=np.float64).ravel()
    bucket = np.asarray(bucket).ravel()
    lower = np.zeros(n)
    for b in range(1, n):
        rows = money[bucket == b]
        lower[b] = rows.min() if rows.size else np.nan
    for b in range(1, n):  # an empty bucket starts where the previous one starts
        if np.isnan(lower[b]):
            lower[b] = lower[b - 1]
    upper = np.r_[lower[1:], np.inf]
    upper[0] = 0.0
    return lower, upper
