"""The paper's baselines (Table 1) and the classical ones: train on a tiny synthetic set, rank, save, behave."""
import pickle

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.evaluation.metrics import normalized_gini
from mean_tf.models.data_facts import DataFacts
from mean_tf.models import MODEL_NAMES, build
from mean_tf.models.classical import BGNBDGammaGamma, LastPeriod, TwoStageGBDT
from mean_tf.models.mdan import channel_segments, ranksim_loss
from mean_tf.models.odmn import mdme_targets, quantile_edges

KERAS_BASELINES = ("dnn_ziln", "mtl_ziln", "odmn", "mdan", "optdist")
CLASSICAL_BASELINES = ("two_stage_gbdt", "bgnbd_gg", "last_period")
N_TRAIN, N_TEST, N_NUMERIC = 512, 256, 5

TINY = MEANConfig(shared_units=(16,), ziln_units=(16,), odmn_tower_units=(16,), mdan_channel_units=(16,),
                  optdist_units=(16,), num_experts=2, expert_units=16,
                  embedding_dim=2, learning_rate=3e-2)
FACTS = DataFacts(categorical_vocab_sizes={"country": 3})


def synthetic(n, seed, num_distributions=TINY.num_distributions):
    """Features with a signal and four cumulative zero-inflated lognormal labels (30/90/180/365)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, N_NUMERIC)).astype(np.float32)
    country = rng.integers(0, 3, n)
    payer_logit = 1.5 * numeric[:, 0] + 0.5 * (country == 2) - 0.5
    increments = []
    for offset in (-1.0, -0.5, -0.5, 0.0):  # spend of each period between two horizons
        pays = rng.random(n) < 1 / (1 + np.exp(-(payer_logit + offset)))
        increments.append(pays * rng.lognormal(3.0 + 0.8 * numeric[:, 1] + 0.4 * numeric[:, 0], 0.5))
    raw = np.cumsum(np.stack(increments, axis=1), axis=1).astype(np.float32)
    scaled = np.clip(np.log1p(raw), 0.0, 20.0)
    bucket = np.zeros(raw.shape, dtype=np.int64)
    for h in range(raw.shape[1]):
        positive = scaled[:, h] > 0
        cuts = np.quantile(scaled[positive, h], np.linspace(0, 1, num_distributions)[1:-1])
        bucket[positive, h] = 1 + np.digitize(scaled[positive, h], cuts)
    features = {"numeric": numeric, "cat__country": country.astype(np.int64)}
    return features, {"raw": raw, "scaled": scaled, "bucket": bucket}


def horizon_columns(targets, config):
    """The target columns of the config's labels (single-label models take cltv_365, the last)."""
    columns = [("cltv_30", "cltv_90", "cltv_180", "cltv_365").index(label) for label in config.labels]
    return {key: value[:, columns] for key, value in targets.items()}


@pytest.fixture(scope="module")
def data():
    return synthetic(N_TRAIN, seed=1), synthetic(N_TEST, seed=2)


@pytest.fixture(scope="module")
def trained(data):
    """Each Keras baseline fitted for 12 steps on the synthetic training set (cached per module).

    Eagerly: as fast as tracing five training graphs on a small CPU, and deterministic; graph-mode
    fit runs the same train_step and loss_terms.
    """
    (train_x, train_y), _ = data
    models, histories = {}, {}
    for name in KERAS_BASELINES:
        tf.keras.utils.set_random_seed(0)
        model = build(name, TINY, FACTS)
        model.compile(optimizer=tf.keras.optimizers.Adam(model.config.learning_rate), run_eagerly=True)
        dataset = tf.data.Dataset.from_tensor_slices((train_x, horizon_columns(train_y, model.config)))
        histories[name] = model.fit(dataset.shuffle(N_TRAIN, seed=0).batch(256), epochs=6, verbose=0).history
        models[name] = model
    return models, histories


def test_registry_lists_every_baseline():
    assert set(KERAS_BASELINES + CLASSICAL_BASELINES) <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", KERAS_BASELINES)
