"""The TF Transform graph of mean-tf: `preprocessing_fn` (used by the TFX Transform, the benchmark and
`mean-tf train`), the label transform and its inverse, and `materialize` (Transform run with Beam).

Transformed features (docs/design.md):
- `numeric` float32 [B, D]: manifest numeric features in order; money features `sign(x)·log1p(|x|)`,
  then each column z-scored with train statistics;
- `cat__<name>` int64 [B]: vocabulary id, `NUM_OOV_BUCKETS` extra ids for unseen values (the files
  `tft.vocabulary` writes, all from one analyzer: `mean_tf.transform.vocabulary`);
- per label L: `L` (money), `L__scaled` (sec. 4.1: scaled and clipped to [0, label_clip]),
  `L__bucket` (0 for a zero label, 1..n-1 = quantile ranges of the positive scaled labels), and,
  with label_scaling == "scale", `L__scale`: the Transform constant the label was divided by,
  repeated per example. It depends on no label, so it survives at serving time (where labels are
  missing and TFT drops every output that needs them) and the money inverse needs nothing else;
  `L__max`: the largest train label (money), the same way (the ZILN prediction cap, `mean_tf.models.ziln_distribution`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf.contract import BUCKET_SUFFIX, MAX_SUFFIX, SCALE_SUFFIX, SCALED_SUFFIX, SPLITS, VOCAB_PREFIX
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.contract import CATEGORICAL_PREFIX, NUMERIC_KEY

NUM_OOV_BUCKETS = 1
QUANTILE_EPSILON = 1e-3
TRANSFORMED_DIR = "transformed"
MATERIALIZE_RECORD = "materialize.json"


# --- custom_config ------------------------------------------------------------------------------
def transform_config(manifest, config: MEANConfig, labels: Optional[Sequence[str]] = None) -> dict:
    """The `custom_config` of the Transform: feature lists from the manifest, label settings from the config.

    `labels`: the labels to transform; default every label of the manifest, so that one Transform
    serves single- and multi-horizon models (the benchmark); the pipeline passes its model's labels.
    """
    labels = list(manifest.labels if labels is None else labels)
    unknown = [label for label in labels if label not in manifest.labels]
    if unknown:
        raise MeanTFError(f"label {unknown[0]!r} is not a label of dataset {manifest.name!r} ({list(manifest.labels)})")
    return {
        "numeric_features": list(manifest.numeric_features),
        "money_features": list(manifest.money_features),
        "categorical_features": list(manifest.categorical_features),
        "labels": labels,
        "label_scaling": config.label_scaling,
        "label_clip": float(config.label_clip),
        "num_distributions": int(config.num_distributions),
        "bucket_boundaries": list(config.bucket_boundaries) if config.bucket_boundaries is not None else None,
        "numeric_encoding": config.numeric_encoding,
        "numeric_bins": int(config.numeric_bins),
    }


def raw_feature_spec(custom_config: Mapping, with_labels: bool = True) -> Dict[str, tf.io.FixedLenFeature]:
    """tf.Example parsing spec of the raw model inputs (and labels): every value is a scalar."""
    spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in custom_config["numeric_features"]}
    spec.update({name: tf.io.FixedLenFeature([], tf.string) for name in custom_config["categorical_features"]})
    if with_labels:
        spec.update({name: tf.io.FixedLenFeature([], tf.float32) for name in custom_config["labels"]})
    return spec


# --- preprocessing_fn ---------------------------------------------------------------------------
def _as_vector(x, default):
    """A [B] dense tensor from a dense [B] / [B, 1] tensor or a SparseTensor of at most one value per row."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.sparse.reset_shape(x, [x.dense_shape[0], 1]), default_value=default)
    return tf.reshape(x, [-1])


def signed_log1p(x):
    """sign(x)·log1p(|x|): compresses heavy-tailed money features, keeps refunds negative."""
    return tf.sign(x) * tf.math.log1p(tf.abs(x))


