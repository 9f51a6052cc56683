"""Pipeline wiring without running it: Kubeflow V2 compile, split patterns, the Evaluator config, schemas, the gate."""
import dataclasses
import importlib
import json
import os

import numpy as np
import pandas as pd
import pytest

import mean_tf  # noqa: F401
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

from mean_tf.data import online_retail
from mean_tf.data.manifest import Manifest, read_split
from mean_tf.errors import MeanTFError
from pipeline import (components, configs, example_gen, kubeflow_v2_runner, local_runner, pipeline as mean_pipeline,
                      schema as schemas)
from tiny_dataset import write_tiny_dataset


@pytest.fixture(scope="module")
def retail_slice(tmp_path_factory):
    """The bundled Online Retail II builder on 60 customers: a real dataset of the bundled kind, fast."""
    root = tmp_path_factory.mktemp("retail_slice")
    lines = pd.read_parquet(online_retail.default_input())
    customers = np.sort(lines["customer_id"].dropna().unique())[:60]
    lines[lines["customer_id"].isin(customers)].to_parquet(root / "lines.parquet")
    manifest = online_retail.build(root / "data", input_path=root / "lines.parquet")
    return manifest, pd.concat([read_split(manifest, s) for s in manifest.splits], ignore_index=True)


def test_kubeflow_v2_compile_holds_every_component_the_image_and_importable_dotted_paths(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", rows=100)
    settings = configs.PipelineSettings(image="gcr.io/project/mean-tf:test",
                                        beam_pipeline_args=["--runner=DataflowRunner", "--region=europe-west4"])
    path = kubeflow_v2_runner.compile_pipeline(
        str(tmp_path / "data"), settings, data_root="gs://bucket/data", pipeline_root="gs://bucket/root",
        serving_model_dir="gs://bucket/serving", output_file=str(tmp_path / "p.json"))
    text = open(path).read()
    spec = json.loads(text)["pipelineSpec"]
    tasks = set(spec["root"]["dag"]["tasks"])
    assert {"ImportExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator", "ValidationGate",
            "Transform", "Trainer", "EvaluationSchema", "Evaluator", "Pusher"} <= tasks
    assert any(t.startswith("latest_blessed_model_resolver") for t in tasks)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
    assert images == {"gcr.io/project/mean-tf:test"}
    for needle in ("gs://bucket/data", "gs://bucket/root", "gs://bucket/serving", "--runner=DataflowRunner",
                   mean_pipeline.PREPROCESSING_FN, mean_pipeline.RUN_FN, "mean_tf.tfx_modules.tfma_metrics",
                   "pipeline.components.ValidationGate_Executor", "pipeline.example_gen.Executor"):
        assert needle in text, needle
    for dotted in (mean_pipeline.PREPROCESSING_FN, mean_pipeline.RUN_FN, "pipeline.components.ValidationGate_Executor",
                   "pipeline.components.CurateSchema_Executor"):
        module, name = dotted.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name))
    assert manifest.name == "tiny"


def test_tune_adds_a_tuner_whose_best_hyperparameters_feed_the_trainer(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", rows=100)
    path = kubeflow_v2_runner.compile_pipeline(
        str(tmp_path / "data"), configs.PipelineSettings(image="gcr.io/project/mean-tf:test", tune=True, tuner_trials=3,
                                                 tuner_margin=0.01),
        data_root="gs://bucket/data", pipeline_root="gs://bucket/root", serving_model_dir="gs://bucket/serving",
        output_file=str(tmp_path / "p.json"))
    text = open(path).read()
    dag = json.loads(text)["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "Tuner" in dag and "Tuner" in dag["Trainer"]["dependentTasks"]
    trainer_inputs = dag["Trainer"]["inputs"]["artifacts"]
    assert trainer_inputs["hyperparameters"]["taskOutputArtifact"]["producerTask"] == "Tuner"
    assert mean_pipeline.TUNER_FN in text and '\\"tuner_trials\\": 3' in text and '\\"tuner_margin\\": 0.01' in text
    module, name = mean_pipeline.TUNER_FN.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))
    untuned = mean_pipeline.create_pipeline(configs.PipelineSettings(), pipeline_root=str(tmp_path / "root"),
                                            manifest=manifest, serving_model_dir=str(tmp_path / "serving"))
    assert "Tuner" not in {c.id for c in untuned.components}


