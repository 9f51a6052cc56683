"""TFX Trainer user code: `run_fn` fits the configured model under the training protocol
(`mean_tf.training.protocol`) and exports the servable SavedModel (`mean_tf.serving.export`).
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf.config import MEANConfig
from mean_tf.contract import CALIBRATION_FILE, FIT_SUMMARY_FILE, VERBOSE_ENV
from mean_tf.errors import MeanTFError
from mean_tf.serving.export import export_serving_model, serving_extras
from mean_tf.training import protocol


def trainer_config(model_name: str, config: MEANConfig, label: str, raw_features: Sequence[str]) -> dict:
    """The Trainer's `custom_config`: model name, MEANConfig, the served label and the raw input features."""
    return {"model_name": model_name, "config": config.to_dict(), "label": label,
            "raw_features": list(raw_features)}


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: fit the configured model on transformed examples, export the servable model."""
    custom = fn_args.custom_config or {}
    for key in ("model_name", "config", "label", "raw_features"):
        if key not in custom:
            raise MeanTFError(f"Trainer custom_config lacks {key!r} (build it with mean_tf.tfx_modules.trainer.trainer_config)")
    config = MEANConfig.from_dict(custom["config"])
    if fn_args.hyperparameters:  # the Tuner's best_hyperparameters (`create_pipeline(tune=True)`)
        import keras_tuner

        from mean_tf.training import tuning

        config = tuning.apply(config, keras_tuner.HyperParameters.from_config(fn_args.hyperparameters).values)
    verbose = 2 if os.environ.get(VERBOSE_ENV) else 0  # `mean-tf --verbose`: Keras' line per epoch
    result = protocol.fit(custom["model_name"], config, fn_args.transform_output, fn_args.train_files,
                          fn_args.eval_files, log_dir=fn_args.model_run_dir, backup_dir=custom.get("backup_dir"),
                          verbose=verbose)
    print(f"Trainer: {len(result.history['loss'])} epochs ({result.steps} steps), selected epoch "
          f"{result.best_epoch + 1} with eval {config.selection_metric} {result.selection:.4f}", flush=True)
    summary = {"best_epoch": result.best_epoch, "steps": result.steps, "hit_max_steps": result.hit_max_steps,
               "selection": result.selection, "config": result.config.to_dict(), "facts": result.facts.to_dict(),
               "history": result.history}
    extras = serving_extras(result, fn_args.train_files, fn_args.eval_files, fn_args.transform_output)
    for name, values in ((FIT_SUMMARY_FILE, summary), (CALIBRATION_FILE, extras.to_dict())):
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, name), "w") as f:  # gs:// on Vertex
            f.write(json.dumps(values, indent=2))
    export_dir = fn_args.serving_model_dir if _is_chief() else tempfile.mkdtemp(prefix="mean_tf_worker_export_")
    export_serving_model(result.model, tft.TFTransformOutput(fn_args.transform_output), custom["label"],
                         custom["raw_features"], export_dir, extras)


def _is_chief() -> bool:
    """True for the task that writes the model: no cluster, the chief, or worker 0 of a chief-less cluster."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    if task.get("type") in (None, "chief"):
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in tf_config.get("cluster", {})