def scale_label(money, scaling: str, clip: float, scale=None):
    """The paper's scaled label (sec. 4.1): log1p(y), or y / scale, clipped to [0, clip]."""
    money = tf.maximum(tf.cast(money, tf.float32), 0.0)
    scaled = tf.math.log1p(money) if scaling == "log1p" else money / scale
    return tf.clip_by_value(scaled, 0.0, clip)


def to_money(scaled, scaling: str, clip: float, scale=None):
    """Inverse of `scale_label` (clipped to [0, clip] first): money >= 0."""
    scaled = tf.clip_by_value(tf.cast(scaled, tf.float32), 0.0, clip)
    if scaling == "log1p":
        return tf.math.expm1(scaled)
    if scale is None:
        raise MeanTFError("label_scaling='scale' needs the Transform constant (the `<label>__scale` output)")
    return scaled * tf.cast(scale, tf.float32)


# Numeric features and the analyzers' sums are computed in float64 and rounded to float32: Beam sums partial
# results in an order, and batches rows in positions, that change from run to run, and in float32 both moved
# the last bits (float32 log1p differs by a unit in the last place between vectorised and scalar positions),
# so two Transform runs gave different z-scores and label scales and the Trainer a different model.
ANALYZER_DTYPE = tf.float64


def preprocessing_fn(inputs, custom_config):
    """TFT graph from raw features to the transformed-feature contract (see the module docstring)."""
    cfg = custom_config
    outputs = {}
    batch_anchor = None
    numeric = []
    for name in cfg["numeric_features"]:
        x = tf.cast(_as_vector(inputs[name], 0.0), ANALYZER_DTYPE)
        if name in cfg["money_features"]:
            x = signed_log1p(x)
        numeric.append(x)
        batch_anchor = x
    if numeric:
        # One analyzer for all columns (elementwise: a mean and variance per column), not one per column:
        # 648 per-column analyzers made Beam build a graph of thousands of stages (~20 min before any data flowed).
        stacked = tf.stack(numeric, axis=1)
        if cfg.get("numeric_encoding", "zscore") == "zscore":
            outputs[NUMERIC_KEY] = tf.cast(tft.scale_to_z_score(stacked, elementwise=True), tf.float32)
        else:  # "ple" / "bins": each value's position among its feature's quantile bins; the model encodes it
            bins = int(cfg["numeric_bins"])
            boundaries = tft.quantiles(stacked, bins, QUANTILE_EPSILON, reduce_instance_dims=False)
            low, high = tft.min(stacked, reduce_instance_dims=False), tft.max(stacked, reduce_instance_dims=False)
            outputs[NUMERIC_KEY] = tf.cast(quantile_position(stacked, boundaries, low, high), tf.float32)
    categorical = {name: _as_vector(inputs[name], "") for name in cfg["categorical_features"]}
    outputs.update(_categorical_outputs(categorical))
    if batch_anchor is None and categorical:
        batch_anchor = next(iter(categorical.values()))
    for label in cfg["labels"]:
        outputs.update(_label_outputs(label, inputs[label], cfg, batch_anchor))
    return outputs


