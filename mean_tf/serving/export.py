"""The servable SavedModel: the Transform graph, the model and its serving extras behind one signature.


The SavedModel (a plain tf.Module, so TF Serving's TF1 loader and TFMA's generic loader
both read it) has three signatures:
- `serving_default(examples)`: serialized raw tf.Example without label -> Transform graph -> model ->
  `cltv` [B], the pipeline label's CLTV in money (inverse label transform, >= 0), calibrated on the
  eval split (`mean_tf.training.calibration`, strictly increasing: the ranking is the model's), and
  `cltv_uncalibrated` [B], the model's own money value; `<label>` [B] per model label (calibrated; all
  four for a multi-horizon model); `p_payer` [B] where the model has one (ZILN: its payer probability;
  a DAM head: 1 - P(bucket 0)); `cltv_q10/q50/q90` [B] for ZILN models and `bucket_probs`, `bucket_lower`,
  `bucket_upper` [B, n] (the bucket ranges in money) for DAM models (`mean_tf.serving.uncertainty`); and
  `inputs_out_of_range` [B], how many of the example's numeric features lay beyond their bound recorded at
  training time (`feature_bounds`: |z| <= FEATURE_BOUND_FACTOR x max(1, the train split's largest |z|), z the
  model's standardized input): such a value is clipped to its bound, so one odd customer cannot stop a batch.
  A request fails with InvalidArgumentError naming the feature when a feature is missing, non-finite or
  beyond |x| <= 1e15 (the dataset builders' bound, `mean_tf.data.manifest.MAX_ABS_VALUE`), or when an
  example is malformed (TF Serving answers it with an error; the server keeps running);
- `transform_features(examples)`: serialized raw tf.Example -> the transformed features (the model's inputs
  and the scaled labels, for inspection; TFMA's `preprocessing_function_names` can slice on them);
- `out_of_range_features(examples)`: serialized raw tf.Example without label -> `beyond` [B, F], which numeric
  features (in the order of the model info's `numeric_features`) `serving_default` clipped.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Optional, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf import contract
from mean_tf.contract import (BEYOND_OUTPUT, BUCKET_LOWER_OUTPUT, BUCKET_PROBS_OUTPUT, BUCKET_UPPER_OUTPUT,
                              CATEGORICAL_PREFIX, CLTV_OUTPUT, MODEL_INFO_FILE, NUMERIC_KEY, OUT_OF_RANGE_OUTPUT,
                              OUT_OF_RANGE_SIGNATURE, PAYER_OUTPUT, SERVING_INPUT, UNCALIBRATED_OUTPUT)
from mean_tf.data.manifest import MAX_ABS_VALUE
from mean_tf.errors import MeanTFError
from mean_tf.models import ziln_distribution
from mean_tf.serving import uncertainty
from mean_tf.training import calibration, protocol
from mean_tf.transform import preprocessing

# Serving clips (and counts in OUT_OF_RANGE_OUTPUT) a numeric feature whose standardized value |z| exceeds this
# factor times the train split's largest |z| (at least 1): ten times farther out than any training customer.
FEATURE_BOUND_FACTOR = 10.0


@dataclasses.dataclass
class ServingExtras:
    """What the serving graph adds to the model, fitted after training: a money calibration per label
    (eval split), the bound of each numeric feature's standardized value and, for bucket models, each
    bucket's money range per label (both from the train split)."""

    calibrations: Dict[str, calibration.Calibration] = dataclasses.field(default_factory=dict)
    bucket_ranges: Dict[str, tuple] = dataclasses.field(default_factory=dict)  # label -> (lower [n], upper [n])
    feature_bounds: Optional[np.ndarray] = None  # [F] bound of |z|, in the order of the numeric features

    def to_dict(self) -> dict:
        return {"calibrations": {k: c.to_dict() for k, c in self.calibrations.items()},
                "bucket_ranges": {k: {"lower": list(map(float, lo)), "upper": list(map(float, up))}
                                  for k, (lo, up) in self.bucket_ranges.items()},
                "feature_bounds": None if self.feature_bounds is None else list(map(float, self.feature_bounds))}


