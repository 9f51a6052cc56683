"""Training shared by the TFX Trainer's run_fn, `mean-tf train` and the benchmark.

Keras models (registry kind "keras") train on Transform output: gzipped TFRecords of transformed
examples, read batch-then-parse, with early stopping on the eval loss and the best epoch's weights
restored (sec. 4.1). Classical models (kind "classical") fit on the raw splits as DataFrames.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf import transform
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.layers import CATEGORICAL_PREFIX
from mean_tf.models import registry

SHUFFLE_BUFFER = 10_000


def skip_autograph_for_tf_keras() -> None:
    """Treat tf_keras like TensorFlow's own `keras` package: never autograph-convert its internals.

    TF 2.16's autograph skips modules named `keras` but not `tf_keras`, so every first `fit` transpiles
    hundreds of tf_keras functions (minutes on a busy CPU). Keras 2 never needed that conversion.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rule = autograph_config.DoNotConvert("tf_keras")
    if not any(r.matches("tf_keras") for r in autograph_config.CONVERSION_RULES):
        autograph_config.CONVERSION_RULES = (rule,) + tuple(autograph_config.CONVERSION_RULES)


skip_autograph_for_tf_keras()


# --- distribution -------------------------------------------------------------------------------
def strategy_from_env() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, else the default strategy."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if tf_config.get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


# --- datasets -----------------------------------------------------------------------------------
def make_dataset(files: Sequence[str], feature_spec: Dict, labels: Sequence[str], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """(model inputs, targets) batches of transformed examples: shuffle records, batch, then parse.

    Deterministic for a seed: files in the given order, one seeded shuffle buffer, ordered parsing.
    """
    files = sorted(tf.io.gfile.glob(list(files)))
    if not files:
        raise MeanTFError("no transformed example files to read (did Transform run?)")
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda records: transform.split_targets(tf.io.parse_example(records, feature_spec), labels),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def categorical_vocab_sizes(tf_transform_output) -> Dict[str, int]:
    """Embedding input sizes (vocabulary + OOV buckets) of every `cat__<name>` output of the Transform."""
    names = [k[len(CATEGORICAL_PREFIX):] for k in tf_transform_output.transformed_feature_spec()
             if k.startswith(CATEGORICAL_PREFIX)]
    return transform.categorical_vocab_sizes(tf_transform_output, {"categorical_features": names})


def label_transform_for(tf_transform_output, config: MEANConfig) -> transform.LabelTransform:
    """The money inverse of this Transform's labels; fails if the Transform used another label scaling."""
    spec = tf_transform_output.transformed_feature_spec()
    labels = [k[: -len(transform.SCALED_SUFFIX)] for k in spec if k.endswith(transform.SCALED_SUFFIX)]
    has_scale = any(label + transform.SCALE_SUFFIX in spec for label in labels)
    if has_scale != (config.label_scaling == "scale"):
        raise MeanTFError(f"config: label_scaling={config.label_scaling!r} does not match the Transform output "
                          f"(built with label_scaling={'scale' if has_scale else 'log1p'!r}); rerun Transform")
    custom = {"labels": labels, "label_scaling": config.label_scaling, "label_clip": config.label_clip}
    return transform.label_transform(tf_transform_output, custom)


# --- keras models -------------------------------------------------------------------------------
@dataclasses.dataclass
class FitResult:
    model: tf.keras.Model
    config: MEANConfig  # the model's config: variant overrides, labels, vocabulary sizes filled in
    history: Dict[str, List[float]]
    label_transform: transform.LabelTransform
    best_epoch: int


def fit(model_name: str, config: MEANConfig, transform_dir: str, train_files: Sequence[str],
        eval_files: Sequence[str], *, log_dir: Optional[str] = None, backup_dir: Optional[str] = None,
        verbose: int = 2) -> FitResult:
    """Train registry model `model_name` on transformed examples; early stopping on the eval loss.

    `transform_dir`: the Transform graph (TFX `transform_graph` or `materialize`'s folder).
    `log_dir`: TensorBoard logs; `backup_dir`: BackupAndRestore checkpoints, so a killed run resumes.
    """
    if registry.spec(model_name).kind != "keras":
        raise MeanTFError(f"model {model_name!r} is classical: train it with fit_classical")
    tf.keras.utils.set_random_seed(config.seed)
    tf_transform_output = tft.TFTransformOutput(transform_dir)
    model_config = registry.model_config(model_name, config).replace(
        categorical_vocab_sizes=categorical_vocab_sizes(tf_transform_output))
    labels = list(model_config.labels)
    missing = [label for label in labels if label + transform.SCALED_SUFFIX not in tf_transform_output.transformed_feature_spec()]
    if missing:
        raise MeanTFError(f"label {missing[0]!r} is not in the Transform output (not a label of the dataset)")
    label_transform = label_transform_for(tf_transform_output, model_config)

    spec = tf_transform_output.transformed_feature_spec()
    batch = model_config.batch_size
    train = make_dataset(train_files, spec, labels, batch, shuffle=True, seed=model_config.seed)
    evaluation = make_dataset(eval_files, spec, labels, batch)

    with strategy_from_env().scope():
        model = registry.build(model_name, model_config)
        model.compile(optimizer=tf.keras.optimizers.Adam(model_config.learning_rate))
    stopper = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=model_config.patience,
                                               restore_best_weights=True)
    callbacks = [stopper]
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if backup_dir:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(backup_dir))
    history = model.fit(train, validation_data=evaluation, epochs=model_config.epochs, callbacks=callbacks,
                        verbose=verbose)
    return FitResult(model, model_config, history.history, label_transform, stopper.best_epoch)


def predict_money(model: tf.keras.Model, dataset: tf.data.Dataset, label_transform: transform.LabelTransform,
                  labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """Predicted CLTV in money, [N, H] (labels = the model's labels), over a dataset of inputs or (inputs, targets)."""
    labels = list(labels or model.config.labels)

    @tf.function
    def step(inputs):
        cltv = model(inputs, training=False)["cltv"]
        if model.output_space == "scaled":
            return label_transform.to_money(cltv, labels)
        return tf.maximum(cltv, 0.0)

    parts = [step(batch[0] if isinstance(batch, tuple) else batch).numpy() for batch in dataset]
    return np.concatenate(parts).reshape(-1, len(labels)) if parts else np.zeros((0, len(labels)), np.float32)


def dataset_targets(dataset: tf.data.Dataset, key: str = "raw") -> np.ndarray:
    """One target of a (inputs, targets) dataset as [N, H]; `raw` is the label in money."""
    parts = [targets[key].numpy() for _, targets in dataset]
    return np.concatenate(parts)


# --- classical models ---------------------------------------------------------------------------
def fit_classical(model_name: str, config: MEANConfig, manifest):
    """Fit a classical registry model on the raw train (and eval) split DataFrames."""
    from mean_tf.data.manifest import read_split

    if registry.spec(model_name).kind != "classical":
        raise MeanTFError(f"model {model_name!r} is a Keras model: train it with fit")
    model = registry.build(model_name, config)
    eval_df = read_split(manifest, "eval") if "eval" in manifest.splits else None
    return model.fit(read_split(manifest, "train"), eval_df, manifest.to_dict())


def predict_classical(model, manifest, split: str) -> np.ndarray:
    """Money predictions [N, H] of a fitted classical model on one raw split (manifest row order)."""
    from mean_tf.data.manifest import read_split

    return np.asarray(model.predict(read_split(manifest, split)), dtype=np.float64)
