"""The loss terms of MEAN (eq. 8, 11, 13-17) against NumPy, the ablation switches and the stop-gradient choices."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.losses import alignment_kl, cross_entropy, distillation, huber, mean_loss, tempered_softmax

RNG = np.random.default_rng(3)
N_DIST = 4


def _softmax(z, temperature=1.0):
    z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def _probs(*shape):
    return _softmax(RNG.normal(size=shape)).astype("float32")


def _np_distillation(onehot, logits, theta, beta, gamma, tau, xi):
    hard = -(onehot * np.log(_softmax(logits) + xi)).sum(-1).mean()
    soft = -(_softmax(theta, tau) * np.log(_softmax(logits, tau) + xi)).sum(-1).mean()
    return beta * hard + gamma * soft


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_matches_eq_8_on_both_branches(delta):
    y = RNG.uniform(0, 5, size=50).astype("float32")
    y_hat = (y + RNG.normal(scale=2.0, size=50)).astype("float32")
    err = np.abs(y - y_hat)
    assert (err <= delta).any() and (err > delta).any()
    expected = np.where(err <= delta, 0.5 * err ** 2, delta * (err - 0.5 * delta)).mean()
    np.testing.assert_allclose(huber(y, y_hat, delta).numpy(), expected, rtol=1e-5)


def test_alignment_kl_matches_eq_13_is_zero_on_equal_inputs_and_finite_on_zeros():
    b_hat, theta = _probs(8, N_DIST), _probs(8, N_DIST)
    expected = (b_hat * np.log(b_hat / theta)).sum(-1).mean()
    np.testing.assert_allclose(alignment_kl(b_hat, theta).numpy(), expected, rtol=1e-5)
    assert alignment_kl(b_hat, theta).numpy() > 0
    np.testing.assert_allclose(alignment_kl(theta, theta).numpy(), 0.0, atol=1e-6)
    one_hot = np.eye(N_DIST, dtype="float32")[[0, 1, 2, 3]]
    assert np.isfinite(alignment_kl(one_hot, one_hot).numpy())
    assert np.isfinite(alignment_kl(one_hot, np.roll(one_hot, 1, axis=0)).numpy())


def test_cross_entropy_and_tempered_softmax_match_eq_15_16():
    p, q, o = _probs(5, N_DIST), _probs(5, N_DIST), RNG.normal(size=(5, N_DIST)).astype("float32")
    np.testing.assert_allclose(cross_entropy(p, q, 1e-3).numpy(), -(p * np.log(q + 1e-3)).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(tempered_softmax(o, 3.0).numpy(), _softmax(o, 3.0), rtol=1e-5)
    assert tempered_softmax(o, 3.0).numpy().std() < tempered_softmax(o, 1.0).numpy().std()  # hotter = flatter


def test_distillation_matches_eq_14_with_the_literal_tempered_softmax_of_theta_hat():
    onehot = np.eye(N_DIST, dtype="float32")[RNG.integers(0, N_DIST, 9)]
    logits, theta = RNG.normal(size=(9, N_DIST)).astype("float32"), _probs(9, N_DIST)
    for beta, gamma, tau, xi in [(1.0, 1.0, 2.0, 1e-8), (0.3, 2.0, 5.0, 1e-3)]:
        expected = _np_distillation(onehot, logits, theta, beta, gamma, tau, xi)
        got = distillation(onehot, logits, theta, beta, gamma, tau, xi).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The hard term is L_bucket (eq. 11), the categorical cross-entropy of the one-hot bucket.
    bucket_ce = tf.keras.losses.categorical_crossentropy(onehot, logits, from_logits=True).numpy().mean()
    np.testing.assert_allclose(distillation(onehot, logits, theta, 1.0, 0.0, 2.0, 0.0).numpy(), bucket_ce, rtol=1e-5)
    # The teacher is sigma(theta_hat; tau), not theta_hat itself.
    as_is = 1.0 * -(onehot * np.log(_softmax(logits) + 1e-8)).sum(-1).mean() \
        - (theta * np.log(_softmax(logits, 2.0) + 1e-8)).sum(-1).mean()
    assert not np.isclose(distillation(onehot, logits, theta).numpy(), as_is, rtol=1e-4)


def _batch(num_horizons, batch=6):
    return (
        {"scaled": RNG.uniform(0, 5, (batch, num_horizons)).astype("float32"),
         "bucket": RNG.integers(0, N_DIST, (batch, num_horizons))},
        RNG.normal(size=(batch, num_horizons)).astype("float32"),
    )


def _config(num_horizons=1, **changes):
    labels = ("cltv_30", "cltv_90", "cltv_180", "cltv_365")[-num_horizons:]
    return MEANConfig(labels=labels, num_distributions=N_DIST, **changes)


def test_mean_loss_is_the_sum_of_eq_8_13_14_and_honours_the_ablations():
    targets, cltv = _batch(1)
    logits, theta = RNG.normal(size=(6, N_DIST)).astype("float32"), _probs(6, N_DIST)
    outputs = {"cltv": cltv, "bucket_logits": logits, "bucket_probs": _softmax(logits).astype("float32"),
               "attention_mean": theta}
    onehot = np.eye(N_DIST)[targets["bucket"][:, 0]]
    l_cltv = huber(targets["scaled"][:, 0], cltv[:, 0]).numpy()
    l_kl = alignment_kl(outputs["bucket_probs"], theta).numpy()
    l_dis = _np_distillation(onehot, logits, theta, 1.0, 1.0, 2.0, 1e-8)

    terms = {k: v.numpy() for k, v in mean_loss(targets, outputs, _config()).items()}
    got = [terms["loss_cltv"], terms["loss_kl"], terms["loss_dis"]]
    np.testing.assert_allclose(got, [l_cltv, l_kl, l_dis], rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], l_cltv + l_kl + l_dis, rtol=1e-5)

    no_kl = mean_loss(targets, outputs, _config(use_kl=False))
    assert no_kl["loss_kl"].numpy() == 0 and np.isclose(no_kl["loss"].numpy(), l_cltv + l_dis, rtol=1e-5)
    no_soft = mean_loss(targets, outputs, _config(use_soft_distillation=False))
    hard_only = _np_distillation(onehot, logits, theta, 1.0, 0.0, 2.0, 1e-8)
    np.testing.assert_allclose(no_soft["loss_dis"].numpy(), hard_only, rtol=1e-5)
    mvfe_only = mean_loss(targets, {"cltv": cltv, "attention_mean": theta}, _config(use_dam=False))
    assert mvfe_only["loss_kl"].numpy() == 0 and mvfe_only["loss_dis"].numpy() == 0
    np.testing.assert_allclose(mvfe_only["loss"].numpy(), l_cltv, rtol=1e-6)


def test_mean_loss_sums_terms_over_horizons():
    targets, cltv = _batch(3)
    logits, theta = RNG.normal(size=(6, 3, N_DIST)).astype("float32"), _probs(6, N_DIST)
    outputs = {"cltv": cltv, "bucket_logits": logits, "bucket_probs": _softmax(logits).astype("float32"),
               "attention_mean": theta}
    terms = mean_loss(targets, outputs, _config(3))
    per_horizon = [
        mean_loss({"scaled": targets["scaled"][:, [h]], "bucket": targets["bucket"][:, [h]]},
                  {"cltv": cltv[:, [h]], "bucket_logits": logits[:, h], "bucket_probs": outputs["bucket_probs"][:, h],
                   "attention_mean": theta}, _config(1))
        for h in range(3)
    ]
    for name in ("loss", "loss_cltv", "loss_kl", "loss_dis"):
        np.testing.assert_allclose(terms[name].numpy(), sum(t[name].numpy() for t in per_horizon), rtol=1e-5)


@pytest.mark.parametrize("kl_stop, distill_stop", [(True, True), (False, False)])
def test_stop_gradient_switches_route_the_alignment_gradients(kl_stop, distill_stop):
    """Default: L^kl moves only the attention (theta_hat), the soft L^dis term moves only DAM (k)."""
    targets, cltv = _batch(1)
    dam_logits = tf.Variable(RNG.normal(size=(6, N_DIST)).astype("float32"))
    attention_logits = tf.Variable(RNG.normal(size=(6, N_DIST)).astype("float32"))
    config = _config(kl_stop_gradient_dam=kl_stop, distill_stop_gradient_attention=distill_stop, beta=0.0)
    with tf.GradientTape(persistent=True) as tape:
        outputs = {"cltv": cltv, "bucket_logits": dam_logits, "bucket_probs": tf.nn.softmax(dam_logits),
                   "attention_mean": tf.nn.softmax(attention_logits)}
        terms = mean_loss(targets, outputs, config)  # beta = 0: loss_dis is the soft term alone

    def moves(loss, variable):
        grad = tape.gradient(loss, variable)
        return grad is not None and bool(np.abs(grad.numpy()).max() > 0)

    assert moves(terms["loss_kl"], attention_logits)
    assert moves(terms["loss_dis"], dam_logits)
    assert moves(terms["loss_kl"], dam_logits) is (not kl_stop)
    assert moves(terms["loss_dis"], attention_logits) is (not distill_stop)