def bundled_like(tmp_path) -> Manifest:
    return Manifest(name="online_retail_ii", splits={"train": ["train-00000-of-00001.tfrecord.gz"],
                                                     "eval": ["eval-00000-of-00001.tfrecord.gz"],
                                                     "test": ["test-00000-of-00001.tfrecord.gz"]},
                    numeric_features=["x"], categorical_features=["country"], labels=["cltv_365"],
                    slice_features=["country"], root=str(tmp_path))


def test_bundled_dataset_uses_the_checked_in_schema_and_the_pipeline_validates_its_arguments(tmp_path):
    manifest = bundled_like(tmp_path)
    built = mean_pipeline.create_pipeline(configs.PipelineSettings(), pipeline_root=str(tmp_path / "root"),
                                          manifest=manifest, serving_model_dir=str(tmp_path / "serving"))
    ids = [c.id for c in built.components]
    assert "BundledSchema" in ids and "SchemaGen" not in ids
    assert ids.index("ValidationGate") < ids.index("Transform") < ids.index("Trainer") < ids.index("Pusher")
    with pytest.raises(MeanTFError, match="cltv_7"):
        mean_pipeline.create_pipeline(configs.PipelineSettings(label="cltv_7"), pipeline_root="r", manifest=manifest,
                                      serving_model_dir="s")
    with pytest.raises(MeanTFError, match="classical"):
        mean_pipeline.create_pipeline(configs.PipelineSettings(model_name="two_stage_gbdt"), pipeline_root="r",
                                      manifest=manifest, serving_model_dir="s")


def test_example_gen_copies_by_default_and_reshuffles_only_when_asked(tmp_path):
    def example_gen_executor(**kwargs):
        built = mean_pipeline.create_pipeline(configs.PipelineSettings(**kwargs), pipeline_root=str(tmp_path / "root"),
                                              manifest=bundled_like(tmp_path), serving_model_dir="s")
        node = next(c for c in built.components if c.id == "ImportExampleGen")
        return node.executor_spec.executor_class

    assert example_gen_executor() is example_gen.Executor
    assert example_gen_executor(shuffle_examples=True) is not example_gen.Executor


def _run_example_gen(manifest, out, splits=None):
    from tfx.proto import example_gen_pb2
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    splits = splits or {s: mean_pipeline.split_pattern(manifest, s) for s in mean_pipeline.SPLITS}
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=n, pattern=p)
                                                 for n, p in splits.items()])
    example_gen.Executor().Do({}, {"examples": [examples]}, {
        "input_base": manifest.root, "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(example_gen_pb2.Output()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE})
    return examples


def test_copying_example_gen_writes_every_record_of_each_split_as_tfx_would(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", rows=120)
    examples = _run_example_gen(manifest, tmp_path / "examples")

    def records(pattern):
        return sorted(r.numpy() for r in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)), "GZIP"))

    assert artifact_utils.decode_split_names(examples.split_names) == list(mean_pipeline.SPLITS)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
    for split in mean_pipeline.SPLITS:
        pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
        read = records(pattern)
        assert read == records(os.path.join(manifest.root, manifest.splits[split][0]))
        assert len(read) == manifest.row_counts[split]


