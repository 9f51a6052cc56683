"""Batch scoring that one odd customer cannot stop.

A numeric feature beyond the model's training range (standardized |z| > its bound, `mean_tf.serving.export.FEATURE_BOUND_FACTOR`)
is clipped to the bound and flagged (`inputs_out_of_range`, `clipped_features`); a missing or non-finite feature
refuses that customer only: `mean-tf score` writes every other customer and a rejects file, and exits 2 only
with --strict or when every customer is refused. TF Serving (the TF1 loader) still answers non-finite input with
an error naming the feature, and the BulkInferrer scores a batch holding an out-of-range customer.
"""
import contextlib
import io
import os

import numpy as np
import pandas as pd
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from mean_tf import cli
from mean_tf.serving import client as serving_client, export, scoring
from mean_tf.tfx_modules import trainer
from mean_tf.config import MEANConfig
from mean_tf.data.manifest import Manifest, read_manifest, write_frame, write_scoring_dataset
from mean_tf.contract import NUMERIC_KEY
from tiny_dataset import MONEY, NUMERIC, materialized_tiny, tiny_frame

SMALL = dict(shared_units=(16,), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
             batch_size=64, epochs=1, embedding_dim=2)
CUSTOMERS = 1000
ODD, NAN = 10, 20  # rows: one feature 100x beyond its bound; one NaN
ODD_FEATURE, NAN_FEATURE = "frequency", "net_spend"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny dataset's MEAN model, exported for serving (cltv_365)."""
    root = tmp_path_factory.mktemp("scoring_policy")
    manifest, done = materialized_tiny()
    fn_args = FnArgs(train_files=done.files("train"), eval_files=done.files("eval"), transform_output=done.out_dir,
                     serving_model_dir=str(root / "serving"), model_run_dir=str(root / "run"),
                     custom_config=trainer.trainer_config("mean", MEANConfig(**SMALL), "cltv_365", manifest.features))
    trainer.run_fn(fn_args)
    return done, fn_args.serving_model_dir


def raw_value_at(done, model_dir: str, feature: str, times_bound: float) -> float:
    """The raw value of `feature` (not a money feature: z is linear in it) whose standardized value is
    `times_bound` x the model's bound for it."""
    assert feature not in MONEY
    info = scoring.read_model_info(model_dir)
    column = info["numeric_features"].index(feature)
    layer = done.tf_transform_output().transform_features_layer()
    spec = done.tf_transform_output().raw_feature_spec()
    raw = {name: tf.zeros([2], s.dtype) for name, s in spec.items()}
    raw[feature] = tf.constant([0.0, 1.0])
    z = layer(raw)[NUMERIC_KEY].numpy()[:, column]
    return float((times_bound * info["feature_bounds"][column] - z[0]) / (z[1] - z[0]))


def write_scoring_data(folder, frame: pd.DataFrame):
    """A scoring dataset holding `frame` as it is (the dataset writer would refuse its NaN)."""
    features = frame.drop(columns=["cltv_30", "cltv_90", "cltv_180", "cltv_365", "split"])
    clean = features.replace([np.inf, -np.inf], np.nan).fillna(1.0)
    written = write_scoring_dataset(clean, folder, Manifest(
        name="tiny_score", splits={}, numeric_features=NUMERIC, money_features=MONEY,
        categorical_features=["country"], slice_features=["country"], labels=[]))
    write_frame(features, written.files("score")[0], written.float_columns, written.bytes_columns)
    return read_manifest(folder)


@pytest.fixture(scope="module")
def odd_data(model, tmp_path_factory):
    done, model_dir = model
    frame = tiny_frame(CUSTOMERS, seed=1)
    frame.loc[ODD, ODD_FEATURE] = raw_value_at(done, model_dir, ODD_FEATURE, 100.0)
    frame.loc[NAN, NAN_FEATURE] = np.nan
    return write_scoring_data(tmp_path_factory.mktemp("odd") / "score", frame), frame


