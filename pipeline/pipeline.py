"""`create_pipeline`: the mean-tf TFX pipeline, every setting an argument (the TFX taxi template's layout).

ImportExampleGen (the dataset's own train/eval/test files, copied by `pipeline.example_gen`) -> StatisticsGen
-> schema (a given file, the curated one checked in for bundled data, or SchemaGen + CurateSchema) ->
ExampleValidator -> ValidationGate (anomalies stop the run) -> Transform (`mean_tf.transform.preprocessing.preprocessing_fn`)
-> [Tuner (`mean_tf.tfx_modules.tuner.tuner_fn`), optional] -> Trainer (`mean_tf.tfx_modules.trainer.run_fn`) -> EvaluationSchema (the label
and slice features) -> Evaluator (CLTV metrics on the test split, sliced, Gini gate against the last blessed model)
-> Pusher (to a serving folder, only when blessed, and only once: `pipeline.pusher`).
"""
from __future__ import annotations

import fnmatch
from typing import Optional, Sequence

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from mean_tf import contract
from mean_tf.contract import SCORE_SPLIT, SPLITS
from mean_tf.data.manifest import require_features
from mean_tf.errors import MeanTFError
from mean_tf.models import registry
from mean_tf.tfx_modules import tfma_metrics, trainer
from mean_tf.transform import preprocessing
from pipeline import components, configs
from pipeline.example_gen import CopyingImportExampleGen
from pipeline.pusher import OncePusher
from pipeline import schema as schemas

PREPROCESSING_FN = "mean_tf.transform.preprocessing.preprocessing_fn"
RUN_FN = "mean_tf.tfx_modules.trainer.run_fn"
TUNER_FN = "mean_tf.tfx_modules.tuner.tuner_fn"


def split_pattern(manifest, split: str) -> str:
    """ExampleGen's file pattern of one split: its file, or `<split>-*` when that matches exactly its files."""
    files = list(manifest.splits.get(split) or [])
    if not files:
        raise MeanTFError(f"dataset {manifest.name!r} has no {split!r} split (the pipeline needs {list(SPLITS)})")
    if len(files) == 1:
        return files[0]
    pattern = f"{split}-*"
    every_file = [f for files_ in manifest.splits.values() for f in files_]
    if sorted(fnmatch.filter(every_file, pattern)) != sorted(files) or any("/" in f for f in files):
        raise MeanTFError(f"dataset {manifest.name!r}: the {split!r} files cannot be selected by one pattern "
                          f"({pattern!r}); name them {split}-NNNNN-of-MMMMM.tfrecord.gz")
    return pattern


def eval_config(label: str, slice_features: Sequence[str], gini_floor: float, gini_max_drop: float) -> tfma.EvalConfig:
    """TFMA: the paper's CLTV metrics on `label`, overall and per slice feature; blessing on normalised Gini."""
    gini = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": gini_floor}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -gini_max_drop}))
    metrics = tfma_metrics.metric_configs()
    # The gate looks at the overall slice only: small slices have NaN or noisy metrics by design.
    gated = next(m for m in metrics if m.class_name == tfma_metrics.METRIC_CLASSES["normalized_gini"].__name__)
    gated.per_slice_thresholds.add(slicing_specs=[tfma.SlicingSpec()], threshold=gini)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=label,
                                    prediction_key=contract.CLTV_OUTPUT, model_type=tfma.constants.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[name]) for name in slice_features],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"), *metrics],
            example_weights=tfma.ExampleWeightOptions(unweighted=True))])


