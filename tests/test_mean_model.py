"""The MEAN model: output shapes (H = 1 and 4), eq. 7 wiring, stop-gradients, training, round trips, robustness."""
import json

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.contract import LABELS
from mean_tf.models.data_facts import DataFacts
from mean_tf.models.losses import distillation
from mean_tf.evaluation.metrics import normalized_gini
from mean_tf.models import build
from mean_tf.models.mean import MEAN

N_DIST = 5
SMALL = dict(shared_units=(32, 16), num_experts=3, expert_units=16, attention_units=8, dam_shared_units=16,
             dam_units=(16, 8), num_distributions=N_DIST, embedding_dim=2)
FACTS = DataFacts(categorical_vocab_sizes={"segment": 3})


def _config(**changes):
    return MEANConfig(**{**SMALL, **changes})


def _synthetic(n, seed):
    """Zero-inflated log-normal spend driven by the features; buckets from quantiles of the positive scaled label."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 5)).astype("float32")
    segment = rng.integers(0, 3, size=n)
    buys = rng.random(n) < 1 / (1 + np.exp(-(2 * numeric[:, 0] + segment - 1.5)))
    raw = np.where(buys, np.exp(2 + numeric[:, 1] + 0.5 * numeric[:, 2] + 0.3 * rng.normal(size=n)), 0.0)
    scaled = np.minimum(np.log1p(raw), 20.0)
    cuts = np.quantile(scaled[scaled > 0], np.linspace(0, 1, N_DIST)[1:-1])
    bucket = np.where(scaled > 0, 1 + np.searchsorted(cuts, scaled, side="right"), 0)
    features = {"numeric": numeric, "cat__segment": segment.astype("int64")}
    targets = {"raw": raw[:, None].astype("float32"), "scaled": scaled[:, None].astype("float32"),
               "bucket": bucket[:, None].astype("int64")}
    return features, targets


def _outputs(model, features, training=False):
    return {k: v.numpy() for k, v in model(features, training=training).items()}


@pytest.fixture(scope="module")
def trained():
    """One small MEAN trained with model.fit (shared by the tests that need trained weights)."""
    config = _config(learning_rate=3e-3)
    tf.keras.utils.set_random_seed(config.seed)
    model = MEAN(config, FACTS)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    features, targets = _synthetic(768, seed=0)
    history = model.fit(features, targets, epochs=12, batch_size=96, verbose=0)
    return model, history.history


@pytest.mark.parametrize("labels", [("cltv_365",), LABELS])
def test_output_shapes_single_and_multi_horizon(labels):
    features, _ = _synthetic(8, seed=1)
    horizons = len(labels)
    out = _outputs(MEAN(_config(labels=labels), FACTS), features)
    per_horizon = (8, N_DIST) if horizons == 1 else (8, horizons, N_DIST)
    assert {k: v.shape for k, v in out.items()} == {
        "cltv": (8, horizons), "attention": (8, N_DIST, N_DIST), "attention_mean": (8, N_DIST),
        "bucket_logits": per_horizon, "bucket_probs": per_horizon,
    }
    np.testing.assert_allclose(out["bucket_probs"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["attention"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["attention_mean"].sum(-1), 1.0, rtol=1e-5)


def test_registry_variants_build_the_right_structure():
    features, _ = _synthetic(4, seed=2)
    mtl = build("mtl_mean", _config(), FACTS)
    assert isinstance(mtl, MEAN) and len(mtl.dams) == 4 and _outputs(mtl, features)["cltv"].shape == (4, 4)
    mvfe_only = build("mvfe_only", _config(), FACTS)
    out = _outputs(mvfe_only, features)
    assert not mvfe_only.dams and "bucket_logits" not in out and out["cltv"].shape == (4, 1)


def test_prediction_is_a_linear_layer_on_the_attention_embedding():
    """Eq. 7: y_hat = FC(e), with e the mean attended token of eq. 6."""
    features, _ = _synthetic(6, seed=3)
    model = MEAN(_config(labels=LABELS), FACTS)
    out = _outputs(model, features)
    x_u = model.encoder(features)
    tokens = model.mvfe(model.shared(x_u), gate_inputs=x_u, training=False)  # eq. 3: the gates read x_u
    embedding, attention, _ = model.attention(tokens)
    expected = embedding.numpy() @ model.head.kernel.numpy() + model.head.bias.numpy()
    np.testing.assert_allclose(out["cltv"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["attention"], attention.numpy(), rtol=1e-6)


@pytest.mark.parametrize("gate_input", ["x_u", "shared"])
def test_gates_read_x_u_by_default_or_the_shared_output(gate_input):
    """Eq. 3 literally: G(x_u); the switch feeds the gates the shared layer's output instead."""
    features, _ = _synthetic(6, seed=3)
    config = _config() if gate_input == "x_u" else _config(mvfe_gate_input="shared")
    model = MEAN(config, FACTS)
    _outputs(model, features)
    x_u = model.encoder(features)
    read = x_u if gate_input == "x_u" else model.shared(x_u)
    assert model.mvfe.gates[0].kernel.shape[0] == read.shape[-1]
    expected = tf.nn.softmax(tf.matmul(read, model.mvfe.gates[0].kernel), axis=-1)
    np.testing.assert_allclose(model.mvfe.gate_weights(read)[:, 0].numpy(), expected.numpy(), rtol=1e-5)


