"""preprocessing_fn the chicago-taxi way: tft_beam.AnalyzeAndTransformDataset on a small in-memory dataset."""
import json
import os
import tempfile

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from mean_tf import contract
from mean_tf.transform import preprocessing
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError

CUSTOM = {
    "numeric_features": ["recency_days", "net_spend"],
    "money_features": ["net_spend"],
    "categorical_features": ["country"],
    "labels": ["cltv_90"],
    "label_scaling": "log1p",
    "label_clip": 20.0,
    "num_distributions": 3,
    "bucket_boundaries": None,
}
ROWS = [
    {"recency_days": 1.0, "net_spend": 0.0, "country": "UK", "cltv_90": 0.0},
    {"recency_days": 2.0, "net_spend": np.e - 1, "country": "UK", "cltv_90": 9.0},
    {"recency_days": 3.0, "net_spend": -(np.e - 1), "country": "UK", "cltv_90": 99.0},
    {"recency_days": 4.0, "net_spend": np.e ** 2 - 1, "country": "FR", "cltv_90": 0.0},
    {"recency_days": 5.0, "net_spend": 0.0, "country": "FR", "cltv_90": 999.0},
    {"recency_days": 6.0, "net_spend": 0.0, "country": "UK", "cltv_90": 9999.0},
]