def test_copying_example_gen_names_a_file_that_is_not_gzipped_tfrecord(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data", rows=60)
    (tmp_path / "data" / "plain.tfrecord").write_bytes(b"not gzip")
    with pytest.raises(MeanTFError, match="plain.tfrecord is not a gzipped TFRecord"):
        _run_example_gen(manifest, tmp_path / "examples", {"train": "plain.tfrecord"})
    with pytest.raises(MeanTFError, match="no file matches"):
        _run_example_gen(manifest, tmp_path / "examples", {"train": "missing-*"})


def test_split_patterns_keep_the_datasets_own_splits(tmp_path):
    manifest = bundled_like(tmp_path)
    assert mean_pipeline.split_pattern(manifest, "eval") == "eval-00000-of-00001.tfrecord.gz"
    sharded = dataclasses.replace(manifest, splits={**manifest.splits, "train": [
        "train-00000-of-00002.tfrecord.gz", "train-00001-of-00002.tfrecord.gz"]})
    assert mean_pipeline.split_pattern(sharded, "train") == "train-*"
    odd = dataclasses.replace(manifest, splits={**manifest.splits, "train": ["a.gz", "b.gz"]})
    with pytest.raises(MeanTFError, match="one pattern"):
        mean_pipeline.split_pattern(odd, "train")


def test_eval_config_gates_overall_gini_and_slices_by_the_slice_features():
    config = mean_pipeline.eval_config("cltv_365", ["country", "active_90d"], gini_floor=0.4, gini_max_drop=0.02)
    assert config.model_specs[0].label_key == "cltv_365" and config.model_specs[0].prediction_key == "cltv"
    assert not config.model_specs[0].preprocessing_function_names  # labels and slices are raw features
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["country"], ["active_90d"]]
    metrics = {m.class_name: m for m in config.metrics_specs[0].metrics}
    assert {"ExampleCount", "NormalizedGini", "PercentileMape", "Spearman", "PayerAuc"} <= set(metrics)
    (gate,) = metrics["NormalizedGini"].per_slice_thresholds
    assert [list(s.feature_keys) for s in gate.slicing_specs] == [[]]  # overall slice only
    assert gate.threshold.value_threshold.lower_bound.value == pytest.approx(0.4)
    assert gate.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    assert not any(m.HasField("threshold") for m in metrics.values())


def test_checked_in_schema_matches_the_bundled_data(retail_slice):
    manifest, frame = retail_slice
    schema = schemas.read_schema(schemas.bundled_schema_file("online_retail_ii"))
    assert [f.name for f in schema.feature] == list(manifest.id_columns) + list(manifest.numeric_features) + \
        list(manifest.labels) + list(manifest.categorical_features)
    labels = {f.name: f for f in schema.feature if f.name in manifest.labels}
    assert all(f.float_domain.min == 0.0 for f in labels.values())
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema)
    assert not anomalies.anomaly_info, anomalies


def anomalies_artifact(tmp_path, frame, schema):
    """An ExampleAnomalies artifact as ExampleValidator writes it, for one split."""
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(["eval"])
    os.makedirs(os.path.join(artifact.uri, "Split-eval"))
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema)
    with open(os.path.join(artifact.uri, "Split-eval", components.ANOMALIES_FILE), "wb") as f:
        f.write(anomalies.SerializeToString())
    return artifact


def test_validation_gate_stops_on_anomalies_naming_the_feature(retail_slice, tmp_path):
    manifest, frame = retail_slice
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = str(tmp_path / "schema")
    os.makedirs(schema_artifact.uri)
    schema = schemas.read_schema(schemas.bundled_schema_file("online_retail_ii"))
    schemas.write_schema(schema, os.path.join(schema_artifact.uri, components.SCHEMA_FILE))
    bad = frame.copy()
    bad.loc[bad.index[0], "cltv_365"] = -5.0
    with pytest.raises(components.DataValidationError, match=r"split 'eval': feature 'cltv_365'"):
        components.ValidationGate.test_call(anomalies=anomalies_artifact(tmp_path / "bad", bad, schema),
                                            schema=schema_artifact, validated_schema=standard_artifacts.Schema())
    passed = standard_artifacts.Schema()
    passed.uri = str(tmp_path / "validated")
    os.makedirs(passed.uri)
    components.ValidationGate.test_call(anomalies=anomalies_artifact(tmp_path / "good", frame, schema),
                                        schema=schema_artifact, validated_schema=passed)
    assert schemas.read_schema(os.path.join(passed.uri, components.SCHEMA_FILE)) == schema


