"""Monotone calibration of the money prediction, fitted on the eval split and exported in the serving graph.

A model's money prediction ranks customers well but its level can be off (the demo's pushed
model predicted 0.54x the actual total). `fit` learns a strictly increasing map f from the eval split's
predictions to its actual values, so every ranking metric (Gini, Spearman, AUC, lift) is unchanged and
the totals and group means (value ratio, Percentile MAPE) are corrected. Two shapes:

- "isotonic": isotonic regression of the actual value on the prediction (scikit-learn), read at `KNOTS`
  quantiles of the prediction, then blended with the ratio-scaled prediction, f = (1 - BLEND) * iso + BLEND * r * p
  with r = sum(actual) / sum(predicted): isotonic regression is flat over stretches, and the small linear
  part makes f strictly increasing (so no two customers tie that did not tie before);
- "scale": f = r * p, the level only.

"auto" (the default) takes the shape with the lower out-of-fold Percentile MAPE in a `FOLDS`-fold split of
the eval split (`choose`): isotonic regression pools the low predictions of zero-heavy data into flat steps,
which can multiply the Percentile MAPE of the lowest groups (synthetic data: 0.9 -> 3.0 out of fold), and
the scale cannot bend a prediction whose errors grow with its size.
Between knots f is linear; below the first knot and above the last it is proportional to p (through 0).

Not in the paper: the paper reports no calibration. `MEANConfig.calibration` = "none" switches it off.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Sequence

import numpy as np

from mean_tf.config import CALIBRATION_SHAPES, CALIBRATIONS
from mean_tf.errors import MeanTFError

KNOTS = 64
BLEND = 0.01
FOLDS = 5


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A strictly increasing piecewise-linear map money -> money: knots `x` (ascending, >= 0) -> `y`,
    fitted with `method` (one of `CALIBRATION_SHAPES`)."""

    x: tuple
    y: tuple
    method: str = "isotonic"

    def apply(self, p) -> np.ndarray:
        """f(p) for money predictions p (NumPy); the same function as `apply_tf`."""
        p = np.asarray(p, dtype=np.float64)
        x, y = np.asarray(self.x), np.asarray(self.y)
        inside = np.interp(p, x, y)
        below = y[0] * p / x[0] if x[0] > 0 else np.full_like(p, y[0])
        above = y[-1] * p / x[-1]
        return np.where(p < x[0], below, np.where(p > x[-1], above, inside))

    def apply_tf(self, p):
        """f(p) in TensorFlow, for the serving graph: p [B] float32 -> [B]."""
        import tensorflow as tf

        x = tf.constant(self.x, tf.float32)
        y = tf.constant(self.y, tf.float32)
        k = len(self.x)
        idx = tf.clip_by_value(tf.searchsorted(x, p, side="right"), 1, k - 1)
        x0, x1 = tf.gather(x, idx - 1), tf.gather(x, idx)
        y0, y1 = tf.gather(y, idx - 1), tf.gather(y, idx)
        inside = y0 + (y1 - y0) / (x1 - x0) * (p - x0)
        below = y[0] * p / x[0] if self.x[0] > 0 else tf.fill(tf.shape(p), y[0])
        above = y[-1] * p / x[-1]
        return tf.where(p < x[0], below, tf.where(p > x[-1], above, inside))

    def to_dict(self) -> Dict[str, object]:
        return {"x": list(self.x), "y": list(self.y), "method": self.method}

    @classmethod
    def from_dict(cls, d) -> "Calibration":
        return cls(tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"]), d.get("method", "isotonic"))


def _checked(predicted, actual):
    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(actual, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1 or not p.size:
        raise MeanTFError(f"calibration needs 1-D predictions and actuals of equal, non-zero length, "
                          f"got {p.shape} and {y.shape}")
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise MeanTFError("calibration needs finite predictions and actual values")
    p = np.maximum(p, 0.0)
    if y.sum() <= 0 or p.sum() <= 0:
        raise MeanTFError("calibration needs some positive actual and predicted value on the eval split")
    return p, y


def fit(predicted, actual, method: str = "auto", knots: int = KNOTS, blend: float = BLEND) -> Calibration:
    """The calibration of the module docstring from eval predictions and actual values (money, 1-D)."""
    if method not in CALIBRATIONS or method == "none":
        raise MeanTFError(f"calibration method must be one of {', '.join(m for m in CALIBRATIONS if m != 'none')}, "
                          f"got {method!r}")
    p, y = _checked(predicted, actual)
    if method == "auto":
        method = _choose(p, y, FOLDS, 0)
    return _fit_shape(p, y, method, knots, blend)


def _fit_shape(p: np.ndarray, y: np.ndarray, shape: str, knots: int = KNOTS, blend: float = BLEND) -> Calibration:
    """`fit` of one shape on inputs already checked (`_checked`)."""
    from sklearn.isotonic import IsotonicRegression

    ratio = y.sum() / p.sum()
    x = np.unique(np.quantile(p, np.linspace(0.0, 1.0, knots)))
    if shape == "scale" or x.size < 2:  # the level only (also when every prediction is equal)
        x = np.array([0.0, max(x[-1], 1e-6)])
        return Calibration(tuple(float(v) for v in x), tuple(float(v) for v in ratio * x), "scale")
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(p, y)
    f = (1.0 - blend) * iso.predict(x) + blend * ratio * x
    return Calibration(tuple(float(v) for v in x), tuple(float(v) for v in f), "isotonic")


def choose(predicted, actual, folds: int = FOLDS, seed: int = 0) -> str:
    """The shape ("isotonic" or "scale") whose out-of-fold predictions have the lower Percentile MAPE over a
    shuffled `folds`-fold split of (predicted, actual); "scale" on a tie or with too few rows to split."""
    p, y = _checked(predicted, actual)
    return _choose(p, y, folds, seed)


def _choose(p: np.ndarray, y: np.ndarray, folds: int, seed: int) -> str:
    """`choose` on inputs already checked."""
    from mean_tf.evaluation.metrics import percentile_mape

    if p.size < 2 * folds:
        return "scale"
    score = {shape: percentile_mape(y, q) for shape, q in out_of_fold(p, y, folds, seed).items()}
    score = {shape: v if np.isfinite(v) else np.inf for shape, v in score.items()}
    return "isotonic" if score["isotonic"] < score["scale"] else "scale"


def out_of_fold(p: np.ndarray, y: np.ndarray, folds: int = FOLDS, seed: int = 0) -> Dict[str, np.ndarray]:
    """Each shape's out-of-fold calibrated predictions of (p, y) over a shuffled `folds`-fold split. A fold
    whose fit rows have no positive actual or predicted value cannot be calibrated: both shapes predict the
    fit rows' mean actual for it, so it favours neither and no held-out row informs its own prediction."""
    from sklearn.model_selection import KFold

    out = {shape: np.zeros_like(p, dtype=np.float64) for shape in CALIBRATION_SHAPES}
    for fit_rows, held_out in KFold(folds, shuffle=True, random_state=seed).split(p):
        pf, yf = p[fit_rows], y[fit_rows]
        for shape in CALIBRATION_SHAPES:
            if yf.sum() > 0 and pf.sum() > 0:
                out[shape][held_out] = _fit_shape(pf, yf, shape).apply(p[held_out])
            else:
                out[shape][held_out] = yf.mean()
    return out


def fit_columns(predicted: np.ndarray, actual: np.ndarray, labels: Sequence[str],
                method: str = "auto") -> Dict[str, Calibration]:
    """One calibration per label column of [N, H] predictions and actuals."""
    return {label: fit(predicted[:, i], actual[:, i], method) for i, label in enumerate(labels)}


def apply_columns(calibrations: Dict[str, Calibration], predicted: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """[N, H] predictions with each column calibrated by its label's calibration."""
    return np.stack([calibrations[label].apply(predicted[:, i]) for i, label in enumerate(labels)], axis=1)