def quantile_position(x, boundaries, low, high):
    """Each value's position among its feature's quantile bins, in [0, K]: k + the fraction of the way through
    bin k, the bins of feature d running low[d], boundaries[d, 0..K-2], high[d] (x [B, D], boundaries [D, K-1]).

    The piecewise-linear encoding of x on those bins (Gorishniy et al. 2022) is then clip(q - t, 0, 1) for
    t = 0..K-1 (`mean_tf.models.layers.FeatureEncoder`). Values outside [low, high] sit at 0 or K; a bin of zero
    width (tied boundaries) gives the fraction 0.
    """
    x = tf.convert_to_tensor(x)
    edges = tf.concat([tf.reshape(low, [-1, 1]), tf.cast(boundaries, x.dtype), tf.reshape(high, [-1, 1])], axis=1)
    x = tf.clip_by_value(x, edges[:, 0], edges[:, -1])
    bin_index = tf.reduce_sum(tf.cast(x[:, :, None] >= edges[None, :, 1:-1], tf.int32), axis=2)  # [B, D] in 0..K-1
    lower = tf.transpose(tf.gather(edges, tf.transpose(bin_index), batch_dims=1))
    upper = tf.transpose(tf.gather(edges, tf.transpose(bin_index) + 1, batch_dims=1))
    width = upper - lower
    fraction = tf.where(width > 0, (x - lower) / tf.where(width > 0, width, tf.ones_like(width)), tf.zeros_like(x))
    return tf.cast(bin_index, x.dtype) + tf.clip_by_value(fraction, 0.0, 1.0)


def _categorical_outputs(categorical: Mapping[str, tf.Tensor]) -> dict:
    """`cat__<name>`: `tft.compute_and_apply_vocabulary`'s ids, all vocabularies from one analyzer."""
    if not categorical:
        return {}
    from mean_tf.transform.vocabulary import joint_vocabularies  # Beam: imported only where Transform runs

    files = joint_vocabularies({VOCAB_PREFIX + name: x for name, x in categorical.items()})
    return {CATEGORICAL_PREFIX + name: tft.apply_vocabulary(x, files[VOCAB_PREFIX + name],
                                                            num_oov_buckets=NUM_OOV_BUCKETS)
            for name, x in categorical.items()}


def _label_outputs(label: str, raw, cfg: Mapping, batch_anchor) -> dict:
    money = tf.maximum(tf.cast(_as_vector(raw, 0.0), tf.float32), 0.0)
    positive = money > 0.0
    out = {label: money, label + MAX_SUFFIX: tf.fill(tf.shape(batch_anchor), tft.max(money))}
    scale = None
    if cfg["label_scaling"] == "scale":
        # Divide by the mean positive label: a typical buyer's label is ~1 and clipping at
        # label_clip cuts only values above label_clip times that mean.
        count = tft.sum(tf.cast(positive, ANALYZER_DTYPE))
        total = tft.sum(tf.cast(money, ANALYZER_DTYPE))
        scale = tf.maximum(tf.cast(total / tf.maximum(count, 1.0), tf.float32), 1e-6)
        out[label + SCALE_SUFFIX] = tf.fill(tf.shape(batch_anchor), scale)
    scaled = scale_label(money, cfg["label_scaling"], cfg["label_clip"], scale)
    out[label + SCALED_SUFFIX] = scaled
    if cfg.get("bucket_boundaries"):
        boundaries = tf.constant([list(cfg["bucket_boundaries"])], tf.float32)
        positive_bucket = tft.apply_buckets(scaled, boundaries) + 1
    elif cfg["num_distributions"] == 2:  # one positive range: every buyer is bucket 1, no quantile to learn
        positive_bucket = tf.ones_like(scaled, dtype=tf.int64)
    else:
        boundaries = _bucket_boundaries(money, scaled, positive, cfg, scale)
        positive_bucket = tft.apply_buckets(scaled, boundaries) + 1
    out[label + BUCKET_SUFFIX] = tf.where(positive, positive_bucket, tf.zeros_like(positive_bucket))
    return out


def _bucket_boundaries(money, scaled, positive, cfg: Mapping, scale=None):
    """Quantile boundaries of the positive scaled labels, from an analyzer of the first Beam phase.

    Under "scale": the quantiles of money, divided by the scale and clipped like the label. Division
    (exactly rounded) and clip are monotone, so these are the scaled label's quantiles, without waiting
    for the scale's `tft.sum`s (a second pass over the data). log1p keeps the quantiles of the scaled
    label: TF rounds log1p by a value's position in a tensor, so log1p of a boundary may miss by an ulp.
    """
    weights = tf.cast(positive, tf.float32)
    num_buckets = cfg["num_distributions"] - 1
    if scale is None:
        return tft.quantiles(scaled, num_buckets=num_buckets, epsilon=QUANTILE_EPSILON, weights=weights)
    money_boundaries = tft.quantiles(money, num_buckets=num_buckets, epsilon=QUANTILE_EPSILON, weights=weights)
    return scale_label(money_boundaries, "scale", cfg["label_clip"], scale)