def test_the_evaluator_decodes_only_the_label_and_the_slice_features(retail_slice, tmp_path):
    manifest, _ = retail_slice
    nodes = {node.id: node for node in local_runner.build(manifest.root, str(tmp_path / "out")).components}
    assert nodes["Evaluator"].inputs["schema"].producer_component_id == "EvaluationSchema"
    assert nodes["EvaluationSchema"].inputs["schema"].producer_component_id == "ValidationGate"
    wanted = ["cltv_365", *manifest.slice_features]
    assert nodes["EvaluationSchema"].exec_properties["features"] == ",".join(wanted)

    full, projected = standard_artifacts.Schema(), standard_artifacts.Schema()
    for artifact, name in ((full, "full"), (projected, "projected")):
        artifact.uri = str(tmp_path / name)
        os.makedirs(artifact.uri)
    schema = schemas.read_schema(schemas.bundled_schema_file(online_retail.NAME))
    schemas.write_schema(schema, os.path.join(full.uri, components.SCHEMA_FILE))
    components.EvaluationSchema.test_call(schema=full, evaluation_schema=projected, features=",".join(wanted))
    kept = schemas.read_schema(os.path.join(projected.uri, components.SCHEMA_FILE))
    assert [f.name for f in kept.feature] == wanted
    assert list(kept.feature) == [next(f for f in schema.feature if f.name == name) for name in wanted]
    with pytest.raises(ValueError, match="schema has no feature 'no_such_feature'"):
        schemas.project_schema(schema, ["cltv_365", "no_such_feature"])


def test_inferred_schema_is_curated_with_non_negative_labels(retail_slice):
    manifest, frame = retail_slice
    inferred = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame))
    curated = schemas.curate_inferred_schema(inferred, manifest.labels, manifest.id_columns)
    by_name = {f.name: f for f in curated.feature}
    assert all(by_name[label].float_domain.min == 0.0 for label in manifest.labels)
    assert not by_name["customer_id"].HasField("domain") and not by_name["customer_id"].HasField("string_domain")
    bad = frame.copy()
    bad.loc[bad.index[0], "cltv_30"] = -1.0
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(bad), curated)
    assert "cltv_30" in anomalies.anomaly_info
    with pytest.raises(MeanTFError, match="cltv_999"):
        schemas.curate_inferred_schema(inferred, ["cltv_999"], [])


def test_the_summary_folds_slices_under_fifty_customers_into_one_row():
    from pipeline import local_runner

    metrics = {"Overall": {"example_count": 6802.0, "normalized_gini": 0.86},
               "country:United Kingdom": {"example_count": 6100.0, "normalized_gini": 0.85},
               "country:Korea": {"example_count": 1.0, "normalized_gini": float("nan")},
               "country:Cyprus": {"example_count": 12.0, "normalized_gini": 0.2, "percentile_mape": 16.6}}
    summary = local_runner.RunSummary({"Evaluator": "COMPLETE"}, metrics, True, "/serving/1", None, None)
    text = local_runner.format_summary(summary, ["example_count", "normalized_gini", "percentile_mape"])
    rows = [line.split()[0] for line in text.splitlines()[2:] if line and not line.startswith(("blessed", "pushed"))]
    assert "country:Korea" not in text and "country:Cyprus" not in text and "16.6" not in text
    assert "other (2 slices < 50)" in text and "nan" not in text
    assert rows[:3] == ["Evaluator", "Overall", "country:United"]
    other = next(line for line in text.splitlines() if line.startswith("other"))
    assert other.split()[5] == "13"  # 1 + 12 customers


def test_the_summary_says_why_a_model_was_blessed():
    from pipeline import local_runner

    first = local_runner.RunSummary({}, {"Overall": {"normalized_gini": 0.86}}, True, "/s/1", None, None,
                                    gini_floor=0.3, gini_max_drop=0.01)
    assert ("blessed: yes (test Gini 0.8600, floor 0.3; no earlier blessed model to compare with)"
            in local_runner.format_summary(first))
    worse = local_runner.RunSummary({}, {"Overall": {"normalized_gini": 0.80, "normalized_gini_diff": -0.06}}, False,
                                    None, None, None, gini_floor=0.3, gini_max_drop=0.01)
    assert ("blessed: no (test Gini 0.8000, floor 0.3; last blessed model 0.8600, change -0.0600, largest drop "
            "allowed 0.01)") in local_runner.format_summary(worse)