def create_pipeline(
    settings: configs.PipelineSettings,
    *,
    pipeline_root: str,
    manifest,
    serving_model_dir: Optional[str],
    data_root: Optional[str] = None,
    schema_file: Optional[str] = None,
    metadata_connection_config=None,
    score_manifest=None,
    score_data_root: Optional[str] = None,
) -> tfx.dsl.Pipeline:
    """The mean-tf pipeline for one dataset (`manifest`, read where the pipeline is built), as `settings` say
(`pipeline.configs.PipelineSettings`: the model, its config, label, blessing, Beam, Tuner, Vertex).

    data_root: the dataset folder as the components see it (default: the manifest's folder; a gs://
    path on Vertex). schema_file: a curated schema file; None takes the bundled dataset's curated
    schema from the mean_tf package, or, for user data, infers one (SchemaGen + CurateSchema).
    score_manifest: a scoring dataset (`mean-tf data transactions --score-date`, split "score"): a second
    ExampleGen imports it and a BulkInferrer scores it with the blessed model (`serving_default`, so the
    InferenceResult's PredictionLogs hold every serving output); score_data_root is its folder as the
    components see it (default: the manifest's folder).
    """
    model_name, label, vertex = settings.model_name, settings.label, settings.vertex
    config = settings.model_config.replace(labels=(label,))
    if label not in manifest.labels:
        raise MeanTFError(f"label {label!r} is not a label of dataset {manifest.name!r} ({manifest.labels})")
    if registry.spec(model_name).kind != "keras":
        raise MeanTFError(f"model {model_name!r} is classical: the pipeline serves Keras models only")

    example_gen_class = tfx.components.ImportExampleGen if settings.shuffle_examples else CopyingImportExampleGen
    example_gen = example_gen_class(
        input_base=data_root or manifest.root,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=s, pattern=split_pattern(manifest, s))
                                             for s in SPLITS])).with_id("ImportExampleGen")
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if schema_file:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
        schema = schema_gen.outputs["schema"]
        schema_nodes = [schema_gen]
    elif schemas.bundled_schema_file(manifest.name):
        schema_gen = components.BundledSchema(dataset_name=manifest.name)
        schema = schema_gen.outputs["schema"]
        schema_nodes = [schema_gen]
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
        curate = components.CurateSchema(schema=schema_gen.outputs["schema"], labels=",".join(manifest.labels),
                                         id_columns=",".join(manifest.id_columns))
        schema = curate.outputs["curated_schema"]
        schema_nodes = [schema_gen, curate]
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"], schema=schema)
    gate = components.ValidationGate(anomalies=example_validator.outputs["anomalies"], schema=schema)

    transform_component = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=gate.outputs["validated_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=preprocessing.transform_config(manifest, config, registry.labels(model_name, config)),
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
        disable_statistics=True)
    trainer_custom_config = trainer.trainer_config(model_name, config, label, manifest.features)
    training_inputs = dict(examples=transform_component.outputs["transformed_examples"],
                           transform_graph=transform_component.outputs["transform_graph"],
                           schema=gate.outputs["validated_schema"], train_args=tfx.proto.TrainArgs(splits=["train"]),
                           eval_args=tfx.proto.EvalArgs(splits=["eval"]))
    tuner_nodes, hyperparameters = [], None
    if settings.tune:
        from mean_tf.training import tuning

        tuner = tfx.components.Tuner(tuner_fn=TUNER_FN, **training_inputs, custom_config={
            **trainer_custom_config, "tuner_trials": int(settings.tuner_trials or tuning.TRIALS),
            "tuner_margin": float(settings.tuner_margin)})
        tuner_nodes, hyperparameters = [tuner], tuner.outputs["best_hyperparameters"]
    if vertex:
        from tfx.extensions.google_cloud_ai_platform import constants as vertex_keys
        from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer

        trainer_custom_config = {**trainer_custom_config, vertex_keys.ENABLE_VERTEX_KEY: True,
                                 vertex_keys.VERTEX_REGION_KEY: vertex["region"],
                                 vertex_trainer.TRAINING_ARGS_KEY: {"project": vertex["project"], "worker_pool_specs": [
                                     {"machine_spec": {"machine_type": vertex["machine_type"]}, "replica_count": 1,
                                      "container_spec": {"image_uri": vertex["image"]}}]}}
        trainer_class = tfx.extensions.google_cloud_ai_platform.Trainer
    else:
        trainer_class = tfx.components.Trainer
    trainer_component = trainer_class(run_fn=RUN_FN, hyperparameters=hyperparameters, **training_inputs,
                                      custom_config=trainer_custom_config).with_id("Trainer")
    if settings.image:  # compiled for Kubeflow/Vertex: the Trainer container's requests
        from kfp.pipeline_spec import pipeline_spec_pb2 as pipeline_pb2

        trainer_component = trainer_component.with_platform_config(
            pipeline_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
                cpu_limit=float(settings.trainer_resources["cpu"]), memory_limit=float(settings.trainer_resources["memory_gib"])))

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # The Evaluator decodes only the label and the slice features (the model parses the serialized examples).
    evaluation_schema = components.EvaluationSchema(schema=gate.outputs["validated_schema"],
                                                    features=",".join([label, *manifest.slice_features]))
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], schema=evaluation_schema.outputs["evaluation_schema"],
        model=trainer_component.outputs["model"],
        baseline_model=model_resolver.outputs["model"], example_splits=["test"],
        eval_config=eval_config(label, manifest.slice_features, settings.gini_floor, settings.gini_max_drop))
    if vertex and vertex.get("endpoint"):
        from tfx.extensions.google_cloud_ai_platform import constants as vertex_keys

        pusher = tfx.extensions.google_cloud_ai_platform.Pusher(
            model=trainer_component.outputs["model"], model_blessing=evaluator.outputs["blessing"],
            custom_config={vertex_keys.ENABLE_VERTEX_KEY: True, vertex_keys.VERTEX_REGION_KEY: vertex["region"],
                           vertex_keys.VERTEX_CONTAINER_IMAGE_URI_KEY: vertex["serving_image"],
                           vertex_keys.SERVING_ARGS_KEY: {"project_id": vertex["project"],
                                                          "endpoint_name": vertex["endpoint"]}}).with_id("Pusher")
    else:
        pusher = OncePusher(
            model=trainer_component.outputs["model"], model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir))).with_id("Pusher")

    scoring_nodes = []
    if score_manifest is not None:
        if SCORE_SPLIT not in score_manifest.splits:
            raise MeanTFError(f"dataset {score_manifest.name!r} is not a scoring dataset (no split {SCORE_SPLIT!r}); "
                              f"build one with `mean-tf data transactions --score-date`")
        require_features(score_manifest, manifest.features, f"the training dataset {manifest.name!r}")
        score_gen = CopyingImportExampleGen(
            input_base=score_data_root or score_manifest.root,
            input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(
                name=SCORE_SPLIT, pattern=split_pattern(score_manifest, SCORE_SPLIT))]),
            output_config=tfx.proto.Output()).with_id("ScoreExampleGen")  # one split kept as is (no 2:1 re-split)
        bulk_inferrer = tfx.components.BulkInferrer(
            examples=score_gen.outputs["examples"], model=trainer_component.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=tfx.proto.DataSpec(example_splits=[SCORE_SPLIT]),
            model_spec=tfx.proto.ModelSpec(model_signature_name=["serving_default"])).with_id("BulkInferrer")
        scoring_nodes = [score_gen, bulk_inferrer]

    return tfx.dsl.Pipeline(
        pipeline_name=settings.pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, *schema_nodes, example_validator, gate, transform_component,
                    *tuner_nodes, trainer_component, model_resolver, evaluation_schema, evaluator, pusher, *scoring_nodes],
        enable_cache=settings.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(settings.beam_pipeline_args))
