"""mean_tf.training.protocol on a tiny materialized dataset: datasets, the training protocol (selection on eval Gini, a
budget in steps, batch norm that settles, data-derived model values), money predictions."""
import json

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.training import selection, protocol
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.evaluation.metrics import normalized_gini
from tiny_dataset import materialized_tiny

SMALL = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
             ziln_units=(8,), batch_size=64, epochs=3, patience=1, embedding_dim=2)


SMALL_EXPERTS = MEANConfig().num_experts


@pytest.fixture(scope="module")
def materialized():
    return materialized_tiny()


def test_dataset_batches_inputs_and_targets_deterministically(materialized):
    _, done = materialized
    spec = done.tf_transform_output().transformed_feature_spec()

    def first_ids(seed):
        ds = protocol.make_dataset(done.files("train"), spec, ["cltv_365", "cltv_30"], 32, shuffle=True, seed=seed)
        return next(iter(ds))[1]["raw"].numpy()

    inputs, targets = next(iter(protocol.make_dataset(done.files("train"), spec, ["cltv_365", "cltv_30"], 32)))
    assert sorted(inputs) == ["cat__country", "numeric"] and inputs["numeric"].shape == (32, 4)
    assert targets["raw"].shape == (32, 2) and targets["bucket"].dtype == tf.int64
    assert np.all(targets["raw"][:, 0] >= targets["raw"][:, 1])  # cltv_365 >= cltv_30, stacked in label order
    np.testing.assert_array_equal(first_ids(1), first_ids(1))
    assert not np.array_equal(first_ids(1), first_ids(2))


def test_fit_mean_selects_on_eval_gini_restores_best_and_predicts_money(materialized, tmp_path):
    _, done = materialized
    config = MEANConfig(**SMALL)
    result = protocol.fit("mean", config, done.out_dir, done.files("train"), done.files("eval"),
                          log_dir=str(tmp_path / "logs"), verbose=0)
    chosen = result.history["val_selection"]
    assert 1 <= len(chosen) <= 3 and result.best_epoch == int(np.nanargmax(chosen))
    assert result.history["val_prediction_loss"] == result.history["val_loss_cltv"]  # MEAN's Huber term
    assert result.facts.categorical_vocab_sizes == {"country": 4}  # 3 countries + 1 OOV bucket
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))

    spec = done.tf_transform_output().transformed_feature_spec()
    test = protocol.make_dataset(done.files("test"), spec, result.config.labels, 16)
    predictions = protocol.predict_money(result.model, test, result.label_transform)
    truth = protocol.dataset_targets(test)
    assert predictions.shape == truth.shape == (30, 1)
    assert np.all(np.isfinite(predictions)) and np.all(predictions >= 0)
    # the best epoch's weights are the model's: its eval Gini is the selected one
    evaluation = protocol.make_dataset(done.files("eval"), spec, result.config.labels, 64)
    gini = normalized_gini(protocol.dataset_targets(evaluation)[:, 0],
                           protocol.predict_money(result.model, evaluation, result.label_transform)[:, 0])
    assert gini == pytest.approx(chosen[result.best_epoch], abs=1e-6)


def test_total_loss_selection_restores_the_epoch_of_the_lowest_eval_loss(materialized):
    _, done = materialized
    config = MEANConfig(**{**SMALL, "epochs": 4, "patience": 4, "selection_metric": "val_loss"})
    result = protocol.fit("mean", config, done.out_dir, done.files("train"), done.files("eval"), verbose=0)
    val = result.history["val_loss"]
    assert len(val) == 4 and result.best_epoch == int(np.argmin(val)) and result.history["val_selection"] == val


def test_budget_is_in_optimizer_steps_and_a_stall_stops_after_patience(materialized):
    _, done = materialized
    steps_per_epoch = protocol.count_batches(done.files("train"), SMALL["batch_size"])  # 210 rows: 4 steps
    capped = protocol.fit("dnn_ziln", MEANConfig(**{**SMALL, "epochs": 50, "patience": 50, "max_steps": 9}),
                          done.out_dir, done.files("train"), done.files("eval"), verbose=0)
    assert capped.hit_max_steps and capped.steps == 3 * steps_per_epoch  # the epoch that passed 9 steps ends it


def _selection_run(criterion, logs_per_epoch, patience):
    """Drive ModelSelection through scripted epochs; returns (callback, epochs run, final weights)."""
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.build((None, 1))
    model.compile(optimizer="sgd")
    chooser = selection.ModelSelection(criterion, "loss_cltv", patience, max_steps=10**6)
    chooser.set_model(model)
    chooser.on_train_begin()
    epochs = 0
    for epoch, logs in enumerate(logs_per_epoch):
        model.layers[0].bias.assign([float(epoch)])  # the weights of epoch `epoch`
        chooser.on_epoch_begin(epoch)
        chooser.on_epoch_end(epoch, dict(logs))
        epochs += 1
        if model.stop_training:
            break
    chooser.on_train_end()
    return chooser, epochs, float(model.layers[0].bias.numpy()[0])


