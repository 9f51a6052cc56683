"""CLTV metrics of the MEAN paper (section 4.1, Table 1): Percentile MAPE, normalised Gini, Spearman, AUC;
and the calibration of the money prediction: `value_ratio` and `decile_calibration`.

NumPy in, float out. These functions are the one definition of every metric in the project: the
benchmark, the notebooks and the TFMA metrics of the TFX Evaluator (`mean_tf.tfx_modules.tfma_metrics`) call
them and never re-implement them.

`y` is the true CLTV in money and `p` the predicted CLTV in money, 1-D arrays of equal length.
Every ranking metric orders customers by `p` descending with a stable sort, so ties in `p` keep
their input order and each result is deterministic. Degenerate inputs (nothing to rank, a single
class, no value at all) give the documented NaN instead of raising.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Tuple

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from mean_tf.contract import CALIBRATION_NAMES, METRIC_NAMES  # noqa: F401  (the keys of `evaluate`)
from mean_tf.errors import MeanTFError

PERCENTILE_BINS = 100
DECILE_BINS = 10
TOP_SHARE = 0.1

HIGHER_IS_BETTER: Dict[str, bool] = {
    "percentile_mape": False,
    "normalized_gini": True,
    "spearman": True,
    "payer_auc": True,
    "decile_mape": False,
    "top_auc": True,
    "lift_at_10": True,
}


def _as_pair(y, p) -> Tuple[np.ndarray, np.ndarray]:
    """Returns y and p as finite 1-D float64 arrays of equal length; raises MeanTFError otherwise."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise MeanTFError(f"metrics need 1-D y and p of equal length, got shapes {y.shape} and {p.shape}")
    for name, values in (("y", y), ("p", p)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise MeanTFError(f"metrics need finite values, {name} has {bad} NaN/inf of {values.size}")
    return y, p


def _check_share(top: float) -> None:
    if not 0.0 < top <= 1.0:
        raise MeanTFError(f"top must be in (0, 1], got {top}")


def top_count(n: int, top: float) -> int:
    """ceil(top·n), at least 1, robust to float noise (0.1·30 is 3.0000000000000004)."""
    return max(1, int(math.ceil(round(top * n, 9))))


def ranking_order(p) -> np.ndarray:
    """Indices that sort p descending; a stable sort, so ties keep their input order."""
    return np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")


def _gains(y: np.ndarray, order: np.ndarray) -> np.ndarray:
    """G_k = (sum of the first k y in `order`) / sum(y), k = 1..n. Caller ensures sum(y) != 0."""
    return np.cumsum(y[order]) / y.sum()


def gain_curve(y, p) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative gain curve for plots: (share of customers, share of total value), both from 0.

    Customers are taken by p descending (stable). Both arrays have n + 1 points, the first is
    (0, 0) and the last (1, 1). The value share is all NaN when sum(y) = 0.
    """
    y, p = _as_pair(y, p)
    n = y.size
    population = np.arange(n + 1, dtype=np.float64) / max(n, 1)
    if y.sum() == 0:
        return population, np.full(n + 1, np.nan)
    return population, np.concatenate([[0.0], _gains(y, ranking_order(p))])


def normalized_gini(y, p) -> float:
    """Normalised Gini of google/lifetime_value (Wang et al. 2019), deterministic by the stable sort.

    raw(s) = 2·mean_k(G_k) − 1 with G_k the gain curve when customers are ordered by s; the result is
    raw(p) / raw(y), the oracle ordering by y itself. No abs(): worse than random is negative.
    NaN when sum(y) = 0 (or the oracle's raw Gini is 0).
    """
    y, p = _as_pair(y, p)
    if y.size == 0 or y.sum() == 0:
        return float("nan")
    raw_model = 2.0 * _gains(y, ranking_order(p)).mean() - 1.0
    raw_oracle = 2.0 * _gains(y, ranking_order(y)).mean() - 1.0
    if raw_oracle == 0:
        return float("nan")
    return float(raw_model / raw_oracle)


def percentile_mape(y, p, n_bins: int = PERCENTILE_BINS) -> float:
    """Percentile MAPE (paper section 4.1): MAPE of group means over n_bins groups ranked by p.

    The ordering by p descending (stable) is split into n_bins consecutive groups of near-equal size
    as numpy.array_split does; each group with mean(y) > 0 scores |mean(p) − mean(y)| / mean(y), and
    the result is the unweighted mean of those scores. Empty groups (n < n_bins) and groups with
    mean(y) = 0 are skipped; NaN if no group is left.
    """
    y, p = _as_pair(y, p)
    if int(n_bins) != n_bins or n_bins < 1:
        raise MeanTFError(f"n_bins must be a positive integer, got {n_bins}")
    errors = []
    for group in np.array_split(ranking_order(p), int(n_bins)):
        if group.size == 0:
            continue
        mean_y = y[group].mean()
        if mean_y > 0:
            errors.append(abs(p[group].mean() - mean_y) / mean_y)
    return float(np.mean(errors)) if errors else float("nan")


def decile_mape(y, p) -> float:
    """Decile MAPE of ZILN (Wang et al. 2019): `percentile_mape` with 10 groups, robust to ties."""
    return percentile_mape(y, p, n_bins=DECILE_BINS)


def spearman(y, p) -> float:
    """Spearman rank correlation with average ranks for ties (scipy); NaN if n < 2 or y or p is constant."""
    y, p = _as_pair(y, p)
    if y.size < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(y, p).correlation)


def _binary_auc(labels: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of p for a boolean label (scikit-learn); NaN when only one class is present."""
    if labels.size == 0 or labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, p))