def serving_extras(result: protocol.FitResult, train_files: Sequence[str], eval_files: Sequence[str],
                   transform_dir: str) -> ServingExtras:
    """Fit the `ServingExtras` of a trained model (`config.calibration` "none": no calibration)."""
    model, config = result.model, result.model.config
    labels = list(config.labels)
    spec = tft.TFTransformOutput(transform_dir).transformed_feature_spec()
    extras = ServingExtras()
    if config.calibration != "none":
        data = protocol.make_dataset(eval_files, spec, labels, config.batch_size)
        predicted = protocol.predict_money(model, data, result.label_transform, labels)
        extras.calibrations = calibration.fit_columns(predicted, protocol.dataset_targets(data, "raw"), labels,
                                                      config.calibration)
    dam = bool(getattr(model, "dams", None))  # a DAM head: bucket probabilities to give money ranges to
    largest, money, bucket = None, [], []
    for inputs, targets in protocol.make_dataset(train_files, spec, labels, config.batch_size):  # one pass
        if NUMERIC_KEY in inputs:
            batch_max = np.abs(inputs[NUMERIC_KEY].numpy()).max(axis=0)
            largest = batch_max if largest is None else np.maximum(largest, batch_max)
        if dam:
            money.append(targets["raw"].numpy())
            bucket.append(targets["bucket"].numpy())
    if largest is not None:
        extras.feature_bounds = FEATURE_BOUND_FACTOR * np.maximum(largest, 1.0)
    if dam:
        money, bucket = np.concatenate(money), np.concatenate(bucket)
        extras.bucket_ranges = {label: uncertainty.bucket_money_ranges(money[:, i], bucket[:, i],
                                                                        config.num_distributions)
                                for i, label in enumerate(labels)}
    return extras


def serving_feature_spec(raw_spec: Dict, raw_features: Sequence[str]) -> Dict:
    """Parsing spec of the served features: the Transform's raw spec, every feature required (no default),
    so a request that lacks one fails with TensorFlow's message naming it."""
    return {name: raw_spec[name] for name in raw_features}


def refuse_beyond(x, bound: float, message: str):
    """`x`, or InvalidArgumentError "`message` : Tensor had NaN values" when a value is non-finite or
    |x| > bound. A data dependency (not a control-flow Assert), so TF Serving's TF1 loader runs it too."""
    x = tf.convert_to_tensor(x)
    return tf.debugging.check_numerics(tf.where(tf.abs(x) <= bound, x, tf.fill(tf.shape(x), np.nan)), message)


def clip_to_bounds(z, bounds: Sequence[float], names: Sequence[str]):
    """(z [B, F] with each column clipped to +-its bound, which values were beyond it [B, F]). A non-finite z
    (a transform gone wrong: raw inputs are checked before) fails naming the feature."""
    z = tf.stack([tf.debugging.check_numerics(z[:, j], f"feature {name!r}: its standardized value is not finite")
                  for j, name in enumerate(names)], axis=1)
    bound = tf.constant(np.asarray(bounds, np.float32))[None, :]
    return tf.clip_by_value(z, -bound, bound), tf.abs(z) > bound


