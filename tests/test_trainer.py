"""The TFX run_fn and its export: the SavedModel answers through TF Serving's TF1 loader and saved_model_cli."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from mean_tf import contract
from mean_tf.training import calibration, protocol, tuning
from mean_tf.tfx_modules import trainer
from mean_tf.serving import export
from mean_tf.transform import preprocessing
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from tiny_dataset import materialized_tiny

SMALL = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
             batch_size=64, epochs=1, embedding_dim=2)  # label_scaling: the default, "scale"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """run_fn on a multi-horizon MEAN (label_scaling "scale"), serving cltv_30 (the first of four labels)."""
    root = tmp_path_factory.mktemp("trainer")
    manifest, done = materialized_tiny()
    config = MEANConfig(**SMALL)
    tuned = tuning.search_space("mtl_mean", config)  # the Tuner's best_hyperparameters, as TFX passes them
    tuned.values.update(width=2.0, huber_delta=2.0)
    fn_args = FnArgs(train_files=done.files("train"), eval_files=done.files("eval"), transform_output=done.out_dir,
                     serving_model_dir=str(root / "serving"), model_run_dir=str(root / "run"),
                     custom_config=trainer.trainer_config("mtl_mean", config, "cltv_30", manifest.features),
                     hyperparameters=tuned.get_config())
    os.makedirs(fn_args.model_run_dir)
    exported_models = []
    real_export = export.export_serving_model

    def keep_model(model, *args):  # the trained Keras model, for the comparison below
        exported_models.append(model)
        return real_export(model, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "export_serving_model", keep_model)
        trainer.run_fn(fn_args)
    records = [r.numpy() for r in tf.data.TFRecordDataset(manifest.files("test"), compression_type="GZIP").take(8)]
    return manifest, done, fn_args, records, exported_models[0]


def expected_money(done, model, records, column):
    """The same prediction computed outside the serving graph: TFT layer, Keras model, LabelTransform."""
    output = done.tf_transform_output()
    raw = tf.io.parse_example(tf.constant(records), output.raw_feature_spec())
    transformed = output.transform_features_layer()(raw)
    inputs, _ = preprocessing.split_targets(transformed, model.config.labels)
    scaled = model(inputs, training=False)["cltv"]
    money = protocol.label_transform_for(output, model.config).to_money(scaled, model.config.labels)
    return money.numpy()[:, column]


def test_run_fn_exports_a_model_tf_serving_can_load(exported):
    _, done, fn_args, records, model = exported
    assert list(model.config.labels) == ["cltv_30", "cltv_90", "cltv_180", "cltv_365"]
    answer = export.predict_serialized(fn_args.serving_model_dir, records)  # TF1 loader in a Session
    assert answer["cltv"].shape == (8,) and np.all(answer["cltv"] >= 0)
    assert answer["bucket_probs"].shape == (8, 5)
    np.testing.assert_allclose(answer["bucket_probs"].sum(axis=1), 1.0, rtol=1e-5)
    raw = expected_money(done, model, records, 0)
    np.testing.assert_allclose(answer["cltv_uncalibrated"], raw, rtol=1e-4, atol=1e-6)
    # calibrated with the eval-split fit the Trainer wrote next to the model
    fitted = json.load(open(os.path.join(fn_args.model_run_dir, contract.CALIBRATION_FILE)))
    cal = calibration.Calibration.from_dict(fitted["calibrations"]["cltv_30"])
    np.testing.assert_allclose(answer["cltv"], cal.apply(raw), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(answer["cltv"], answer["cltv_30"])
    assert {"cltv_90", "cltv_180", "cltv_365"} <= set(answer)  # every horizon of a multi-horizon model
    np.testing.assert_allclose(answer["p_payer"], 1.0 - answer["bucket_probs"][:, 0], rtol=1e-6)
    lower, upper = answer["bucket_lower"], answer["bucket_upper"]
    assert lower.shape == (8, 5) and lower[0, 0] == upper[0, 0] == 0.0 and np.isinf(upper[0, -1])
    np.testing.assert_array_equal(upper[:, 1:-1], lower[:, 2:])
    assert np.all(np.diff(lower[0]) >= 0)
    summary = json.load(open(os.path.join(fn_args.model_run_dir, "fit_summary.json")))
    assert summary["best_epoch"] == 0 and "val_selection" in summary["history"] and summary["steps"] > 0
    # trained with the Tuner's setting: width x 2 and delta 2
    assert summary["config"]["expert_units"] == 16 and summary["config"]["huber_delta"] == 2.0
    assert model.config.expert_units == 16


def test_transform_features_signature_returns_transformed_labels(exported):
    _, _, fn_args, records, _ = exported
    signature = tf.saved_model.load(fn_args.serving_model_dir).signatures["transform_features"]
    transformed = signature(examples=tf.constant(records))
    assert {"numeric", "cat__country", "cltv_365__scaled", "cltv_365__bucket"} <= set(transformed)


def test_saved_model_cli_runs_serving_default_on_raw_examples(exported):
    _, _, fn_args, _, _ = exported
    example = {"recency_days": [3.0], "frequency": [2.0], "net_spend": [120.0], "spend_last_30d": [10.0],
               "country": ["France"]}
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    run = subprocess.run([cli, "run", "--dir", fn_args.serving_model_dir, "--tag_set", "serve", "--signature_def",
                          "serving_default", "--input_examples", f"examples=[{json.dumps(example)}]"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Result for output key cltv" in run.stdout and "bucket_probs" in run.stdout


def test_run_fn_requires_the_trainer_config(exported):
    _, _, fn_args, _, _ = exported
    broken = FnArgs(**{**fn_args.__dict__, "custom_config": {"model_name": "mean"}})
    with pytest.raises(MeanTFError, match="custom_config lacks"):
        trainer.run_fn(broken)


def test_score_writes_one_row_per_customer_with_rank_and_target(exported, tmp_path, capsys):
    import pandas as pd

    from mean_tf.cli import main

    manifest, _, fn_args, records, _ = exported
    model_dir = fn_args.serving_model_dir
    assert main(["score", "--model", model_dir, "--data", manifest.root, "--out", str(tmp_path / "p.parquet"),
                 "--batch-size", "7", "--target-share", "0.2"]) == 0
    assert "scored" in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "p.parquet")
    n = manifest.row_counts["test"]
    assert len(table) == n and table["customer_id"].is_unique  # --batch-size 7: many batches
    answer = export.predict_serialized(model_dir, records)
    np.testing.assert_allclose(table["cltv"].to_numpy()[:8], answer["cltv"], rtol=1e-6)
    np.testing.assert_allclose(table["p_bucket_0"].to_numpy()[:8], answer["bucket_probs"][:, 0], rtol=1e-6)
    assert {"cltv_uncalibrated", "cltv_30", "cltv_365", "p_payer", "bucket_4_upper"} <= set(table.columns)
    order = np.argsort(-table["cltv"].to_numpy(), kind="stable")
    np.testing.assert_array_equal(table["rank"].to_numpy()[order], np.arange(1, n + 1))
    assert table["target"].sum() == int(np.ceil(0.2 * n)) and table.loc[table["target"], "rank"].max() == table["target"].sum()
    assert table["decile"].min() == 1 and table["decile"].max() == 10
    assert (table.groupby("decile")["cltv"].min().diff().dropna() <= 0).all()  # decile 1 holds the highest
    assert main(["score", "--model", model_dir, "--data", manifest.root, "--out", str(tmp_path / "p.csv"),
                 "--target-share", "0.2"]) == 0
    csv = pd.read_csv(tmp_path / "p.csv", dtype={"customer_id": str, "cutoff": str}, keep_default_na=False)
    # The CSV run scores in one batch, the parquet run in batches of 7: float32 matmuls of other shapes differ in
    # the last bits (up to ~2e-6 relative on some CPUs).
    pd.testing.assert_frame_equal(csv, table, check_dtype=False, check_exact=False, rtol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--out", "p.txt"], "must end in .parquet or .csv"),
    (["--model", "nowhere"], "not a SavedModel folder"),
    (["--split", "nosuch"], "has no split 'nosuch'"),
])
def test_score_bad_input_is_one_line(exported, tmp_path, capsys, argv, message):
    from mean_tf.cli import main

    manifest, _, fn_args, _, _ = exported
    base = {"--model": fn_args.serving_model_dir, "--data": manifest.root, "--out": str(tmp_path / "p.parquet")}
    base.update(dict(zip(argv[::2], argv[1::2])))
    capsys.readouterr()
    assert main(["score", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not [p for p in os.listdir(tmp_path) if p != "p.txt"] or not (tmp_path / "p.parquet").exists()


def test_serving_refuses_a_missing_feature_naming_it(exported):
    manifest, _, fn_args, records, _ = exported
    example = tf.train.Example.FromString(records[0])
    del example.features.feature["recency_days"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="recency_days"):
        export.predict_serialized(fn_args.serving_model_dir, [example.SerializeToString()])
    assert export.predict_serialized(fn_args.serving_model_dir, records[:1])["cltv"].shape == (1,)  # still serving


@pytest.mark.parametrize("value, message", [
    (float("nan"), "feature 'recency_days' must be finite"),
    (1e30, "feature 'recency_days' must be finite with |x| <= 1e+15"),
])
def test_serving_refuses_absurd_feature_values_naming_the_feature(exported, value, message):
    _, _, fn_args, records, _ = exported
    example = tf.train.Example.FromString(records[0])
    example.features.feature["recency_days"].float_list.value[:] = [value]
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        export.predict_serialized(fn_args.serving_model_dir, [example.SerializeToString()])


def test_serving_clips_and_counts_a_value_beyond_the_training_range(exported):
    _, _, fn_args, records, _ = exported
    example = tf.train.Example.FromString(records[0])
    example.features.feature["recency_days"].float_list.value[:] = [1e12]  # allowed by the dataset bound
    answer = export.predict_serialized(fn_args.serving_model_dir, [example.SerializeToString(), records[0]])
    assert list(answer["inputs_out_of_range"]) == [1, 0] and np.isfinite(answer["cltv"]).all()
    info = json.loads(open(os.path.join(fn_args.serving_model_dir, "assets.extra", "mean_tf.json")).read())
    bounds = dict(zip(info["numeric_features"], info["feature_bounds"]))
    assert 10.0 <= bounds["recency_days"] < 100.0  # 10 x the train split's largest |z| (about 1.7)


def test_score_flags_customers_beyond_the_training_range_and_scores_them(exported, tmp_path, capsys):
    import pandas as pd

    from mean_tf.cli import main
    from mean_tf.data.manifest import read_split, write_dataset

    manifest, _, fn_args, _, _ = exported
    frame = read_split(manifest, "test").assign(split="test")
    frame.loc[frame.index[[3, 5]], "recency_days"] = 1e12
    bad = write_dataset(frame, tmp_path / "bad", manifest)
    out = tmp_path / "scores" / "p.parquet"
    capsys.readouterr()
    assert main(["score", "--model", fn_args.serving_model_dir, "--data", bad.root, "--out", str(out)]) == 0
    assert "2 flagged" in capsys.readouterr().out
    table = pd.read_parquet(out)
    flagged = table[table["inputs_out_of_range"] > 0]
    assert sorted(flagged["customer_id"]) == sorted(frame["customer_id"].iloc[[3, 5]])
    assert set(flagged["clipped_features"]) == {"recency_days"} and len(table) == len(frame)


def test_score_refuses_a_dataset_without_the_models_features(exported, tmp_path, capsys):
    import dataclasses

    from mean_tf.cli import main
    from mean_tf.data.manifest import read_split, write_dataset

    manifest, _, fn_args, _, _ = exported
    frame = read_split(manifest, "test").drop(columns=["frequency"]).assign(split="test")
    fewer = dataclasses.replace(manifest, numeric_features=[f for f in manifest.numeric_features if f != "frequency"])
    bad = write_dataset(frame, tmp_path / "bad", fewer)
    capsys.readouterr()
    assert main(["score", "--model", fn_args.serving_model_dir, "--data", bad.root,
                 "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks feature(s) ['frequency'] of the model at" in err[0]
    assert not (tmp_path / "p.csv").exists()
