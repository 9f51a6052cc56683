"""MVFE (eq. 2-3), DistributionAttention (eq. 4-6, 12) and DAM (eq. 9-10) against NumPy re-computations."""
import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.models.layers import DAM, MVFE, DistributionAttention

RNG = np.random.default_rng(7)


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def _relu(z):
    return np.maximum(z, 0.0)


def _randomise(layer):
    """Fixed, non-trivial weights (BN variances kept positive) so every parameter matters."""
    layer.set_weights([RNG.uniform(0.5, 1.5, w.shape) if "moving_variance" in v.name else RNG.normal(size=w.shape)
                       for v, w in zip(layer.weights, layer.get_weights())])


def _same_outputs(layer, build_input, *call_args, **call_kwargs):
    clone = type(layer).from_config(layer.get_config())
    clone(build_input, *call_args, **call_kwargs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(tf.nest.flatten(layer(build_input, *call_args, **call_kwargs)),
                    tf.nest.flatten(clone(build_input, *call_args, **call_kwargs))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mvfe_gates_and_distribution_embeddings_match_eq_2_3():
    x = RNG.normal(size=(6, 4)).astype("float32")
    layer = MVFE(num_experts=3, expert_units=5, num_distributions=4)
    layer(x)
    _randomise(layer)

    experts = []
    for expert in layer.experts:
        (kernel, bias), bn = [w.numpy() for w in expert.dense[0].weights], expert.norms[0]
        gamma, beta, mean, var = [w.numpy() for w in bn.weights]
        experts.append(gamma * (_relu(x @ kernel + bias) - mean) / np.sqrt(var + bn.epsilon) + beta)
    experts = np.stack(experts, axis=1)  # [B, M, U]
    gates = np.stack([_softmax(x @ gate.kernel.numpy()) for gate in layer.gates], axis=1)  # [B, n, M]

    np.testing.assert_allclose(layer.gate_weights(x).numpy(), gates, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, rtol=1e-6)
    tokens = layer(x, training=False).numpy()
    assert tokens.shape == (6, 4, 5)
    for i in range(4):
        f_i = sum(gates[:, i, j, None] * experts[:, j] for j in range(3))
        np.testing.assert_allclose(tokens[:, i], f_i, rtol=1e-4, atol=1e-5)


def test_mvfe_training_mode_uses_batch_statistics():
    x = RNG.normal(size=(32, 4)).astype("float32")
    layer = MVFE(num_experts=2, expert_units=3, num_distributions=3)
    layer(x)
    _randomise(layer)
    assert not np.allclose(layer(x, training=True).numpy(), layer(x, training=False).numpy())


def test_distribution_attention_matches_eq_4_6_and_12():
    tokens = RNG.normal(size=(5, 4, 3)).astype("float32")  # [B, n, d]
    layer = DistributionAttention(units=6)
    layer(tokens)
    _randomise(layer)
    w_q, w_k, b_g, w_a, b_a = [w.numpy() for w in (layer.w_q, layer.w_k, layer.b_g, layer.w_a, layer.b_a)]

    g = np.tanh(tokens @ w_q + tokens @ w_k + b_g)  # eq. 4, two separate matrices
    attention = _softmax(g @ w_a + b_a)  # eq. 5
    z = np.einsum("bij,bjd->bid", attention, tokens)
    embedding = z.mean(axis=1)  # eq. 6
    theta_hat = attention.mean(axis=1)  # eq. 12

    e, a, theta = [t.numpy() for t in layer(tokens)]
    np.testing.assert_allclose(a, attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e, embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(theta, theta_hat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(theta.sum(axis=-1), 1.0, rtol=1e-5)
    assert a.shape == (5, 4, 4) and e.shape == (5, 3) and theta.shape == (5, 4)
    assert not np.allclose(w_q, w_k)  # the two matrices of eq. 4 are distinct weights


def test_dam_matches_eq_9_10_and_survives_huge_logits():
    x = RNG.normal(size=(7, 4)).astype("float32")
    layer = DAM(shared_units=6, units=(5, 3), num_distributions=4)
    layer(x)
    _randomise(layer)

    hidden = _relu(x @ layer.projection.kernel.numpy() + layer.projection.bias.numpy())
    for dense in layer.mlp.dense:
        hidden = _relu(hidden @ dense.kernel.numpy() + dense.bias.numpy())
    k = hidden @ layer.to_logits.kernel.numpy() + layer.to_logits.bias.numpy()

    logits, probs = [t.numpy() for t in layer(x)]
    np.testing.assert_allclose(logits, k, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs, _softmax(k), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)

    # Logits ~ 1e4: exp would overflow without the max-subtraction of eq. 10.
    layer.to_logits.kernel.assign(layer.to_logits.kernel * 1e4)
    logits, probs = [t.numpy() for t in layer(x)]
    assert np.abs(logits).max() > 100
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("make, shape, kwargs", [
    (lambda: MVFE(num_experts=2, expert_units=3, num_distributions=3), (4, 5), {"training": False}),
    (lambda: DistributionAttention(units=4), (4, 3, 5), {}),
    (lambda: DAM(shared_units=4, units=(3,), num_distributions=3), (4, 5), {}),
])
def test_layers_round_trip_through_get_config(make, shape, kwargs):
    layer = make()
    x = RNG.normal(size=shape).astype("float32")
    layer(x, **kwargs)
    _randomise(layer)
    assert tf.keras.utils.get_registered_name(type(layer)) == f"mean_tf>{type(layer).__name__}"
    _same_outputs(layer, x, **kwargs)