def export_serving_model(model: tf.keras.Model, tf_transform_output, label: str, raw_features: Sequence[str],
                         export_dir: str, extras: Optional[ServingExtras] = None) -> str:
    """Write the servable SavedModel (see the module docstring) for `label`, one of the model's labels.
    Without `extras` (or a label missing from them) the money is served uncalibrated."""
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
    numeric = [name for name in raw_features if raw_spec[name].dtype != tf.string]  # NUMERIC_KEY's columns
    extras = extras or ServingExtras()
    if extras.feature_bounds is not None and len(extras.feature_bounds) != len(numeric):
        raise MeanTFError(f"{len(extras.feature_bounds)} feature bounds for {len(numeric)} numeric features")
    clashes = [name for name in labels if name in (CLTV_OUTPUT, UNCALIBRATED_OUTPUT, PAYER_OUTPUT, OUT_OF_RANGE_OUTPUT)]
    if clashes:
        raise MeanTFError(f"label name {clashes[0]!r} clashes with a serving output name")
    log_caps = ziln_distribution.log_prediction_caps(config, model.facts)

    module = tf.Module()
    module.model_variables = list(model.variables)  # the weights; tracking the Keras model would re-trace every layer
    module.tft_layer = tf_transform_output.transform_features_layer()

    def checked_inputs(examples):
        """(the Transform's outputs, the model's inputs with out-of-range values clipped, which numeric inputs
        were beyond their bounds [B, F]) of serialized raw examples; missing or non-finite values fail."""
        raw = tf.io.parse_example(examples, serving_spec)
        raw.update({name: refuse_beyond(raw[name], MAX_ABS_VALUE, f"feature {name!r} must be finite with "
                                        f"|x| <= {MAX_ABS_VALUE:g}") for name in numeric})
        transformed = module.tft_layer(raw)
        inputs = {k: v for k, v in transformed.items() if k == NUMERIC_KEY or k.startswith(CATEGORICAL_PREFIX)}
        beyond = tf.zeros([tf.shape(examples)[0], len(numeric)], tf.bool)
        if extras.feature_bounds is not None and NUMERIC_KEY in inputs:
            inputs[NUMERIC_KEY], beyond = clip_to_bounds(inputs[NUMERIC_KEY], extras.feature_bounds, numeric)
        return transformed, inputs, beyond

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(examples):
        transformed, inputs, beyond = checked_inputs(examples)
        result = {OUT_OF_RANGE_OUTPUT: tf.reduce_sum(tf.cast(beyond, tf.int32), axis=1)}
        outputs = model(inputs, training=False)
        for i, name in enumerate(labels):
            cltv = outputs["cltv"][:, i]
            if model.output_space == "money":
                money = tf.maximum(cltv, 0.0)
            else:
                scale = transformed.get(name + contract.SCALE_SUFFIX)
                money = preprocessing.to_money(cltv, config.label_scaling, config.label_clip, scale)
            if name == label:
                result[UNCALIBRATED_OUTPUT] = money
            if name in extras.calibrations:
                money = extras.calibrations[name].apply_tf(money)
            result[name] = money
        result[CLTV_OUTPUT] = result[label]
        if "ziln_logits" in outputs:
            logits = outputs["ziln_logits"][:, column, :]
            result[PAYER_OUTPUT] = tf.sigmoid(logits[:, 0])
            quantiles = uncertainty.ziln_quantiles_tf(logits, uncertainty.QUANTILES, log_caps[column])
            for j, q in enumerate(uncertainty.QUANTILES):
                result[uncertainty.quantile_name(q)] = quantiles[:, j]
        if BUCKET_PROBS_OUTPUT in outputs:
            probs = outputs[BUCKET_PROBS_OUTPUT]
            probs = probs[:, column, :] if probs.shape.rank == 3 else probs
            result[BUCKET_PROBS_OUTPUT] = probs
            result[PAYER_OUTPUT] = 1.0 - probs[:, 0]
            if label in extras.bucket_ranges:
                batch = tf.shape(probs)[0:1]
                for key, edges in zip((BUCKET_LOWER_OUTPUT, BUCKET_UPPER_OUTPUT), extras.bucket_ranges[label]):
                    row = tf.constant(np.asarray(edges, dtype=np.float32))[None, :]
                    result[key] = tf.tile(row, tf.concat([batch, [1]], axis=0))
        return result

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def transform_features(examples):
        return module.tft_layer(tf.io.parse_example(examples, raw_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def out_of_range_features(examples):
        return {BEYOND_OUTPUT: checked_inputs(examples)[2]}

    tf.saved_model.save(module, export_dir, signatures={"serving_default": serve, "transform_features": transform_features,
                                                        OUT_OF_RANGE_SIGNATURE: out_of_range_features})
    info = {"label": label, "labels": labels, "raw_features": list(raw_features), "numeric_features": numeric,
            "calibrated": sorted(extras.calibrations), **extras.to_dict(),
            "config": config.to_dict(), "facts": model.facts.to_dict()}
    tf.io.gfile.makedirs(os.path.join(export_dir, os.path.dirname(MODEL_INFO_FILE)))  # gs:// on Vertex
    with tf.io.gfile.GFile(os.path.join(export_dir, MODEL_INFO_FILE), "w") as f:
        f.write(json.dumps(info, indent=2))
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