def test_distillation_teacher_reads_theta_hat_or_its_logs():
    """Eq. 14 literally tempers the probability vector theta_hat; `log_probs` tempers log theta_hat."""
    theta = tf.constant([[0.7, 0.2, 0.1]])
    onehot = tf.constant([[1.0, 0.0, 0.0]])
    logits = tf.constant([[0.3, -0.1, 0.2]])
    student = np.exp(logits.numpy() / 2.0) / np.exp(logits.numpy() / 2.0).sum()
    for teacher, tempered in (("probs", np.exp(theta.numpy() / 2.0)), ("log_probs", np.sqrt(theta.numpy()))):
        teacher_p = tempered / tempered.sum()
        expected = -(teacher_p * np.log(student + 1e-8)).sum()
        got = distillation(onehot, logits, theta, beta=0.0, gamma=1.0, tau=2.0, teacher=teacher).numpy()
        assert got == pytest.approx(expected, rel=1e-5), teacher
    assert MEANConfig().distill_teacher == "probs" and MEANConfig().mvfe_gate_input == "x_u"


@pytest.mark.parametrize("flipped", [False, True])
def test_stop_gradient_defaults_and_switches(flipped):
    """Default: L^kl reaches the attention but not DAM; the soft L^dis term reaches DAM but not the attention."""
    config = _config(beta=0.0, kl_stop_gradient_dam=not flipped, distill_stop_gradient_attention=not flipped)
    model = MEAN(config, FACTS)
    features, targets = _synthetic(32, seed=4)
    with tf.GradientTape(persistent=True) as tape:
        terms = model.loss_terms(targets, model(features, training=True))  # beta = 0: loss_dis is the soft term

    def moves(loss, layer):
        grads = [g for g in tape.gradient(loss, layer.trainable_variables) if g is not None]
        return any(bool(np.abs(g.numpy()).max() > 0) for g in grads)

    dam, attention = model.dams[0], model.attention
    assert moves(terms["loss_kl"], attention) and moves(terms["loss_dis"], dam)
    assert moves(terms["loss_kl"], dam) is flipped
    assert moves(terms["loss_dis"], attention) is flipped
    assert moves(terms["loss_dis"], model.mvfe) is flipped


def test_training_lowers_every_loss_term_and_beats_a_constant_on_gini(trained):
    model, history = trained
    for name in ("loss", "loss_cltv", "loss_kl", "loss_dis"):
        assert history[name][-1] < history[name][0], (name, history[name])
    features, targets = _synthetic(512, seed=5)  # held out
    raw = targets["raw"][:, 0]
    prediction = _outputs(model, features)["cltv"][:, 0]
    gini_model = normalized_gini(raw, prediction)
    gini_constant = normalized_gini(raw, np.full_like(prediction, prediction.mean()))
    assert gini_model > gini_constant + 0.3, (gini_model, gini_constant)


def test_get_config_round_trip_gives_identical_outputs(trained):
    model, _ = trained
    features, _ = _synthetic(16, seed=6)
    config = json.loads(json.dumps(model.get_config()))  # plain JSON
    clone = MEAN.from_config(config)
    clone(features)
    clone.set_weights(model.get_weights())
    assert clone.config == model.config
    for key, value in _outputs(model, features).items():
        np.testing.assert_array_equal(_outputs(clone, features)[key], value)


def test_savedmodel_round_trip_gives_identical_outputs(trained, tmp_path):
    """Keras SavedModel with a serving signature on the plain feature dict (as the pipeline exports it);
    save_traces=False keeps the test fast: Keras restores through get_config/from_config."""
    model, _ = trained
    features, _ = _synthetic(16, seed=7)
    expected = _outputs(model, features)
    spec = {k: tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype), name=k) for k, v in features.items()}
    serve = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(spec)
    path = str(tmp_path / "mean")
    model.save(path, save_format="tf", save_traces=False, signatures={"serving_default": serve})

    restored = tf.keras.models.load_model(path)
    assert isinstance(restored, MEAN)
    served = tf.saved_model.load(path).signatures["serving_default"](**{k: tf.constant(v) for k, v in features.items()})
    for key, value in expected.items():
        np.testing.assert_array_equal(_outputs(restored, features)[key], value)
        np.testing.assert_allclose(served[key].numpy(), value, rtol=1e-6, atol=1e-7)


