"""TFX Trainer user code (`run_fn='mean_tf.trainer.run_fn'`) and the servable export.

The exported SavedModel (a plain tf.Module, so TF Serving's TF1 loader and TFMA's generic loader
both read it) has two signatures:
- `serving_default(examples)`: serialized raw tf.Example without label -> Transform graph -> model ->
  `cltv` [B], the pipeline label's CLTV in money (inverse label transform, >= 0), and
  `bucket_probs` [B, n] when the model has a DAM head. A feature missing from an example takes its
  serving default (`serving_feature_spec`); a malformed example fails the request with
  InvalidArgumentError (TF Serving answers it with an error; the server keeps running);
- `transform_features(examples)`: serialized raw tf.Example -> the transformed features (for TFMA).
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf import training, transform
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.layers import CATEGORICAL_PREFIX, NUMERIC_KEY

SERVING_INPUT = "examples"
CLTV_OUTPUT = "cltv"
BUCKET_PROBS_OUTPUT = "bucket_probs"
VERBOSE_ENV = "MEAN_TF_VERBOSE"  # set by `mean-tf --verbose`


def trainer_config(model_name: str, config: MEANConfig, label: str, raw_features: Sequence[str]) -> dict:
    """The Trainer's `custom_config`: model name, MEANConfig, the served label and the raw input features."""
    return {"model_name": model_name, "config": config.to_dict(), "label": label,
            "raw_features": list(raw_features)}


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fit the configured model on transformed examples, export the servable model."""
    custom = fn_args.custom_config or {}
    for key in ("model_name", "config", "label", "raw_features"):
        if key not in custom:
            raise MeanTFError(f"Trainer custom_config lacks {key!r} (build it with mean_tf.trainer.trainer_config)")
    config = MEANConfig.from_dict(custom["config"])
    if fn_args.hyperparameters:  # the Tuner's best_hyperparameters (`create_pipeline(tune=True)`)
        import keras_tuner

        from mean_tf import tuning

        config = tuning.apply(config, keras_tuner.HyperParameters.from_config(fn_args.hyperparameters).values)
    verbose = 2 if os.environ.get(VERBOSE_ENV) else 0  # `mean-tf --verbose`: Keras' line per epoch
    result = training.fit(custom["model_name"], config, fn_args.transform_output, fn_args.train_files,
                          fn_args.eval_files, log_dir=fn_args.model_run_dir, backup_dir=custom.get("backup_dir"),
                          verbose=verbose)
    print(f"Trainer: {len(result.history['loss'])} epochs ({result.steps} steps), selected epoch "
          f"{result.best_epoch + 1} with eval {config.selection_metric} {result.selection:.4f}", flush=True)
    with open(os.path.join(fn_args.model_run_dir, "fit_summary.json"), "w", encoding="utf-8") as f:
        json.dump({"best_epoch": result.best_epoch, "steps": result.steps, "hit_max_steps": result.hit_max_steps,
                   "selection": result.selection, "config": result.config.to_dict(), "history": result.history},
                  f, indent=2)
    export_dir = fn_args.serving_model_dir if _is_chief() else tempfile.mkdtemp(prefix="mean_tf_worker_export_")
    export_serving_model(result.model, tft.TFTransformOutput(fn_args.transform_output), custom["label"],
                         custom["raw_features"], export_dir)


def _is_chief() -> bool:
    """True for the task that writes the model: no cluster, the chief, or worker 0 of a chief-less cluster."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    if task.get("type") in (None, "chief"):
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in tf_config.get("cluster", {})


def serving_feature_spec(raw_spec: Dict, raw_features: Sequence[str]) -> Dict:
    """Parsing spec of the served features: the Transform's raw spec, with a default for a missing feature.

    The default is 0 for a numeric feature (no orders, no spend: a customer without that history) and
    "" for a categorical one (the out-of-vocabulary bucket); the Transform then treats it like any value.
    """
    spec = {}
    for name in raw_features:
        feature = raw_spec[name]
        if isinstance(feature, tf.io.FixedLenFeature):
            default = "" if feature.dtype == tf.string else 0
            feature = tf.io.FixedLenFeature(feature.shape, feature.dtype, default_value=default)
        spec[name] = feature
    return spec


def export_serving_model(model: tf.keras.Model, tf_transform_output, label: str, raw_features: Sequence[str],
                         export_dir: str) -> str:
    """Write the servable SavedModel (see the module docstring) for `label`, one of the model's labels."""
    labels = list(model.config.labels)
    if label not in labels:
        raise MeanTFError(f"label {label!r} is not one of the model's labels {labels}")
    column = labels.index(label)
    config = model.config
    raw_spec = tf_transform_output.raw_feature_spec()
    missing = [name for name in raw_features if name not in raw_spec]
    if missing:
        raise MeanTFError(f"raw feature {missing[0]!r} is not in the Transform's raw schema")
    serving_spec = serving_feature_spec(raw_spec, raw_features)

    module = tf.Module()
    module.model_variables = list(model.variables)  # the weights; tracking the Keras model would re-trace every layer
    module.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(examples):
        transformed = module.tft_layer(tf.io.parse_example(examples, serving_spec))
        inputs = {k: v for k, v in transformed.items() if k == NUMERIC_KEY or k.startswith(CATEGORICAL_PREFIX)}
        outputs = model(inputs, training=False)
        cltv = outputs["cltv"][:, column]
        if model.output_space == "money":
            money = tf.maximum(cltv, 0.0)
        else:
            scale = transformed.get(label + transform.SCALE_SUFFIX)
            money = transform.to_money(cltv, config.label_scaling, config.label_clip, scale)
        result = {CLTV_OUTPUT: money}
        if BUCKET_PROBS_OUTPUT in outputs:
            probs = outputs[BUCKET_PROBS_OUTPUT]
            result[BUCKET_PROBS_OUTPUT] = probs[:, column, :] if probs.shape.rank == 3 else probs
        return result

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def transform_features(examples):
        return module.tft_layer(tf.io.parse_example(examples, raw_spec))

    tf.saved_model.save(module, export_dir,
                        signatures={"serving_default": serve, "transform_features": transform_features})
    return export_dir


def predict_serialized(export_dir: str, serialized: Sequence[bytes]) -> Dict[str, "object"]:
    """Run `serving_default` the way TF Serving does: TF1 loader in a Session. Returns numpy outputs."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        feeds = {signature.inputs[SERVING_INPUT].name: list(serialized)}
        fetches = {key: info.name for key, info in signature.outputs.items()}
        return session.run(fetches, feed_dict=feeds)
