"""ZILN loss and prediction: Google's golden values, the shape convention and the production guards."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.ziln import LOG_PREDICTION_CAP, SIGMA_CAP, ziln_guards, ziln_loss, ziln_predict

GOLDEN_LOGITS = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32)
GOLDEN_LABELS = np.array([[0.0], [1.5]], dtype=np.float32)


def test_golden_values_of_google_lifetime_value():
    np.testing.assert_allclose(ziln_loss(GOLDEN_LABELS, GOLDEN_LOGITS).numpy(), [0.744397, 1.878373], atol=1e-5)
    np.testing.assert_allclose(ziln_predict(GOLDEN_LOGITS).numpy(), [[0.923638], [1.690755]], atol=1e-5)


def test_loss_is_the_negative_log_likelihood_of_the_mixture():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3)).astype(np.float32)
    y = np.where(rng.random(50) < 0.5, 0.0, rng.lognormal(1.0, 1.0, 50)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits[:, 0]))
    mu, sigma = logits[:, 1], np.log1p(np.exp(logits[:, 2]))
    safe_y = np.where(y > 0, y, 1)
    density = np.exp(-((np.log(safe_y) - mu) ** 2) / (2 * sigma**2)) / (safe_y * sigma * np.sqrt(2 * np.pi))
    expected = -np.where(y > 0, np.log(p) + np.log(density), np.log(1 - p))
    np.testing.assert_allclose(ziln_loss(y[:, None], logits).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_per_horizon_shapes_and_finite_gradients():
    logits = tf.Variable(tf.random.normal([4, 2, 3]))
    y = tf.constant([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0], [5.0, 9.0]])
    with tf.GradientTape() as tape:
        loss = ziln_loss(y[..., None], logits)
    assert loss.shape == (4, 2)
    assert ziln_predict(logits).shape == (4, 2, 1)
    assert np.isfinite(tape.gradient(loss, logits).numpy()).all()


def test_guards_are_off_by_default_and_cap_sigma_and_the_log_prediction():
    assert ziln_guards(MEANConfig()) == {"max_sigma": None, "max_log_prediction": None}
    guards = ziln_guards(MEANConfig(ziln_clip_sigma=True, ziln_clip_log_prediction=True))
    assert guards == {"max_sigma": SIGMA_CAP, "max_log_prediction": LOG_PREDICTION_CAP}
    wild = np.array([[10.0, 1.0, 50.0]], dtype=np.float32)  # softplus(50) = 50 -> exp(1 + 1250)
    # Unguarded, the prediction is only kept finite (no inf); the guard is what caps it.
    assert ziln_predict(wild).numpy()[0, 0] > np.exp(LOG_PREDICTION_CAP)
    capped = ziln_predict(wild, **guards).numpy()
    assert np.isfinite(capped).all() and capped[0, 0] <= np.exp(LOG_PREDICTION_CAP)
    # sigma capped at 5: the loss equals that of logits whose softplus is exactly 5
    at_cap = np.array([[10.0, 1.0, np.log(np.expm1(SIGMA_CAP))]], dtype=np.float32)
    np.testing.assert_allclose(ziln_loss([[3.0]], wild, max_sigma=SIGMA_CAP).numpy(),
                               ziln_loss([[3.0]], at_cap).numpy(), rtol=1e-5)


@pytest.mark.parametrize("bad", [{"ziln_units": ()}, {"odmn_tower_units": (0,)}, {"gbdt_max_iter": 0}])
def test_config_rejects_bad_baseline_knobs(bad):
    with pytest.raises(mean_tf.errors.MeanTFError, match=next(iter(bad))):
        MEANConfig(**bad)
