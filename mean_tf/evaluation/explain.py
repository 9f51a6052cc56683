"""Look inside a trained MEAN and a trained Transform: the quantities the notebooks plot.

- `model_outputs`: a model's outputs (cltv, attention A, attention mean ϑ̂, DAM's b̂) and the targets,
  as NumPy arrays over a dataset from `mean_tf.training.protocol.make_dataset`;
- `mean_per_bucket`: any per-example array averaged over the examples of each true bucket
  (A or ϑ̂ per true bucket: what the alignment of eq. 13-16 is meant to shape);
- `confusion_matrix`: true bucket against DAM's most likely bucket (argmax b̂, eq. 10);
- `diagnostics`: MEAN's attention entropy, how often argmax ϑ̂ agrees with DAM's argmax b̂ and with the
  true bucket, DAM's accuracy, and the gate usage per expert (the benchmark's per-cell diagnostics);
- `bucket_boundaries`: the bucket boundaries a trained Transform graph picked (quantiles of the positive
  scaled labels, docs/design.md "Transformed features"), read back by running the graph on a label grid.
"""
from __future__ import annotations

from typing import Dict, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

from mean_tf import contract
from mean_tf.transform import preprocessing

OUTPUT_KEYS = ("cltv", "attention", "attention_mean", "bucket_probs")
BOUNDARY_GRID = 4001  # first pass over [0, label_clip]; each bracketed boundary is then refined
BOUNDARY_REFINE = 1001


def model_outputs(model: tf.keras.Model, dataset: tf.data.Dataset, keys: Sequence[str] = OUTPUT_KEYS) -> Dict[str, np.ndarray]:
    """The model's outputs `keys` (those it has) and the targets `raw`, `scaled`, `bucket` ([N, H]), over
    every batch of a (inputs, targets) dataset, concatenated along the examples."""
    parts: Dict[str, list] = {}
    for inputs, targets in dataset:
        outputs = model(inputs, training=False)
        for key in keys:
            if key in outputs:
                parts.setdefault(key, []).append(outputs[key].numpy())
        for key, value in targets.items():
            parts.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def diagnostics(model: tf.keras.Model, dataset: tf.data.Dataset, label: str) -> Dict[str, object]:
    """Scalars that say where a MEAN-family model's errors come from, over a (inputs, targets) dataset.

    `attention_entropy`: mean entropy of ϑ̂ (eq. 12) divided by log n (1 = uniform, 0 = one distribution);
    `attention_vs_dam`: share of examples where argmax ϑ̂ = argmax b̂; `attention_vs_bucket`,
    `dam_vs_bucket`: shares where argmax ϑ̂ / argmax b̂ is the true bucket of `label`; `gate_usage`: the
    mean gate weight of each expert (eq. 3) over distributions and examples. Keys a model lacks are absent.
    """
    labels = list(model.config.labels)
    h = labels.index(label)
    out = model_outputs(model, dataset, ("attention_mean", "bucket_probs"))
    result: Dict[str, object] = {}
    truth = out["bucket"][:, h]
    if "attention_mean" in out:
        theta = np.clip(out["attention_mean"], 1e-12, 1.0)
        n = theta.shape[-1]
        result["attention_entropy"] = float((-(theta * np.log(theta)).sum(-1) / np.log(n)).mean())
        result["attention_vs_bucket"] = float((theta.argmax(-1) == truth).mean())
    if "bucket_probs" in out:
        probs = out["bucket_probs"] if out["bucket_probs"].ndim == 2 else out["bucket_probs"][:, h]
        result["dam_vs_bucket"] = float((probs.argmax(-1) == truth).mean())
        if "attention_mean" in out:
            result["attention_vs_dam"] = float((out["attention_mean"].argmax(-1) == probs.argmax(-1)).mean())
    if hasattr(model, "mvfe"):
        usage = []
        for inputs, _ in dataset:
            x_u = model.encoder(inputs)
            gate_in = x_u if model.config.mvfe_gate_input == "x_u" else model.shared(x_u)
            usage.append(model.mvfe.gate_weights(gate_in).numpy().mean(axis=1))  # [B, M]
        result["gate_usage"] = [round(float(v), 4) for v in np.concatenate(usage).mean(axis=0)]
    return result


def mean_per_bucket(values, buckets, num_buckets: int) -> np.ndarray:
    """values [N, ...] averaged over the examples of each bucket 0..num_buckets-1: [num_buckets, ...];
    a bucket without examples is all NaN."""
    values = np.asarray(values, dtype=np.float64)
    buckets = np.asarray(buckets).reshape(-1)
    out = np.full((num_buckets,) + values.shape[1:], np.nan)
    for b in range(num_buckets):
        members = buckets == b
        if members.any():
            out[b] = values[members].mean(axis=0)
    return out


def confusion_matrix(true_buckets, predicted_buckets, num_buckets: int, normalize: bool = True) -> np.ndarray:
    """[true, predicted] counts, or shares of each true bucket (rows sum to 1; an empty row is NaN)."""
    true_buckets = np.asarray(true_buckets).reshape(-1)
    predicted_buckets = np.asarray(predicted_buckets).reshape(-1)
    counts = np.zeros((num_buckets, num_buckets))
    np.add.at(counts, (true_buckets, predicted_buckets), 1)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def _raw_batch(tf_transform_output, size: int, label: str, money: np.ndarray) -> dict:
    """`size` raw examples with every feature at its default (0 or "") and `label` set to `money`."""
    batch = {}
    for name, spec in tf_transform_output.raw_feature_spec().items():
        if isinstance(spec, tf.io.FixedLenFeature):
            shape = [size] + list(spec.shape)
            value = money.reshape(shape) if name == label else np.zeros(shape)
            batch[name] = tf.constant(value, spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")
        else:
            indices = np.stack([np.arange(size), np.zeros(size, int)], axis=1) if name == label else np.zeros((0, 2), int)
            values = money if name == label else np.zeros(0)
            batch[name] = tf.SparseTensor(indices, tf.constant(values, spec.dtype), [size, 1])
    return batch


def bucket_boundaries(tf_transform_output, label: str, label_transform: preprocessing.LabelTransform) -> np.ndarray:
    """The boundaries between the positive buckets 1..n-1 of `label`, in the scaled label space.

    A zero label is bucket 0; a positive scaled label s is in bucket i + 1 where boundaries[i-1] <= s <
    boundaries[i]. Found by running the Transform graph on scaled labels over [0, label_clip] and
    locating each bucket change (to about 1e-6 of label_clip). Convert to money with
    `label_transform.to_money`.
    """
    layer = tf_transform_output.transform_features_layer()
    output = label + contract.BUCKET_SUFFIX

    def buckets(scaled: np.ndarray) -> np.ndarray:
        money = label_transform.to_money(tf.constant(scaled[:, None], tf.float32), [label]).numpy().reshape(-1)
        return layer(_raw_batch(tf_transform_output, scaled.size, label, money))[output].numpy().reshape(-1)

    grid = np.linspace(0.0, label_transform.clip, BOUNDARY_GRID)
    coarse = buckets(grid)
    found = []
    for i in np.flatnonzero(np.diff(coarse) > 0) + 1:
        if coarse[i - 1] == 0:  # the 0 -> 1 step is zero vs positive, not a boundary
            continue
        fine = np.linspace(grid[i - 1], grid[i], BOUNDARY_REFINE)
        fine_buckets = buckets(fine)
        for j in np.flatnonzero(np.diff(fine_buckets) > 0) + 1:
            found += [fine[j]] * int(fine_buckets[j] - fine_buckets[j - 1])
    return np.asarray(found)