# --- after Transform: model inputs, targets, vocab sizes, money inverse ------------------------
def split_targets(transformed: Mapping[str, tf.Tensor], labels: Sequence[str]) -> Tuple[dict, dict]:
    """(model inputs, targets) of a transformed batch; targets `raw`/`scaled`/`bucket` are [B, H] in `labels` order."""
    inputs = {k: v for k, v in transformed.items() if k == NUMERIC_KEY or k.startswith(CATEGORICAL_PREFIX)}

    def stack(suffix, dtype):
        return tf.stack([tf.cast(tf.reshape(transformed[label + suffix], [-1]), dtype) for label in labels], axis=1)

    targets = {"raw": stack("", tf.float32), "scaled": stack(SCALED_SUFFIX, tf.float32),
               "bucket": stack(BUCKET_SUFFIX, tf.int64)}
    return inputs, targets


def categorical_vocab_sizes(tf_transform_output, custom_config: Mapping) -> Dict[str, int]:
    """Embedding input sizes: vocabulary size plus the OOV buckets, per categorical feature."""
    return {name: tf_transform_output.vocabulary_size_by_name(VOCAB_PREFIX + name) + NUM_OOV_BUCKETS
            for name in custom_config["categorical_features"]}


@dataclasses.dataclass(frozen=True)
class LabelTransform:
    """The inverse label transform of one trained Transform: scaled [.., H] -> money, per label."""

    scaling: str
    clip: float
    scales: Dict[str, float]  # label -> Transform constant ("scale" only)

    def to_money(self, scaled, labels: Sequence[str]):
        if self.scaling == "log1p":
            return to_money(scaled, "log1p", self.clip)
        return to_money(scaled, "scale", self.clip, tf.constant([self.scales[label] for label in labels], tf.float32))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def label_transform(tf_transform_output, custom_config: Mapping) -> LabelTransform:
    """Read the label constants out of a trained Transform graph (for "scale": its `<label>__scale` outputs)."""
    scales = {}
    if custom_config["label_scaling"] == "scale":
        scales = analyzer_constants(tf_transform_output, custom_config["labels"], SCALE_SUFFIX)
    return LabelTransform(custom_config["label_scaling"], float(custom_config["label_clip"]), scales)


def analyzer_constants(tf_transform_output, labels: Sequence[str], suffix: str) -> Dict[str, float]:
    """{label: value} of the per-label constant outputs `<label><suffix>` (e.g. `__scale`, `__max`)."""
    transformed = tf_transform_output.transform_features_layer()(_dummy_raw_batch(tf_transform_output))
    return {label: float(transformed[label + suffix].numpy().reshape(-1)[0]) for label in labels}


def _dummy_raw_batch(tf_transform_output) -> dict:
    """One all-default raw example, label-free: enough to evaluate outputs that depend on analyzers only."""
    batch = {}
    for name, spec in tf_transform_output.raw_feature_spec().items():
        if isinstance(spec, tf.io.FixedLenFeature):
            batch[name] = tf.zeros([1] + list(spec.shape), spec.dtype)
        else:
            batch[name] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], spec.dtype), [1, 1])
    return batch


# --- materialize: Transform with Beam, outside TFX ----------------------------------------------
@dataclasses.dataclass(frozen=True)
class Materialized:
    """Where `materialize` left the Transform graph and the transformed splits."""

    out_dir: str
    custom_config: dict

    @property
    def transform_dir(self) -> str:
        """The Transform graph folder (for `tft.TFTransformOutput` and `training.fit`)."""
        return self.out_dir

    def files(self, split: str) -> List[str]:
        return sorted(tf.io.gfile.glob(os.path.join(self.out_dir, TRANSFORMED_DIR, f"{split}-*.tfrecord.gz")))

    def tf_transform_output(self):
        return tft.TFTransformOutput(self.out_dir)