def _compile(tmp_path, **changes):
    write_tiny_dataset(tmp_path / "data", rows=100)
    args = dict(data_root="gs://bucket/data", pipeline_root="gs://bucket/root", serving_model_dir="gs://bucket/serving",
                output_file=str(tmp_path / "p.json"))
    settings = {"image": "gcr.io/project/mean-tf:test"}
    for key, value in changes.items():
        (args if key in args or key == "local_cluster_paths" else settings)[key] = value
    path = kubeflow_v2_runner.compile_pipeline(str(tmp_path / "data"), configs.PipelineSettings(**settings), **args)
    return open(path).read()


def test_compile_requests_trainer_resources_and_can_train_and_push_on_vertex(tmp_path):
    text = _compile(tmp_path, trainer_cpu=6, trainer_memory_gib=24)
    executors = json.loads(text)["pipelineSpec"]["deploymentSpec"]["executors"]
    trainer = next(e for name, e in executors.items() if name.startswith("Trainer"))
    assert trainer["container"]["resources"] == {"cpuLimit": 6.0, "memoryLimit": 24.0}
    assert "pipeline.pusher.Executor" in text  # the push-once Pusher

    vertex = _compile(tmp_path, serving_model_dir=None, vertex_project="my-project", vertex_region="europe-west4",
                      vertex_machine_type="n1-standard-16", vertex_endpoint="cltv",
                      vertex_serving_image="europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:latest")
    for needle in ("google_cloud_ai_platform.trainer.executor.GenericExecutor", "ai_platform_training_args",
                   "n1-standard-16", "my-project", "europe-west4", "google_cloud_ai_platform.pusher.executor",
                   "endpoint_name", "tf2-cpu.2-16", "ai_platform_enable_vertex"):
        assert needle in vertex, needle
    assert vertex.count("gcr.io/project/mean-tf:test") >= 2  # the pipeline image also runs the training job


@pytest.mark.parametrize("changes, message", [
    ({"image": "gcr.io/YOUR_PROJECT/mean-tf:0.1.0"}, "--image is required"),
    ({"data_root": None}, "--data-root is required"),
    ({"pipeline_root": "/home/me/root"}, "--pipeline-root '/home/me/root' is an absolute path on this machine"),
    ({"serving_model_dir": "serving"}, "--serving-dir 'serving' is a relative path"),
])
def test_compile_refuses_a_spec_the_cluster_cannot_run(changes, message, tmp_path):
    with pytest.raises(MeanTFError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _compile(tmp_path, **changes)
    assert _compile(tmp_path, local_cluster_paths=True, pipeline_root="/mnt/shared/root",
                    serving_model_dir="/mnt/shared/serving", data_root="/mnt/shared/data")


def test_dockerfile_builds_from_the_lock_and_the_package_in_its_context():
    """No Docker daemon here: check the build context instead (every COPY source exists and is not ignored)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dockerfile = open(os.path.join(root, "Dockerfile")).read()
    ignored = {line.strip() for line in open(os.path.join(root, ".dockerignore")) if line.strip()
               and not line.startswith("#")}
    sources = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert {"requirements.lock", "setup.py", "README.md", "mean_tf", "pipeline"} == set(sources)
    for src in sources:
        assert os.path.exists(os.path.join(root, src)) and src not in ignored, src
    assert "FROM python:3.10" in dockerfile  # TFX 1.16 needs 3.9 or 3.10 (setup.py's python_requires)
    assert "pip install -r requirements.lock" in dockerfile and "pip install --no-deps ." in dockerfile
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    assert {".venv", ".cache", "tests", "docs"} <= ignored