def test_selection_stops_after_patience_restores_the_best_and_breaks_ties_on_the_prediction_loss():
    losses = [{"val_loss": v, "val_loss_cltv": 1.0} for v in (3.0, 2.0, 2.5, 2.4, 2.6, 1.0)]
    chooser, epochs, bias = _selection_run("val_loss", losses, patience=2)
    assert (chooser.best_epoch, epochs, bias) == (1, 4, 1.0)  # stalls at epochs 2 and 3, stops; epoch 1's weights
    ginis = [{"val_loss_cltv": t} for t in (0.9, 0.8, 0.5, 0.6)]
    scores = iter([0.3, 0.5, 0.5, float("nan")])
    model_selection = selection.ModelSelection("normalized_gini", "loss_cltv", 5, 10**6, lambda model: next(scores))
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.build((None, 1))
    model.compile(optimizer="sgd")
    model_selection.set_model(model)
    model_selection.on_train_begin()
    for epoch, logs in enumerate(ginis):
        model_selection.on_epoch_end(epoch, logs)
    # 0.5 at epochs 1 and 2: epoch 2 wins on its lower Huber term; NaN at epoch 3 never counts
    assert model_selection.best_epoch == 2 and model_selection.wait == 1


def test_fit_records_the_facts_a_model_takes_from_its_data(materialized):
    _, done = materialized
    result = protocol.fit("odmn", MEANConfig(**{**SMALL, "epochs": 1}), done.out_dir, done.files("train"),
                          done.files("eval"), verbose=0)
    config, facts = result.config, result.facts
    assert result.model.facts == facts and "odmn_edges" not in config.to_dict()  # facts are not hyperparameters
    scaled = protocol.scaled_labels(done.files("train"), config.labels)
    for i, label in enumerate(config.labels):  # ODMN: equal-frequency edges of the positive train labels
        edges = np.array(facts.odmn_edges[label])
        assert len(edges) == 21 and np.all(np.diff(edges) >= 0)
        np.testing.assert_allclose(edges[10], np.quantile(scaled[scaled[:, i] > 0, i], 0.5), rtol=1e-6)
    raw = protocol.dataset_targets(protocol.make_dataset(done.files("train"), done.tf_transform_output()
                                                         .transformed_feature_spec(), config.labels, 64))
    assert facts.label_max == pytest.approx(dict(zip(config.labels, raw.max(axis=0))), rel=1e-6)  # ZILN cap
    # BN momentum derived from the 4 steps per epoch: the start weighs 1 % after one epoch
    assert config.bn_momentum is None and facts.bn_momentum == pytest.approx(0.01 ** (1 / 4))
    mean = protocol.fit("mean", MEANConfig(**{**SMALL, "epochs": 1}), done.out_dir, done.files("train"),
                        done.files("eval"), verbose=0).model
    momenta = [layer.momentum for layer in selection.batch_norm_layers(mean)]
    assert len(momenta) == SMALL_EXPERTS and momenta == pytest.approx([0.01 ** (1 / 4)] * SMALL_EXPERTS)


def test_batch_norm_reestimation_sets_the_running_statistics_to_the_batch_average():
    model = tf.keras.Sequential([tf.keras.layers.BatchNormalization(momentum=0.99)])
    batches = [np.full((8, 2), v, np.float32) + np.arange(8, dtype=np.float32)[:, None] for v in (1.0, 3.0, 8.0)]
    model(batches[0])
    count = selection.reestimate_batch_norm(model, [(b, None) for b in batches])
    layer = model.layers[0]
    assert count == 3 and layer.momentum == 0.99  # the momentum is put back
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean([b.var(0) for b in batches], axis=0), rtol=1e-4)


def test_fit_refuses_a_label_scaling_the_transform_did_not_use(materialized):
    _, done = materialized
    with pytest.raises(MeanTFError, match="label_scaling"):
        protocol.fit("mean", MEANConfig(**{**SMALL, "label_scaling": "log1p"}), done.out_dir, done.files("train"),
                     done.files("eval"), verbose=0)
    with pytest.raises(MeanTFError, match="classical"):
        protocol.fit("last_period", MEANConfig(), done.out_dir, done.files("train"), done.files("eval"))


def test_classical_models_fit_on_raw_splits(materialized):
    manifest, _ = materialized
    model = protocol.fit_classical("last_period", MEANConfig(labels=("cltv_30",)), manifest)
    predictions = protocol.predict_classical(model, manifest, "test")
    assert predictions.shape == (30, 1) and np.all(predictions >= 0)


def test_strategy_is_multi_worker_only_with_a_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert protocol.strategy_from_env() is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", lambda: "multi-worker")
    assert protocol.strategy_from_env() == "multi-worker"