def test_trains_without_nan_and_ranks_better_than_a_constant(name, trained, data):
    model, history = trained[0][name], trained[1][name]
    assert all(np.isfinite(values).all() for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    test_x, test_y = data[1]
    cltv = model(test_x, training=False)["cltv"].numpy()
    raw = horizon_columns(test_y, model.config)["raw"]
    assert cltv.shape == raw.shape and np.isfinite(cltv).all() and (cltv >= 0).all()
    for h in range(raw.shape[1]):
        constant = normalized_gini(raw[:, h], np.ones(len(raw)))
        assert normalized_gini(raw[:, h], cltv[:, h]) > constant + 0.2, (name, model.config.labels[h])


@pytest.mark.parametrize("name", KERAS_BASELINES)
def test_config_round_trip_rebuilds_the_same_model(name, trained, data):
    model, test_x = trained[0][name], data[1][0]
    clone = type(model).from_config(model.get_config())
    clone(test_x)
    for target, source in zip(clone.layers, model.layers):
        target.set_weights(source.get_weights())
    np.testing.assert_allclose(clone(test_x, training=False)["cltv"].numpy(),
                               model(test_x, training=False)["cltv"].numpy(), rtol=1e-5)


def test_odmn_predictions_are_monotone_in_the_horizon(trained, data):
    untrained = build("odmn", TINY, FACTS)
    for model in (untrained, trained[0]["odmn"]):
        cltv = model(data[1][0], training=False)["cltv"].numpy()
        assert cltv.shape[1] == 4 and (np.diff(cltv, axis=1) >= 0).all()


def test_mdme_buckets_are_balanced_over_the_buyers():
    rng = np.random.default_rng(0)
    buyers = np.minimum(rng.lognormal(-1.0, 1.2, 4000), 20.0)  # skewed, like a scaled spend
    edges = quantile_edges(buyers, 20.0, sub_distributions=4, buckets=5)
    assert len(edges) == 21 and edges[0] == 0.0 and edges[-1] == 20.0
    y = np.concatenate([np.zeros(1000), buyers]).astype(np.float32)
    sub, bucket, bias = (t.numpy()[:, 0] for t in mdme_targets(y[:, None], [edges], 4, 5))
    flat = sub * 5 + bucket
    assert (flat[:1000] == 0).all() and (bias[:1000] == 0).all()  # zeros: first bucket, bias 0
    counts = np.bincount(flat[1000:], minlength=20)  # 20 equal-frequency ranges of the buyers
    assert counts.min() >= 0.8 * counts.mean() and counts.max() <= 1.2 * counts.mean()
    assert np.bincount(sub[1000:], minlength=4).min() >= 0.2 * 4000  # balanced sub-distributions
    e = np.array(edges)
    np.testing.assert_allclose(e[flat] + bias * (e[flat + 1] - e[flat]), y, atol=1e-4)  # value = edge + bias x width


def test_mdan_gives_the_zero_labels_a_channel_of_their_own():
    bucket = tf.constant([0, 1, 2, 3, 4])
    np.testing.assert_array_equal(channel_segments(bucket, 5, 4).numpy(), [0, 1, 1, 2, 3])
    np.testing.assert_array_equal(channel_segments(bucket, 5, 5).numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(channel_segments(bucket, 5, 2).numpy(), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(channel_segments(bucket, 5, 1).numpy(), [0, 0, 0, 0, 0])


def test_mtl_ziln_experts_have_no_batch_norm():
    model = build("mtl_ziln", TINY, FACTS)
    assert not model.mmoe.batch_norm and all(not expert.norms for expert in model.mmoe.experts)
    assert build("mean", TINY, FACTS).mvfe.batch_norm


def test_optdist_inference_selects_a_single_candidate_by_argmax(trained, data):
    model, test_x = trained[0]["optdist"], data[1][0]
    out = model(test_x, training=False)
    chosen = np.argmax(out["selection_logits"].numpy(), axis=-1)
    np.testing.assert_array_equal(out["selection_weights"].numpy(), np.eye(TINY.optdist_candidates)[chosen])
    np.testing.assert_allclose(out["cltv"].numpy(),
                               np.take_along_axis(out["candidate_cltv"].numpy(), chosen[..., None], -1)[..., 0],
                               rtol=1e-6)
    soft = model(test_x, training=True)["selection_weights"].numpy()
    assert np.allclose(soft.sum(-1), 1.0) and (soft.max(-1) < 1.0 - 1e-4).any()


def test_ranksim_is_zero_when_similarities_follow_label_distances_and_has_a_gradient():
    rng = np.random.default_rng(0)
    labels = tf.constant(rng.uniform(0, 1, 32), tf.float32)
    aligned = tf.stack([tf.cos(labels * 2.0), tf.sin(labels * 2.0)], axis=1)  # cosine sim = cos(2 |y_i - y_j|)
    assert float(ranksim_loss(aligned, labels)) == pytest.approx(0.0, abs=1e-7)
    hidden = tf.Variable(rng.normal(size=(32, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = ranksim_loss(hidden, labels)
    assert float(loss) > 0.01 and np.abs(tf.convert_to_tensor(tape.gradient(loss, hidden))).sum() > 0


# --- classical baselines ----------------------------------------------------------------------------------

MANIFEST = {
    "name": "synthetic_test",
    "numeric_features": [f"x{i}" for i in range(N_NUMERIC)],
    "categorical_features": ["country"],
    "labels": ["cltv_30", "cltv_90", "cltv_180", "cltv_365"],
    "last_period_features": {"cltv_30": "spend_last_30d", "cltv_365": "spend_last_365d"},
    "bgnbd_features": {"frequency": "bg_f", "recency": "bg_r", "T": "bg_T", "monetary_value": "bg_m"},
}


def purchase_times(rng, rate, dropout, first, end):
    """The BG/NBD story: Poisson purchases from `first`, after each one the customer leaves with prob. `dropout`."""
    times = [first]
    while rng.random() >= dropout:
        times.append(times[-1] + rng.exponential(1 / rate))
        if times[-1] > end:
            return np.array(times[:-1])
    return np.array(times)


def transactions_frame(n, seed, dropout=True):
    """Rows as the dataset builders write them: one history at the cutoff (day 365) and the spend after it."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 0.02, n)  # purchases per day
    leave = rng.beta(1.0, 6.0, n) if dropout else np.zeros(n)
    order_value = rng.gamma(4.0, 10.0, n)
    paths = [purchase_times(rng, r, q, f, 730) for r, q, f in zip(rate, leave, rng.uniform(0, 300, n))]
    history = [t[t <= 365] for t in paths]
    frame = {"country": rng.choice(["DE", "FR", "UK"], n)}
    frame["bg_f"] = np.array([len(t) - 1 for t in history], dtype=float)
    frame["bg_r"] = np.array([t[-1] - t[0] for t in history])
    frame["bg_T"] = np.array([365 - t[0] for t in history])
    frame["bg_m"] = np.where(frame["bg_f"] > 0, order_value * rng.gamma(20, 0.05, n), 0.0)
    frame["spend_last_30d"] = np.array([np.sum(t > 335) for t in history]) * order_value
    frame["spend_last_365d"] = np.array([len(t) for t in history]) * order_value - 5.0  # a return
    for i in range(N_NUMERIC):
        frame[f"x{i}"] = rng.normal(size=n)
    frame["x0"] = rate * 100 * (1 - leave) + rng.normal(0, 0.5, n)
    for h in (30, 90, 180, 365):
        frame[f"cltv_{h}"] = np.array([np.sum((t > 365) & (t <= 365 + h)) for t in paths]) * order_value
    return pd.DataFrame(frame)


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """HistGradientBoosting's OpenMP threads spin-wait on a busy machine: 0.5 s becomes 30 s on 2 shared cores."""
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def frames():
    return transactions_frame(400, seed=3), transactions_frame(300, seed=4)


CLASSICAL_CONFIG = TINY.replace(labels=("cltv_30", "cltv_365"), gbdt_max_iter=30)


@pytest.mark.parametrize("cls", [TwoStageGBDT, BGNBDGammaGamma, LastPeriod])
def test_classical_predicts_money_per_label_and_ranks_better_than_a_constant(cls, frames, tmp_path):
    train, test = frames
    model = cls(CLASSICAL_CONFIG).fit(train, test, MANIFEST)
    predictions = model.predict(test)
    assert predictions.shape == (len(test), 2) and np.isfinite(predictions).all() and (predictions >= 0).all()
    for h, label in enumerate(CLASSICAL_CONFIG.labels):
        y = test[label].to_numpy()
        assert normalized_gini(y, predictions[:, h]) > normalized_gini(y, np.ones(len(y))) + 0.2, label
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    np.testing.assert_allclose(pickle.loads(path.read_bytes()).predict(test), predictions)


def test_classical_registry_entries_build():
    for name in CLASSICAL_BASELINES:
        assert hasattr(build(name, TINY, FACTS), "fit")


def test_two_stage_gbdt_handles_unseen_categories_and_a_label_without_payers(frames):
    train, test = frames
    train = train.assign(cltv_30=0.0)
    model = TwoStageGBDT(CLASSICAL_CONFIG).fit(train, None, MANIFEST)
    predictions = model.predict(test.assign(country="never seen"))
    assert (predictions[:, 0] == 0).all() and np.isfinite(predictions).all()


def test_bgnbd_without_dropout_falls_back_to_the_nbd_limit(frames):
    """No customer ever leaves: lifetimes fits a ~ 0 and its hypergeometric term is NaN; we stay finite."""
    train = transactions_frame(300, seed=5, dropout=False)
    predictions = BGNBDGammaGamma(CLASSICAL_CONFIG).fit(train, None, MANIFEST).predict(frames[1])
    assert np.isfinite(predictions).all() and (predictions[:, 1] >= predictions[:, 0]).all()


def test_last_period_is_the_previous_window_clipped_at_zero(frames):
    test = frames[1]
    predictions = LastPeriod(CLASSICAL_CONFIG).fit(test, None, MANIFEST).predict(test)
    np.testing.assert_allclose(predictions[:, 0], test["spend_last_30d"])
    np.testing.assert_allclose(predictions[:, 1], np.clip(test["spend_last_365d"], 0, None))


@pytest.mark.parametrize("cls, manifest, message", [
    (BGNBDGammaGamma, {**MANIFEST, "bgnbd_features": {}}, "no bgnbd_features"),
    (LastPeriod, {**MANIFEST, "last_period_features": {"cltv_30": "spend_last_30d"}}, "cltv_365"),
])
def test_classical_models_refuse_datasets_without_their_columns(cls, manifest, message, frames):
    with pytest.raises(MeanTFError, match=message):
        cls(CLASSICAL_CONFIG).fit(frames[0], None, manifest)
