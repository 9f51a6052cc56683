"""Numeric encodings (z-score, piecewise-linear, bin embeddings), the regularisation knobs and MEAN's ZILN head:
the encoding's arithmetic on known boundaries, serving = training on raw tf.Examples, each knob changing the model."""
import os

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from mean_tf.config import MEANConfig
from mean_tf.contract import NUMERIC_KEY
from mean_tf.errors import MeanTFError
from mean_tf.models import build
from mean_tf.models.data_facts import DataFacts
from mean_tf.models.layers import FeatureEncoder
from mean_tf.serving import export
from mean_tf.tfx_modules import trainer
from mean_tf.training import protocol
from mean_tf.transform import preprocessing
from tiny_dataset import write_tiny_dataset

TINY = dict(shared_units=(8,), num_experts=2, expert_units=4, attention_units=4, dam_shared_units=4, dam_units=(4,),
            ziln_units=(4,), odmn_tower_units=(4,), mdan_channel_units=(4,), optdist_units=(4,), embedding_dim=2)
FACTS = DataFacts(categorical_vocab_sizes={"country": 3})
FEATURES = {NUMERIC_KEY: np.array([[0.0, 2.5], [4.0, 0.2], [1.5, 4.0]], np.float32),
            "cat__country": np.array([0, 1, 2], np.int64)}


def test_quantile_position_on_known_boundaries():
    # Feature 0: bins [0, 1), [1, 2), [2, 4], K = 3; feature 1: tied boundaries 5, 5 in [0, 10].
    boundaries = tf.constant([[1.0, 2.0], [5.0, 5.0]], tf.float64)
    low, high = tf.constant([0.0, 0.0], tf.float64), tf.constant([4.0, 10.0], tf.float64)
    x = tf.constant([[0.5, 2.5], [1.0, 5.0], [3.0, 7.5], [-1.0, 99.0], [4.0, 0.0]], tf.float64)
    q = preprocessing.quantile_position(x, boundaries, low, high).numpy()
    np.testing.assert_allclose(q[:, 0], [0.5, 1.0, 2.5, 0.0, 3.0])  # k + fraction through bin k; clipped outside
    np.testing.assert_allclose(q[:, 1], [0.5, 2.0, 2.5, 3.0, 0.0])  # 5 is past both tied boundaries: bin 2


def test_piecewise_linear_and_bin_encodings_of_known_positions():
    q = np.array([[0.0, 2.5], [3.0, 0.25]], np.float32)
    ple = FeatureEncoder(numeric_encoding="ple", numeric_bins=3)({NUMERIC_KEY: q}).numpy()
    # feature 0 then feature 1, K = 3 values each: clip(q - t, 0, 1)
    np.testing.assert_allclose(ple, [[0, 0, 0, 1, 1, 0.5], [1, 1, 1, 0.25, 0, 0]])
    bins = FeatureEncoder(embedding_dim=2, numeric_encoding="bins", numeric_bins=3)
    out = bins({NUMERIC_KEY: q}).numpy()
    table = bins.bin_embedding.embeddings.numpy()  # rows: feature 0's bins 0..2, then feature 1's
    np.testing.assert_allclose(out[0], np.concatenate([table[0], table[3 + 2]]))
    np.testing.assert_allclose(out[1], np.concatenate([table[2], table[3 + 0]]))  # q = K falls in the last bin
    zscore = FeatureEncoder()({NUMERIC_KEY: np.array([[2e3, -1.0]], np.float32)}).numpy()
    np.testing.assert_allclose(zscore, [[1e3, -1.0]])  # z-scores as they are, clipped


@pytest.mark.parametrize("name", ["mean", "dnn_ziln", "mdan", "odmn", "optdist", "mtl_ziln"])
def test_each_knob_changes_the_built_model(name):
    base = MEANConfig(**TINY)
    weights = {}
    for label, changes in {"zscore": {}, "ple": {"numeric_encoding": "ple", "numeric_bins": 4},
                           "bins": {"numeric_encoding": "bins", "numeric_bins": 4}}.items():
        model = build(name, base.replace(**changes), FACTS)
        model(FEATURES)
        weights[label] = sum(int(np.prod(w.shape)) for w in model.weights)
    assert weights["ple"] > weights["zscore"] and weights["bins"] > weights["zscore"]
    plain = build(name, base, FACTS)
    dropped = build(name, base.replace(dropout=0.5), FACTS)
    assert not any(isinstance(layer, tf.keras.layers.Dropout) for layer in plain.submodules)
    assert any(isinstance(layer, tf.keras.layers.Dropout) for layer in dropped.submodules)
    tf.keras.utils.set_random_seed(0)
    train_out = dropped(FEATURES, training=True)["cltv"].numpy()
    assert not np.allclose(train_out, dropped(FEATURES, training=False)["cltv"].numpy())  # dropout in training only
    np.testing.assert_array_equal(dropped(FEATURES, training=False)["cltv"].numpy(),
                                  dropped(FEATURES, training=False)["cltv"].numpy())
    assert type(protocol.optimizer(base)).__name__ == "Adam"
    assert type(protocol.optimizer(base.replace(weight_decay=1e-4))).__name__ == "AdamW"