def code_fingerprint() -> str:
    """A hash of the modules that define the transform (this one and `mean_tf.transform.vocabulary`): a cached output
    made by other code is not reused."""
    import hashlib

    from mean_tf.transform import vocabulary

    digest = hashlib.sha1()
    for path in (__file__, vocabulary.__file__):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def materialize(manifest, config: MEANConfig, out_dir: str, beam_pipeline_args: Sequence[str] = ()) -> Materialized:
    """Analyze on train, transform train/eval/test to gzipped TFRecords under `out_dir`; skip when already done.

    The run is recorded in `out_dir/materialize.json` (the manifest folder, the custom_config and a hash of
    the transform's code, `code_fingerprint`); a folder whose record matches is reused as is. The folder is written atomically (a temp folder next
    to it, renamed at the end), so an interrupted run leaves nothing half-written.
    """
    from mean_tf.data.manifest import atomic_output_dir, verify_split_files
    from mean_tf.runtime.files import absolute

    custom_config = transform_config(manifest, config)
    record = {"manifest_dir": absolute(manifest.root), "custom_config": custom_config,
              "row_counts": dict(manifest.row_counts), "code": code_fingerprint()}
    record_path = os.path.join(out_dir, MATERIALIZE_RECORD)
    if tf.io.gfile.exists(record_path):
        with tf.io.gfile.GFile(record_path) as f:
            if json.load(f) == record:
                return Materialized(out_dir, custom_config)
    verify_split_files(manifest)
    with atomic_output_dir(out_dir, dataset=False, last=MATERIALIZE_RECORD) as tmp:
        _run_transform(manifest, custom_config, str(tmp), beam_pipeline_args)
        with tf.io.gfile.GFile(os.path.join(tmp, MATERIALIZE_RECORD), "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
    return Materialized(out_dir, custom_config)


def _run_transform(manifest, custom_config: dict, out_dir: str, beam_pipeline_args: Sequence[str]) -> None:
    import tempfile

    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx_bsl.public import tfxio

    schema = schema_utils.schema_from_feature_spec(raw_feature_spec(custom_config))
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    transformed_dir = os.path.join(out_dir, TRANSFORMED_DIR)
    tf.io.gfile.makedirs(transformed_dir)

    def fn(inputs):
        return preprocessing_fn(inputs, custom_config)

    def read(pipeline, split):
        source = tfxio.TFExampleRecord(file_pattern=manifest.files(split), schema=schema)
        return (pipeline | f"Read{split}" >> source.BeamSource()), source.TensorAdapterConfig()

    def write(dataset, split):
        _ = (dataset
             | f"Encode{split}" >> tft_beam.EncodeTransformedDataset()
             | f"Write{split}" >> beam.io.WriteToTFRecord(os.path.join(transformed_dir, split),
                                                         file_name_suffix=".tfrecord.gz"))

    with beam.Pipeline(argv=["--runner=DirectRunner", *beam_pipeline_args]) as pipeline:
        with tft_beam.Context(temp_dir=tempfile.mkdtemp(prefix="mean_tf_tft_")):
            train = read(pipeline, "train")
            analyze = tft_beam.AnalyzeAndTransformDataset(fn, output_record_batches=True)
            transformed_train, transform_fn = train | analyze
            write(transformed_train, "train")
            for split in SPLITS[1:]:
                if split in manifest.splits:
                    transform_split = tft_beam.TransformDataset(output_record_batches=True)
                    transformed = (read(pipeline, split), transform_fn) | f"Transform{split}" >> transform_split
                    write(transformed, split)
            _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
