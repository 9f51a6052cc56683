"""Money calibration: strictly increasing (rankings unchanged), totals corrected, NumPy == TensorFlow."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf import calibration, metrics
from mean_tf.errors import MeanTFError


def skewed(seed, n=4000, under=0.5):
    """Predictions that rank well but are `under` x the truth, with 30 % zero spenders."""
    rng = np.random.default_rng(seed)
    p = rng.lognormal(3, 1, n)
    y = np.where(rng.random(n) < 0.3, 0.0, p / under * rng.lognormal(0, 0.3, n))
    return p, y


def test_calibration_fixes_the_total_and_keeps_the_ranking():
    p_eval, y_eval = skewed(0)
    p_test, y_test = skewed(1)
    fitted = calibration.fit(p_eval, y_eval)
    assert np.all(np.diff(fitted.x) > 0) and np.all(np.diff(fitted.y) > 0)
    q = fitted.apply(p_test)
    assert metrics.value_ratio(y_test, p_test) < 0.75
    assert 0.9 <= metrics.value_ratio(y_test, q) <= 1.1
    assert metrics.percentile_mape(y_test, q) < metrics.percentile_mape(y_test, p_test)
    np.testing.assert_array_equal(metrics.ranking_order(q), metrics.ranking_order(p_test))
    assert metrics.normalized_gini(y_test, q) == metrics.normalized_gini(y_test, p_test)


def test_numpy_and_tensorflow_agree_inside_and_outside_the_knots():
    fitted = calibration.fit(*skewed(2))
    p = np.r_[0.0, fitted.x[0] / 2, np.linspace(fitted.x[0], fitted.x[-1], 200), fitted.x[-1] * 3].astype(np.float32)
    np.testing.assert_allclose(fitted.apply_tf(tf.constant(p)).numpy(), fitted.apply(p), rtol=1e-4, atol=1e-3)
    assert fitted.apply(np.array([fitted.x[-1] * 2]))[0] == pytest.approx(2 * fitted.y[-1])  # proportional above
    assert calibration.Calibration.from_dict(fitted.to_dict()) == fitted


def test_constant_predictions_scale_only_and_bad_input_is_refused():
    fitted = calibration.fit(np.full(10, 2.0), np.arange(10.0))
    assert fitted.apply(np.array([2.0]))[0] == pytest.approx(4.5 / 2 * 2)
    with pytest.raises(MeanTFError, match="positive"):
        calibration.fit(np.ones(5), np.zeros(5))
    with pytest.raises(MeanTFError, match="finite"):
        calibration.fit(np.array([1.0, np.nan]), np.ones(2))