def test_the_ziln_head_keeps_means_body_and_trains_on_money():
    huber = build("mean", MEANConfig(**TINY), FACTS)
    ziln = build("mean_ziln", MEANConfig(**TINY), DataFacts(categorical_vocab_sizes={"country": 3},
                                                              label_max={"cltv_365": 100.0}))
    out = ziln(FEATURES)
    assert ziln.output_space == "money" and huber.output_space == "scaled"
    assert out["ziln_logits"].shape == (3, 1, 3) and "attention_mean" in out and "bucket_probs" in out
    assert np.all(out["cltv"].numpy() <= 100.0 + 1e-3)  # capped at the largest train label
    targets = {"raw": tf.constant([[0.0], [10.0], [50.0]]), "scaled": tf.constant([[0.0], [1.0], [2.0]]),
               "bucket": tf.constant([[0], [2], [4]], tf.int64)}
    terms = ziln.loss_terms(targets, out)
    assert set(terms) == {"loss", "loss_cltv", "loss_kl", "loss_dis"} and np.isfinite(terms["loss"].numpy())
    body = {w.name.split("/", 1)[1] for w in huber.weights if "cltv_head" not in w.name}
    assert body <= {w.name.split("/", 1)[1] for w in ziln.weights}  # the same body; only the head differs
    assert build("mtl_mean_ziln", MEANConfig(**TINY), FACTS).config.cltv_head == "ziln"
    with pytest.raises(MeanTFError, match="cltv_head"):
        MEANConfig(cltv_head="mse")


@pytest.mark.parametrize("encoding", ["ple", "bins"])
def test_serving_equals_training_on_raw_examples_with_quantile_encodings(encoding, tmp_path):
    """The Transform writes each value's quantile position; the exported model, fed raw tf.Examples, predicts what
    the trained Keras model predicts on the transformed examples."""
    manifest = write_tiny_dataset(tmp_path / "data")
    config = MEANConfig(**TINY, numeric_encoding=encoding, numeric_bins=4, epochs=1, batch_size=64,
                        calibration="none")
    done = preprocessing.materialize(manifest, config, str(tmp_path / "transformed"))
    transformed = next(iter(protocol.make_dataset(done.files("test"), done.tf_transform_output()
                                                  .transformed_feature_spec(), ["cltv_365"], 64)))[0][NUMERIC_KEY]
    assert transformed.shape[1] == len(manifest.numeric_features)
    assert float(tf.reduce_min(transformed)) >= 0.0 and float(tf.reduce_max(transformed)) <= 4.0
    fn_args = FnArgs(train_files=done.files("train"), eval_files=done.files("eval"), transform_output=done.out_dir,
                     serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
                     custom_config=trainer.trainer_config("mean", config, "cltv_365", manifest.features))
    os.makedirs(fn_args.model_run_dir)
    models = []
    real_export = export.export_serving_model
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "export_serving_model", lambda model, *a: (models.append(model), real_export(model, *a)))
        trainer.run_fn(fn_args)
    records = [r.numpy() for r in tf.data.TFRecordDataset(manifest.files("test"), compression_type="GZIP").take(8)]
    served = export.predict_serialized(fn_args.serving_model_dir, records)["cltv"]
    output = done.tf_transform_output()
    features = output.transform_features_layer()(tf.io.parse_example(tf.constant(records), output.raw_feature_spec()))
    inputs, _ = preprocessing.split_targets(features, ["cltv_365"])
    model = models[0]
    expected = protocol.label_transform_for(output, model.config).to_money(model(inputs, training=False)["cltv"],
                                                                           ["cltv_365"]).numpy()[:, 0]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)