def _extreme_batches():
    features, targets = _synthetic(8, seed=8)
    zero_labels = {k: np.zeros_like(v) for k, v in targets.items()}
    huge_raw = np.full_like(targets["raw"], 1e9)
    huge_labels = {"raw": huge_raw, "scaled": np.minimum(np.log1p(huge_raw), 20.0),
                   "bucket": np.full_like(targets["bucket"], N_DIST - 1)}
    zero_features = {k: np.zeros_like(v) for k, v in features.items()}
    constant_features = {"numeric": np.full_like(features["numeric"], 3.0), "cat__segment": features["cat__segment"]}
    single_row = {k: v[:1] for k, v in features.items()}
    return [
        ("zero labels", features, zero_labels),
        ("1e9 labels, clipped", features, huge_labels),
        ("all-zero features", zero_features, targets),
        ("constant features", constant_features, huge_labels),
        ("batch of one", single_row, {k: v[:1] for k, v in huge_labels.items()}),
    ]


@pytest.mark.parametrize("labels", [("cltv_365",), LABELS])
def test_no_nan_or_inf_on_extreme_batches(labels):
    model = MEAN(_config(labels=labels), FACTS)
    for name, features, targets in _extreme_batches():
        targets = {k: np.repeat(v, len(labels), axis=1) for k, v in targets.items()}
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            terms = model.loss_terms(targets, outputs)
        grads = [g for g in tape.gradient(terms["loss"], model.trainable_variables) if g is not None]
        assert grads, name
        for value in [*outputs.values(), *terms.values(), *grads]:
            assert np.isfinite(tf.convert_to_tensor(value).numpy()).all(), name
        assert all(np.isfinite(v).all() for v in _outputs(model, features).values()), name


# One SGD step on two mirrored replicas (two logical CPUs) must equal one step on one device on the same
# global batch: each replica's gradient is of its half-batch mean, so the summed gradients need 1/2. The model
# is DNN-ZILN, which shares MEAN's train_step (CLTVModel) but has no batch normalisation: MEAN's experts
# normalise with each replica's own batch statistics, which differ from the global batch's by design.
MIRRORED_STEP = r"""
import json, sys
import numpy as np
import mean_tf
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mean_tf.config import MEANConfig
from mean_tf.models import build
from mean_tf.models.data_facts import DataFacts
config = MEANConfig.from_dict(json.loads(sys.argv[1]))
FACTS = DataFacts(categorical_vocab_sizes={"segment": 3})
rng = np.random.default_rng(0)
features = {"numeric": rng.normal(size=(64, 5)).astype("float32"), "cat__segment": rng.integers(0, 3, 64)}
raw = np.where(rng.random(64) < 0.5, np.exp(rng.normal(size=64) + 2), 0.0)[:, None].astype("float32")
scaled = np.log1p(raw)
targets = {"raw": raw, "scaled": scaled, "bucket": np.minimum((scaled * 1.2).astype("int64"), 4)}
weights = {}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    with strategy.scope():
        tf.keras.utils.set_random_seed(0)
        model = build("dnn_ziln", config, FACTS)
        model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    model.fit(tf.data.Dataset.from_tensor_slices((features, targets)).batch(64), epochs=1, verbose=0)
    weights[name] = model.get_weights()
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "max_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(weights["one"], weights["two"])),
                  "max_step": max(float(np.max(np.abs(a))) for a in weights["one"])}))
"""


def test_mirrored_replicas_take_the_same_sgd_step_as_one_device():
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", MIRRORED_STEP, json.dumps(_config().to_dict())], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["max_diff"] < 1e-4, result  # unscaled, the two-replica step is about twice as long


def test_diagnostics_match_a_numpy_computation():
    from mean_tf.evaluation import explain

    features, targets = _synthetic(48, seed=6)
    model = MEAN(_config(), FACTS)
    out = _outputs(model, features)
    data = tf.data.Dataset.from_tensor_slices((features, targets)).batch(16)
    got = explain.diagnostics(model, data, "cltv_365")
    theta, probs, truth = out["attention_mean"], out["bucket_probs"], targets["bucket"][:, 0]
    entropy = (-(theta * np.log(theta)).sum(-1) / np.log(N_DIST)).mean()
    assert got["attention_entropy"] == pytest.approx(entropy, rel=1e-4)
    assert got["attention_vs_dam"] == pytest.approx((theta.argmax(-1) == probs.argmax(-1)).mean())
    assert got["dam_vs_bucket"] == pytest.approx((probs.argmax(-1) == truth).mean())
    assert got["attention_vs_bucket"] == pytest.approx((theta.argmax(-1) == truth).mean())
    gates = model.mvfe.gate_weights(model.encoder(features)).numpy().mean(axis=(0, 1))
    np.testing.assert_allclose(got["gate_usage"], gates, atol=1e-4)
    assert sum(got["gate_usage"]) == pytest.approx(1.0, abs=1e-3)