def score_cli(*argv):
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = cli.main(["score", *argv])
    return code, printed.getvalue(), errors.getvalue()


def test_one_odd_customer_is_clipped_and_flagged_one_nan_refused_and_the_rest_scored(model, odd_data, tmp_path):
    _, model_dir = model
    data, frame = odd_data
    out = tmp_path / "scores.csv"
    code, printed, errors = score_cli("--model", model_dir, "--data", data.root, "--out", str(out))
    assert code == 0, errors
    table = pd.read_csv(out, dtype={"customer_id": str}, keep_default_na=False)
    assert len(table) == CUSTOMERS - 1 and frame["customer_id"][NAN] not in set(table["customer_id"])
    flagged = table[table["inputs_out_of_range"] > 0]
    assert list(flagged["customer_id"]) == [frame["customer_id"][ODD]]
    assert list(flagged["clipped_features"]) == [ODD_FEATURE] and list(flagged["inputs_out_of_range"]) == [1]
    assert np.isfinite(table["cltv"]).all() and table["rank"].max() == CUSTOMERS - 1
    rejects = pd.read_csv(scoring.rejects_path(str(out)), dtype=str)
    assert rejects.to_dict("records") == [{"customer_id": frame["customer_id"][NAN], "feature": NAN_FEATURE,
                                           "reason": "not finite (nan)"}]
    assert "999 customers" in printed and "1 flagged" in printed and f"most often {ODD_FEATURE} (1)" in printed
    assert "1 refused" in printed and scoring.rejects_path(str(out)) in printed


def test_the_flagged_customer_is_scored_as_if_its_feature_were_at_the_bound(model, odd_data, tmp_path):
    done, model_dir = model
    data, frame = odd_data
    records = [r.numpy() for r in tf.data.TFRecordDataset(data.files("score"), compression_type="GZIP")]
    odd = tf.train.Example.FromString(records[ODD])
    at_bound = tf.train.Example.FromString(records[ODD])
    at_bound.features.feature[ODD_FEATURE].float_list.value[:] = [raw_value_at(done, model_dir, ODD_FEATURE, 1.0)]
    answer = export.predict_serialized(model_dir, [odd.SerializeToString(), at_bound.SerializeToString()])
    assert list(answer["inputs_out_of_range"]) == [1, 0]
    np.testing.assert_allclose(answer["cltv"][0], answer["cltv"][1], rtol=1e-4)


def test_strict_refuses_the_run_naming_the_customer_and_writes_nothing(model, odd_data, tmp_path):
    _, model_dir = model
    data, frame = odd_data
    out = tmp_path / "scores.parquet"
    code, _, errors = score_cli("--model", model_dir, "--data", data.root, "--out", str(out), "--strict")
    assert code == 2
    [line] = errors.strip().splitlines()
    assert f"customer {frame['customer_id'][NAN]}: {NAN_FEATURE} not finite (nan)" in line and "--strict" in line
    assert os.listdir(tmp_path) == []


def test_a_run_whose_every_customer_is_refused_exits_2_and_writes_nothing(model, tmp_path):
    _, model_dir = model
    frame = tiny_frame(5, seed=2)
    frame[NAN_FEATURE] = np.inf
    data = write_scoring_data(tmp_path / "score", frame)
    out = tmp_path / "out" / "scores.csv"
    code, _, errors = score_cli("--model", model_dir, "--data", data.root, "--out", str(out))
    assert code == 2 and "refused 5 customer(s) of 5 (no customer left to score)" in errors
    assert f"{NAN_FEATURE} not finite (inf)" in errors
    assert not out.exists() and not os.path.exists(scoring.rejects_path(str(out)))