def analyze_and_transform(custom, rows, new_rows=None, out_dir=None, preprocessing_fn=preprocessing.preprocessing_fn):
    """Transformed train rows, transformed `new_rows` (with the train transform) and the transform_fn dir."""
    schema = schema_utils.schema_from_feature_spec(preprocessing.raw_feature_spec(custom))
    metadata = dataset_metadata.DatasetMetadata(schema)
    out_dir = out_dir or tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (train, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, custom))
        new = None
        if new_rows is not None:
            new, _ = ((new_rows, metadata), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    metadata_io.write_metadata(metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return train, new, out_dir


@pytest.fixture(scope="module")
def log1p_run():
    new = [{"recency_days": 3.5, "net_spend": 0.0, "country": "DE", "cltv_90": 5.0}]
    return analyze_and_transform(CUSTOM, ROWS, new)


def test_numeric_is_signed_log1p_then_z_score(log1p_run):
    train, _, _ = log1p_run
    numeric = np.stack([r["numeric"] for r in train])
    assert numeric.shape == (6, 2)
    recency = np.arange(1.0, 7.0)
    np.testing.assert_allclose(numeric[:, 0], (recency - recency.mean()) / recency.std(), rtol=1e-5)
    spend = np.array([0.0, 1.0, -1.0, 2.0, 0.0, 0.0])  # sign(x)·log1p(|x|) of the raw values
    np.testing.assert_allclose(numeric[:, 1], (spend - spend.mean()) / spend.std(), rtol=1e-5, atol=1e-6)


def test_categorical_vocabulary_by_frequency_with_oov_bucket(log1p_run):
    train, new, out_dir = log1p_run
    assert [int(r["cat__country"]) for r in train] == [0, 0, 0, 1, 1, 0]  # UK (4 rows) first, then FR
    assert int(new[0]["cat__country"]) == 2  # unseen country: the OOV bucket after the vocabulary
    assert preprocessing.categorical_vocab_sizes(tft.TFTransformOutput(out_dir), CUSTOM) == {"country": 3}


def test_label_scaled_log1p_and_buckets_from_positive_quantiles(log1p_run):
    train, new, _ = log1p_run
    money = np.array([r["cltv_90"] for r in ROWS], dtype=np.float32)
    np.testing.assert_allclose([r["cltv_90"] for r in train], money)
    np.testing.assert_allclose([r["cltv_90__scaled"] for r in train], np.log1p(money), rtol=1e-6)
    # n = 3: zero labels are bucket 0, positive labels split at their median into buckets 1 and 2.
    assert [int(r["cltv_90__bucket"]) for r in train] == [0, 1, 1, 0, 2, 2]
    assert int(new[0]["cltv_90__bucket"]) == 1
    assert "cltv_90__scale" not in train[0]


def test_two_distributions_put_every_buyer_in_bucket_1():
    train, _, _ = analyze_and_transform({**CUSTOM, "num_distributions": 2}, ROWS)
    labels = [row["cltv_90"] for row in ROWS]
    assert [int(t["cltv_90__bucket"]) for t in train] == [int(v > 0) for v in labels]


def test_scale_divides_by_mean_positive_label_clips_and_inverts_at_serving():
    custom = {**CUSTOM, "label_scaling": "scale", "label_clip": 3.0, "bucket_boundaries": [0.3]}
    train, _, out_dir = analyze_and_transform(custom, ROWS)
    mean_positive = (9 + 99 + 999 + 9999) / 4
    np.testing.assert_allclose([r["cltv_90__scale"] for r in train], [mean_positive] * 6, rtol=1e-5)
    expected = np.minimum(np.array([r["cltv_90"] for r in ROWS]) / mean_positive, 3.0)  # 9999 / 2776.5 is clipped
    np.testing.assert_allclose([r["cltv_90__scaled"] for r in train], expected, rtol=1e-5)
    # Fixed boundaries from the config instead of quantiles: 99 / 2776.5 < 0.3 <= 999 / 2776.5.
    assert [int(r["cltv_90__bucket"]) for r in train] == [0, 1, 1, 0, 2, 2]

    output = tft.TFTransformOutput(out_dir)
    # Serving: no label in the input, the scale output survives and the label outputs are dropped.
    serving = output.transform_features_layer()({
        "recency_days": tf.constant([2.0]), "net_spend": tf.constant([1.0]), "country": tf.constant(["FR"])})
    assert "cltv_90__scaled" not in serving
    np.testing.assert_allclose(serving["cltv_90__scale"].numpy(), [mean_positive], rtol=1e-5)

    # The largest train label, the ZILN prediction cap: a constant that also survives at serving.
    np.testing.assert_allclose([r["cltv_90__max"] for r in train], [9999.0] * 6)
    assert preprocessing.analyzer_constants(output, ["cltv_90"], contract.MAX_SUFFIX) == {"cltv_90": 9999.0}

    label_transform = preprocessing.label_transform(output, custom)
    assert label_transform.scales["cltv_90"] == pytest.approx(mean_positive, rel=1e-5)
    money = label_transform.to_money(tf.constant([[0.5], [-1.0], [30.0]]), ["cltv_90"]).numpy()
    np.testing.assert_allclose(money[:, 0], [0.5 * mean_positive, 0.0, 3.0 * mean_positive], rtol=1e-5)


def test_to_money_inverts_log1p_and_is_non_negative():
    y = tf.constant([0.0, 1.0, 123.0, 1e6])
    scaled = preprocessing.scale_label(y, "log1p", 20.0)
    np.testing.assert_allclose(preprocessing.to_money(scaled, "log1p", 20.0).numpy(), y.numpy(), rtol=1e-5)
    assert preprocessing.to_money(tf.constant([-3.0]), "log1p", 20.0).numpy()[0] == 0.0
    with pytest.raises(MeanTFError):
        preprocessing.to_money(tf.constant([1.0]), "scale", 20.0)


def test_split_targets_stacks_labels_in_order():
    batch = {"numeric": tf.zeros([2, 3]), "cat__country": tf.constant([0, 1], tf.int64),
             "cltv_90": tf.constant([1.0, 0.0]),
             "cltv_90__scaled": tf.constant([0.5, 0.0]), "cltv_90__bucket": tf.constant([1, 0], tf.int64),
             "cltv_365": tf.constant([2.0, 0.0]), "cltv_365__scaled": tf.constant([0.7, 0.0]),
             "cltv_365__bucket": tf.constant([2, 0], tf.int64), "cltv_365__scale": tf.constant([3.0, 3.0])}
    inputs, targets = preprocessing.split_targets(batch, ["cltv_365", "cltv_90"])
    assert sorted(inputs) == ["cat__country", "numeric"]
    np.testing.assert_allclose(targets["raw"].numpy(), [[2.0, 1.0], [0.0, 0.0]])
    assert targets["bucket"].dtype == tf.int64 and targets["bucket"].numpy().tolist() == [[2, 1], [0, 0]]
    assert targets["scaled"].shape == (2, 2)


def test_transform_config_from_manifest_and_config():
    class Manifest:
        numeric_features = ["a", "b"]
        money_features = ["b"]
        categorical_features = ["c"]
        labels = ["cltv_30", "cltv_365"]

    custom = preprocessing.transform_config(Manifest(), MEANConfig(label_scaling="scale", num_distributions=4))
    assert custom["labels"] == ["cltv_30", "cltv_365"] and custom["label_scaling"] == "scale"
    assert custom["num_distributions"] == 4 and custom["bucket_boundaries"] is None
    spec = preprocessing.raw_feature_spec(custom, with_labels=False)
    assert sorted(spec) == ["a", "b", "c"] and spec["c"].dtype == tf.string


def test_materialize_writes_transformed_splits_and_is_cached(tmp_path):
    import pandas as pd

    from mean_tf.data.manifest import Manifest, write_dataset

    frame = pd.DataFrame([{**r, "customer_id": f"c{i}", "cutoff": "2011-01-01", "split": split}
                          for i, (r, split) in enumerate(zip(ROWS * 2, ["train"] * 6 + ["eval"] * 3 + ["test"] * 3))])
    manifest = write_dataset(frame, tmp_path / "data", Manifest(
        name="tiny", splits={}, numeric_features=["recency_days", "net_spend"], money_features=["net_spend"],
        categorical_features=["country"], labels=["cltv_90"]))
    config = MEANConfig(labels=("cltv_90",), num_distributions=3)
    out = tmp_path / "transformed"
    done = preprocessing.materialize(manifest, config, str(out))
    assert [len(done.files(s)) >= 1 for s in ("train", "eval", "test")] == [True] * 3
    output = done.tf_transform_output()
    spec = output.transformed_feature_spec()
    assert {"numeric", "cat__country", "cltv_90", "cltv_90__scaled", "cltv_90__bucket"} <= set(spec)
    rows = list(tf.data.TFRecordDataset(done.files("test"), compression_type="GZIP").batch(10)
                .map(lambda s: tf.io.parse_example(s, spec)))[0]
    # test rows 9..11 repeat train rows 3..5: same transform as in the in-memory run.
    assert sorted(rows["cltv_90__bucket"].numpy().tolist()) == [0, 2, 2]
    assert rows["numeric"].shape == (3, 2)

    stamp = os.path.getmtime(done.files("train")[0])
    again = preprocessing.materialize(manifest, config, str(out))
    assert again.files("train") == done.files("train") and os.path.getmtime(done.files("train")[0]) == stamp


def test_a_cached_transform_made_by_other_code_is_made_again(tmp_path, monkeypatch):
    from mean_tf.data.manifest import Manifest, write_dataset

    import pandas as pd

    frame = pd.DataFrame([{**r, "customer_id": f"c{i}", "cutoff": "2011-01-01", "split": split}
                          for i, (r, split) in enumerate(zip(ROWS * 2, ["train"] * 6 + ["eval"] * 3 + ["test"] * 3))])
    manifest = write_dataset(frame, tmp_path / "data", Manifest(
        name="tiny", splits={}, numeric_features=["recency_days"], categorical_features=["country"],
        labels=["cltv_90"]))
    config = MEANConfig(labels=("cltv_90",), num_distributions=3)
    out = str(tmp_path / "transformed")
    first = preprocessing.materialize(manifest, config, out)
    stamp = os.path.getmtime(first.files("train")[0])
    with open(os.path.join(out, preprocessing.MATERIALIZE_RECORD), encoding="utf-8") as f:
        assert json.load(f)["code"] == preprocessing.code_fingerprint()
    monkeypatch.setattr(preprocessing, "code_fingerprint", lambda: "other-code")
    again = preprocessing.materialize(manifest, config, out)
    assert os.path.getmtime(again.files("train")[0]) != stamp


# --- the one-phase, joint-vocabulary preprocessing_fn against the one it replaced ---------------------
def reference_preprocessing_fn(inputs, cfg):
    """The preprocessing_fn before the joint vocabulary: one tft.compute_and_apply_vocabulary per categorical feature
    and the bucket quantiles of the scaled label (a second Beam phase under label_scaling "scale")."""
    numeric = [tf.cast(preprocessing._as_vector(inputs[n], 0.0), tf.float32) for n in cfg["numeric_features"]]
    numeric = [preprocessing.signed_log1p(x) if n in cfg["money_features"] else x
               for n, x in zip(cfg["numeric_features"], numeric)]
    outputs = {"numeric": tft.scale_to_z_score(tf.stack(numeric, axis=1), elementwise=True)}
    for name in cfg["categorical_features"]:
        outputs["cat__" + name] = tft.compute_and_apply_vocabulary(
            preprocessing._as_vector(inputs[name], ""), num_oov_buckets=1, vocab_filename="vocab__" + name)
    for label in cfg["labels"]:
        money = tf.maximum(tf.cast(preprocessing._as_vector(inputs[label], 0.0), tf.float32), 0.0)
        positive = money > 0.0
        outputs[label] = money
        outputs[label + "__max"] = tf.fill(tf.shape(numeric[-1]), tft.max(money))
        scale = None
        if cfg["label_scaling"] == "scale":
            scale = tf.maximum(tft.sum(money) / tf.maximum(tft.sum(tf.cast(positive, tf.float32)), 1.0), 1e-6)
            outputs[label + "__scale"] = tf.fill(tf.shape(numeric[-1]), scale)
        scaled = preprocessing.scale_label(money, cfg["label_scaling"], cfg["label_clip"], scale)
        boundaries = tft.quantiles(scaled, num_buckets=cfg["num_distributions"] - 1, epsilon=1e-3,
                                   weights=tf.cast(positive, tf.float32))
        outputs[label + "__scaled"] = scaled
        outputs[label + "__bucket"] = tf.where(positive, tft.apply_buckets(scaled, boundaries) + 1,
                                               tf.zeros([tf.shape(money)[0]], tf.int64))
    return outputs


def equivalence_rows(n, seed, countries=("UK", "FR", "DE", "NL")):
    """Rows with tied category counts, empty and newline tokens, a label clipped at label_clip."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        money = float(np.round(rng.lognormal(3.0, 1.5), 2)) if rng.random() < 0.6 else 0.0
        rows.append({"recency_days": float(rng.integers(0, 365)), "net_spend": float(rng.normal(50, 80)),
                     "country": countries[i % len(countries)],  # n divisible by 4: a four-way tie
                     "channel": ["web", "shop", "", "app\n", "phone", "mail"][i % 6 if i < n - 2 else 0],
                     "segment": "",  # never a vocabulary token: the empty-vocabulary dummy
                     "cltv_90": money, "cltv_365": money * float(rng.uniform(1, 3)) + (1e5 if i == 7 else 0.0)})
    return rows


@pytest.mark.parametrize("scaling", ["scale", "log1p"])
def test_new_preprocessing_fn_reproduces_the_old_vocabularies_and_outputs(scaling):
    custom = {**CUSTOM, "categorical_features": ["country", "channel", "segment"], "labels": ["cltv_90", "cltv_365"],
              "label_scaling": scaling, "label_clip": 20.0 if scaling == "scale" else 8.0, "num_distributions": 4}
    train, unseen = equivalence_rows(400, seed=1), equivalence_rows(40, seed=2, countries=("UK", "IT", "ES", "FR"))
    runs = [analyze_and_transform(custom, train, unseen, preprocessing_fn=fn)
            for fn in (reference_preprocessing_fn, preprocessing.preprocessing_fn)]
    (old_train, old_new, old_dir), (new_train, new_new, new_dir) = runs
    old_out, new_out = tft.TFTransformOutput(old_dir), tft.TFTransformOutput(new_dir)
    for name in custom["categorical_features"]:
        with open(old_out.vocabulary_file_by_name("vocab__" + name), "rb") as f:
            old_vocab = f.read()
        with open(new_out.vocabulary_file_by_name("vocab__" + name), "rb") as f:
            assert f.read() == old_vocab, name
    assert preprocessing.categorical_vocab_sizes(new_out, custom) == preprocessing.categorical_vocab_sizes(old_out, custom)
    assert new_out.transformed_feature_spec() == old_out.transformed_feature_spec()
    assert new_out.transformed_metadata.schema == old_out.transformed_metadata.schema
    for old_rows, new_rows in ((old_train, new_train), (old_new, new_new)):
        assert_same_rows(old_rows, new_rows)
    assert {int(r["cltv_365__bucket"]) for r in new_train} == {0, 1, 2, 3}
    assert any(int(r["cat__country"]) == 4 for r in new_new)  # unseen countries: the OOV bucket


def beam_transforms(custom, rows):
    """Unique names and URNs of the leaf transforms of Transform's Beam graph, built but not run."""
    import apache_beam as beam

    schema = schema_utils.schema_from_feature_spec(preprocessing.raw_feature_spec(custom))
    pipeline = beam.Pipeline()
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        _ = ((pipeline | beam.Create(rows), dataset_metadata.DatasetMetadata(schema))
             | tft_beam.AnalyzeAndTransformDataset(lambda inputs: preprocessing.preprocessing_fn(inputs, custom)))
    leaves = [t for t in pipeline.to_runner_api().components.transforms.values() if not t.subtransforms]
    return [(t.unique_name, t.spec.urn) for t in leaves]


def test_transform_analyzes_in_one_phase_and_the_vocabularies_cost_no_stage_per_feature():
    rows = [{**r, **{f"c{i}": r["country"] for i in range(8)}} for r in ROWS]
    graphs = [beam_transforms({**CUSTOM, "label_scaling": "scale", "categorical_features": [f"c{i}" for i in range(k)]},
                              rows) for k in (1, 8)]
    for transforms in graphs:
        assert not any("Phase1" in name for name, _ in transforms)  # the bucket quantiles wait for no tft.sum
    group_by_keys = [sum(urn == "beam:transform:group_by_key:v1" for _, urn in t) for t in graphs]
    assert group_by_keys[0] == group_by_keys[1]


@pytest.mark.parametrize("encoding", ["ple", "bins"])
def test_quantile_encodings_analyze_in_one_phase_with_one_quantiles_analyzer_for_every_feature(encoding):
    rows = [{**r, **{f"x{i}": r["recency_days"] * (i + 1) for i in range(8)}} for r in ROWS]
    graphs = [beam_transforms({**CUSTOM, "numeric_encoding": encoding, "numeric_bins": 4,
                               "numeric_features": ["recency_days", "net_spend", *(f"x{i}" for i in range(k))]}, rows)
              for k in (0, 8)]
    for transforms in graphs:
        assert not any("Phase1" in name for name, _ in transforms)
        assert any("CacheableCombineAccumulate[quantiles" in name for name, _ in transforms)
    assert len(graphs[0]) == len(graphs[1])  # 2 or 10 numeric features: the same Beam stages


def assert_same_rows(old_rows, new_rows):
    """Same keys, dtypes and values (floats to float32 rounding: the reference sums in float32, the package
    in float64) in every transformed row."""
    assert len(new_rows) == len(old_rows)
    for old, new in zip(old_rows, new_rows):
        assert sorted(new) == sorted(old)
        for key, value in old.items():
            assert np.asarray(new[key]).dtype == np.asarray(value).dtype, key
            np.testing.assert_allclose(new[key], value, rtol=1e-6, atol=1e-6, err_msg=key)


def test_analyzer_results_do_not_depend_on_the_order_of_the_rows():
    # Beam sums partial results in a different order on every run; the float64 analyzers give bit-identical
    # float32 outputs for any order (float32 sums differed in their last bits, and so did the trained model).
    custom = {**CUSTOM, "categorical_features": ["country"], "labels": ["cltv_90", "cltv_365"],
              "label_scaling": "scale", "label_clip": 20.0, "num_distributions": 4}
    rows = equivalence_rows(2000, seed=3)
    for row in rows:
        row["net_spend"] *= 1.0 + 1e-3 * row["recency_days"]  # values with many significant bits
    order = np.random.default_rng(0).permutation(len(rows))
    forward, _, _ = analyze_and_transform(custom, rows)
    shuffled, _, _ = analyze_and_transform(custom, [rows[i] for i in order])
    back = [None] * len(rows)
    for position, i in enumerate(order):
        back[i] = shuffled[position]
    for key in ("numeric", "cltv_365__scale", "cltv_365__scaled"):
        np.testing.assert_array_equal(np.array([r[key] for r in forward]), np.array([r[key] for r in back]), key)
