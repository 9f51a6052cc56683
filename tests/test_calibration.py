"""Money calibration: strictly increasing (rankings unchanged), totals corrected, NumPy == TensorFlow."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import CALIBRATION_SHAPES
from mean_tf.training import calibration
from mean_tf.evaluation import metrics
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
    fitted = calibration.fit(p_eval, y_eval, "isotonic")
    assert np.all(np.diff(fitted.x) > 0) and np.all(np.diff(fitted.y) > 0)
    q = fitted.apply(p_test)
    assert metrics.value_ratio(y_test, p_test) < 0.75
    assert 0.9 <= metrics.value_ratio(y_test, q) <= 1.1
    assert metrics.percentile_mape(y_test, q) < metrics.percentile_mape(y_test, p_test)
    np.testing.assert_array_equal(metrics.ranking_order(q), metrics.ranking_order(p_test))
    assert metrics.normalized_gini(y_test, q) == metrics.normalized_gini(y_test, p_test)


def test_numpy_and_tensorflow_agree_inside_and_outside_the_knots():
    fitted = calibration.fit(*skewed(2), method="isotonic")
    p = np.r_[0.0, fitted.x[0] / 2, np.linspace(fitted.x[0], fitted.x[-1], 200), fitted.x[-1] * 3].astype(np.float32)
    np.testing.assert_allclose(fitted.apply_tf(tf.constant(p)).numpy(), fitted.apply(p), rtol=1e-4, atol=1e-3)
    assert fitted.apply(np.array([fitted.x[-1] * 2]))[0] == pytest.approx(2 * fitted.y[-1])  # proportional above
    assert calibration.Calibration.from_dict(fitted.to_dict()) == fitted


def test_constant_predictions_scale_only_and_bad_input_is_refused():
    fitted = calibration.fit(np.full(10, 2.0), np.arange(10.0), "isotonic")
    assert fitted.apply(np.array([2.0]))[0] == pytest.approx(4.5 / 2 * 2) and fitted.method == "scale"
    with pytest.raises(MeanTFError, match="positive"):
        calibration.fit(np.ones(5), np.zeros(5))
    with pytest.raises(MeanTFError, match="finite"):
        calibration.fit(np.array([1.0, np.nan]), np.ones(2))


def zero_heavy(seed, n=4000):
    """Synthetic-like data: 80 % of customers spend 0 and the expected value spans four orders of magnitude,
    so the lowest of 100 groups have tiny means that isotonic regression's flat steps overshoot."""
    rng = np.random.default_rng(seed)
    value = rng.lognormal(0, 2.0, n)
    y = np.where(rng.random(n) < 0.8, 0.0, value * 5 * rng.lognormal(0, 0.5, n))
    return value * 1.3, y  # ranks exactly, 1.3x too high


def bent(seed, n=4000):
    """A prediction whose error grows with its size (y ~ p^2): only a bent map fixes the group means."""
    rng = np.random.default_rng(seed)
    p = rng.lognormal(2, 0.8, n)
    return p, p ** 2 / 10 * rng.lognormal(0, 0.2, n)


@pytest.mark.parametrize("data, shape", [(zero_heavy, "scale"), (bent, "isotonic")])
def test_auto_takes_the_shape_with_the_lower_out_of_fold_percentile_mape(data, shape):
    p_eval, y_eval = data(0)
    assert calibration.choose(p_eval, y_eval) == shape
    auto = calibration.fit(p_eval, y_eval)  # "auto", the default
    assert auto.method == shape and auto == calibration.fit(p_eval, y_eval, shape)
    p_test, y_test = data(1)  # and on new data the chosen shape is the better one
    other = calibration.fit(p_eval, y_eval, "isotonic" if shape == "scale" else "scale")
    assert metrics.percentile_mape(y_test, auto.apply(p_test)) < metrics.percentile_mape(y_test, other.apply(p_test))
    np.testing.assert_array_equal(metrics.ranking_order(auto.apply(p_test)), metrics.ranking_order(p_test))
    assert calibration.Calibration.from_dict(auto.to_dict()) == auto


def test_files_from_before_the_choice_read_as_isotonic_and_unknown_methods_are_refused():
    assert calibration.Calibration.from_dict({"x": [0.0, 1.0], "y": [0.0, 2.0]}).method == "isotonic"
    with pytest.raises(MeanTFError, match="one of auto, isotonic, scale"):
        calibration.fit(np.ones(4), np.ones(4), "spline")


def test_a_fold_that_cannot_be_calibrated_predicts_its_fit_rows_mean_not_the_held_out_rows():
    p = np.arange(1.0, 11.0)
    y = np.zeros(10)
    y[9] = 50.0  # one buyer: the fold that holds it out has no positive actual to fit
    out = calibration.out_of_fold(p, y)
    for shape in CALIBRATION_SHAPES:
        assert out[shape][9] == 0.0  # its fit rows' mean, 0; not a level learnt with the held-out row in it
        assert np.all(out[shape] >= 0)
    assert calibration.choose(p, y) in CALIBRATION_SHAPES