def test_a_missing_feature_refuses_that_customer_naming_the_feature(model, odd_data):
    _, model_dir = model
    data, _ = odd_data
    records = [r.numpy() for r in tf.data.TFRecordDataset(data.files("score"), compression_type="GZIP").take(4)]
    example = tf.train.Example.FromString(records[2])
    del example.features.feature["recency_days"]
    records[2] = example.SerializeToString()
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    outputs, served, refused = scoring.serve_each(serve, tf.constant(records))
    assert list(served) == [0, 1, 3] and outputs["cltv"].shape == (3,)
    [(index, message)] = refused
    assert index == 2 and scoring.rejection(message, records[2]) == ("recency_days", "missing")


@pytest.mark.parametrize("value, reason", [
    (float("nan"), "not finite (nan)"), (float("-inf"), "not finite (-inf)"), (1e16, "1e+16 is beyond |x| <= 1e+15")])
def test_a_refusal_names_the_feature_and_why(value, reason):
    record = serving_client.make_example({NAN_FEATURE: value, "country": "France"}).SerializeToString()
    message = (f"{{{{function_node __inference_serve_1}}}} feature '{NAN_FEATURE}' must be finite with |x| <= 1e+15 "
               f": Tensor had NaN values\n\t [[{{{{node CheckNumerics_2}}}}]] [Op:__inference_signature_wrapper]")
    assert scoring.rejection(message, record) == (NAN_FEATURE, reason)


def test_tf_serving_keeps_a_clear_error_for_non_finite_input(model):
    _, model_dir = model
    row = tiny_frame(1, seed=3).iloc[0]
    example = {name: row[name] for name in NUMERIC + ["country"]}
    assert export.predict_serialized(model_dir, serving_client.serialize([example]))["cltv"].shape == (1,)
    example[NAN_FEATURE] = float("nan")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"feature '{NAN_FEATURE}' must be finite"):
        export.predict_serialized(model_dir, serving_client.serialize([example]))


def test_the_bulk_inferrer_scores_a_batch_with_an_out_of_range_customer(model, odd_data, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2
    from tfx.components.bulk_inferrer import executor
    from tfx.proto import bulk_inferrer_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import proto_utils

    from pipeline.example_gen import copy_split

    _, model_dir = model
    data, frame = odd_data
    finite = frame.drop(index=NAN)  # the dataset writer refuses NaN: a BulkInferrer input holds finite values
    clean = write_scoring_data(tmp_path / "score", finite)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["score"])
    copy_split(clean.files("score")[0], os.path.join(examples.uri, "Split-score"))
    trained = standard_artifacts.Model()
    trained.uri = str(tmp_path / "model")
    tf.io.gfile.makedirs(os.path.join(trained.uri, "Format-Serving"))
    for name in tf.io.gfile.listdir(model_dir):
        os.symlink(os.path.join(model_dir, name.rstrip("/")), os.path.join(trained.uri, "Format-Serving", name.rstrip("/")))
    result = standard_artifacts.InferenceResult()
    result.uri = str(tmp_path / "inference")
    executor.Executor().Do({"examples": [examples], "model": [trained]}, {"inference_result": [result]}, {
        "model_spec": proto_utils.proto_to_json(bulk_inferrer_pb2.ModelSpec(model_signature_name=["serving_default"])),
        "data_spec": proto_utils.proto_to_json(bulk_inferrer_pb2.DataSpec(example_splits=["score"]))})
    files = [os.path.join(folder, name) for folder, _, names in os.walk(result.uri) for name in names]
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(logs) == CUSTOMERS - 1
    flagged = {}
    for log in logs:
        outputs = log.predict_log.response.outputs
        count = int(tf.make_ndarray(outputs["inputs_out_of_range"]).reshape(-1)[0])
        if count:
            example = tf.train.Example.FromString(log.predict_log.request.inputs["examples"].string_val[0])
            flagged[example.features.feature["customer_id"].bytes_list.value[0].decode()] = count
        assert np.isfinite(tf.make_ndarray(outputs["cltv"])).all()
    assert flagged == {frame["customer_id"][ODD]: 1}
