"""ZILN loss and prediction: Google's golden values, the shape convention and the prediction cap."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.data_facts import DataFacts
from mean_tf.models.ziln_distribution import FLOAT32_SAFE_LOG, log_prediction_caps, ziln_loss, ziln_predict

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


def test_prediction_is_capped_at_the_largest_train_label_and_the_loss_is_not():
    config = MEANConfig(labels=("cltv_30", "cltv_365"))
    assert log_prediction_caps(config, DataFacts(label_max={"cltv_365": 500.0})) == [FLOAT32_SAFE_LOG, pytest.approx(np.log(500.0))]
    wild = np.array([[10.0, 1.0, 50.0]], dtype=np.float32)  # softplus(50) = 50 -> exp(1 + 1250)
    assert ziln_predict(wild).numpy()[0, 0] == pytest.approx(np.exp(FLOAT32_SAFE_LOG), rel=1e-3)
    assert ziln_predict(wild, np.log(500.0)).numpy()[0, 0] == pytest.approx(500.0 / (1 + np.exp(-10.0)), rel=1e-5)
    tame = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)  # below the cap: Google's value
    sigma = np.log1p(np.exp(0.0))
    assert ziln_predict(tame, np.log(500.0)).numpy()[0, 0] == pytest.approx(0.5 * np.exp(1.0 + sigma ** 2 / 2), rel=1e-5)
    # No cap inside the loss: sigma keeps its gradient however large it is (a tf.minimum cap zeroed it).
    logits = tf.Variable([[0.0, 1.0, 8.0]])
    with tf.GradientTape() as tape:
        loss = ziln_loss([[3.0]], logits)
    assert tape.gradient(loss, logits).numpy()[0, 2] > 0.05  # NLL falls as sigma shrinks toward the data


def test_dnn_ziln_predictions_never_exceed_the_largest_train_label():
    from mean_tf.models.dnn_ziln import DNNZILN

    model = DNNZILN(MEANConfig(ziln_units=(4,)), DataFacts(label_max={"cltv_365": 1000.0}))
    features = {"numeric": np.full((3, 2), 1e3, np.float32)}  # extreme inputs
    model(features)
    model.head.bias.assign([0.0, 30.0, 30.0])  # mu = 30, sigma = 30: exp(480) unguarded
    cltv = model(features)["cltv"].numpy()
    assert np.all(np.isfinite(cltv)) and cltv.max() <= 1000.0 * (1 + 1e-5)


@pytest.mark.parametrize("bad", [{"ziln_units": ()}, {"odmn_tower_units": (0,)}, {"gbdt_max_iter": 0}])
def test_config_rejects_bad_baseline_knobs(bad):
    with pytest.raises(mean_tf.errors.MeanTFError, match=next(iter(bad))):
        MEANConfig(**bad)