def auc(y, p) -> float:
    """ROC AUC of p for the payer label y > 0 (scikit-learn); NaN when only one class is present."""
    y, p = _as_pair(y, p)
    return _binary_auc(y > 0, p)


def top_auc(y, p, top: float = TOP_SHARE) -> float:
    """ROC AUC of p for "y is in the top `top` share of y": the paper's high-value-user recognition.

    A customer is high-value when y > 0 and y >= the k-th largest y, k = ceil(top·n): ties at the
    threshold all count as high-value (so the positive share can exceed `top`), and zero spenders
    never do. NaN when only one class is present.
    """
    y, p = _as_pair(y, p)
    _check_share(top)
    if y.size == 0:
        return float("nan")
    threshold = np.sort(y)[::-1][top_count(y.size, top) - 1]
    return _binary_auc((y > 0) & (y >= threshold), p)


def lift_at(y, p, top: float = TOP_SHARE) -> float:
    """Lift of the top `top` share by p: their share of total value divided by their share of customers.

    The offline counterpart of the paper's A/B test, which targeted the top 10 % by predicted
    cltv_365. The first k = ceil(top·n) customers by p descending (stable) are taken and the
    divisor is k/n, which equals `top` when top·n is an integer; random ranking scores 1 in
    expectation. NaN when n = 0 or sum(y) = 0.
    """
    y, p = _as_pair(y, p)
    _check_share(top)
    n = y.size
    if n == 0 or y.sum() == 0:
        return float("nan")
    k = top_count(n, top)
    return float(_gains(y, ranking_order(p))[k - 1] / (k / n))


def value_ratio(y, p) -> float:
    """sum(p) / sum(y): the predicted total spend over the actual (1 is calibrated in total; the
    budget a targeting campaign plans with). NaN when sum(y) = 0."""
    y, p = _as_pair(y, p)
    total = y.sum()
    return float(p.sum() / total) if total > 0 else float("nan")


def decile_calibration(y, p, n_bins: int = DECILE_BINS) -> Dict[str, np.ndarray]:
    """Mean predicted and mean actual value per group of the prediction (10 groups by p descending, as
    `percentile_mape` forms them): {"group": 1..n, "customers", "mean_predicted", "mean_actual",
    "ratio" (predicted / actual, NaN where mean actual is 0)}. Empty groups are left out."""
    y, p = _as_pair(y, p)
    groups = [g for g in np.array_split(ranking_order(p), int(n_bins)) if g.size]
    mean_p = np.array([p[g].mean() for g in groups])
    mean_y = np.array([y[g].mean() for g in groups])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean_y > 0, mean_p / np.where(mean_y > 0, mean_y, 1.0), np.nan)
    return {"group": np.arange(1, len(groups) + 1), "customers": np.array([g.size for g in groups]),
            "mean_predicted": mean_p, "mean_actual": mean_y, "ratio": ratio}


def evaluate(y, p) -> Dict[str, float]:
    """All scalar metrics under their stable names (`METRIC_NAMES`, then `CALIBRATION_NAMES`); every
    results table uses this."""
    y, p = _as_pair(y, p)
    return {
        "percentile_mape": percentile_mape(y, p),
        "normalized_gini": normalized_gini(y, p),
        "spearman": spearman(y, p),
        "payer_auc": auc(y, p),
        "decile_mape": decile_mape(y, p),
        "top_auc": top_auc(y, p),
        "lift_at_10": lift_at(y, p, TOP_SHARE),
        "value_ratio": value_ratio(y, p),
    }
