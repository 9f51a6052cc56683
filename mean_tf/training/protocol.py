"""Training shared by the TFX Trainer's run_fn, `mean-tf train` and the benchmark: one protocol for every model.

Keras models (registry kind "keras") train on Transform output: gzipped TFRecords of transformed
examples, read batch-then-parse. The protocol (docs/design.md, "Training protocol"):
- model selection on one eval-split criterion, `config.selection_metric` (default: normalised Gini of
  the money prediction; ties to the model's prediction loss), which decides early stopping and the
  restored epoch (`mean_tf.training.selection.ModelSelection`);
- a budget in optimizer steps: stop after `patience` epochs without improvement or `max_steps` steps;
- batch norm that settles at any data size: the momentum derived from the steps per epoch
  (`config.bn_momentum=None`), or the statistics re-estimated before each evaluation (`bn_reestimate`);
- deterministic ops by default (`config.deterministic`), so a cell reruns to the same metrics.
Classical models (kind "classical") fit on the raw splits as DataFrames.
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

from mean_tf import contract
from mean_tf.runtime import determinism
from mean_tf.evaluation import metrics
from mean_tf.training import selection
from mean_tf.transform import preprocessing
from mean_tf.config import LOSS_SELECTIONS, MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.contract import CATEGORICAL_PREFIX
from mean_tf.models import registry
from mean_tf.models.data_facts import DataFacts

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
_MULTI_WORKER: Dict[str, tf.distribute.Strategy] = {}


def strategy_from_env() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, else the default strategy.

    The multi-worker strategy configures collective ops, which TensorFlow allows only before its first op
    runs and only once per process: call this before anything else touches TensorFlow (`fit` does), and
    later calls with the same TF_CONFIG return the same strategy.
    """
    raw = os.environ.get("TF_CONFIG") or "{}"
    if not json.loads(raw).get("cluster"):
        return tf.distribute.get_strategy()
    if raw not in _MULTI_WORKER:
        _MULTI_WORKER[raw] = tf.distribute.MultiWorkerMirroredStrategy()
    return _MULTI_WORKER[raw]


def num_workers_from_env() -> int:
    """Tasks that train (chief + workers) in the TF_CONFIG cluster; 1 without one."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


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
    ds = ds.map(lambda records: preprocessing.split_targets(tf.io.parse_example(records, feature_spec), labels),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Multi-worker input: each worker reads its own files when there are enough of them, else every
    # worker reads all files and keeps its share of each batch (FILE sharding fails with fewer files).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE if len(files) >= num_workers_from_env()
        else tf.data.experimental.AutoShardPolicy.DATA)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def count_batches(files: Sequence[str], batch_size: int) -> int:
    """Batches of `batch_size` in gzipped TFRecord files (one pass over the records, no parsing)."""
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(list(files))), compression_type="GZIP")
    count = int(records.reduce(np.int64(0), lambda n, _: n + 1))
    return -(-count // batch_size)


def categorical_vocab_sizes(tf_transform_output) -> Dict[str, int]:
    """Embedding input sizes (vocabulary + OOV buckets) of every `cat__<name>` output of the Transform."""
    names = [k[len(CATEGORICAL_PREFIX):] for k in tf_transform_output.transformed_feature_spec()
             if k.startswith(CATEGORICAL_PREFIX)]
    return preprocessing.categorical_vocab_sizes(tf_transform_output, {"categorical_features": names})


def label_transform_for(tf_transform_output, config: MEANConfig) -> preprocessing.LabelTransform:
    """The money inverse of this Transform's labels; fails if the Transform used another label scaling."""
    spec = tf_transform_output.transformed_feature_spec()
    labels = [k[: -len(contract.SCALED_SUFFIX)] for k in spec if k.endswith(contract.SCALED_SUFFIX)]
    has_scale = any(label + contract.SCALE_SUFFIX in spec for label in labels)
    if has_scale != (config.label_scaling == "scale"):
        raise MeanTFError(f"config: label_scaling={config.label_scaling!r} does not match the Transform output "
                          f"(built with label_scaling={'scale' if has_scale else 'log1p'!r}); rerun Transform")
    custom = {"labels": labels, "label_scaling": config.label_scaling, "label_clip": config.label_clip}
    return preprocessing.label_transform(tf_transform_output, custom)


# --- resumable training -------------------------------------------------------------------------
SELECTION_STATE = "model_selection"


def completed_epochs(backup_dir: str) -> int:
    """Epochs finished by an earlier, interrupted `fit` with this BackupAndRestore folder (0 if none).

    Reads the epoch counter that tf_keras' BackupAndRestore keeps in its checkpoint (`<dir>/chief`).
    """
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
    if checkpoint is None:
        return 0
    return int(tf.train.load_variable(checkpoint, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")) + 1


def check_finite_history(model_name: str, history: Dict[str, List[float]]) -> None:
    """Raise MeanTFError if any logged loss is NaN or infinite: a diverged model must not be exported."""
    for key, values in history.items():
        bad = [i for i, v in enumerate(values) if not np.isfinite(v)]
        if bad:
            raise MeanTFError(f"training {model_name} diverged: {key} is {values[bad[0]]} in epoch {bad[0] + 1}; "
                              f"check the features for NaN or infinite values, or lower learning_rate")


# --- keras models -------------------------------------------------------------------------------
@dataclasses.dataclass
class FitResult:
    model: tf.keras.Model
    config: MEANConfig  # the model's config: the variant's overrides and its labels applied
    facts: DataFacts  # what the training data fixed for the model
    history: Dict[str, List[float]]
    label_transform: preprocessing.LabelTransform
    best_epoch: int
    steps: int = 0  # optimizer steps taken
    hit_max_steps: bool = False  # stopped by the step budget, not by model selection
    selection: float = float("nan")  # the selection criterion on the eval split at the best epoch


def data_facts(model_name: str, config: MEANConfig, tf_transform_output, train_files: Sequence[str],
               steps_per_epoch: int) -> DataFacts:
    """What a model takes from its training data (`DataFacts`): vocabulary sizes, the largest train label per
    label (ZILN cap), the batch-norm momentum the steps per epoch give, and ODMN's bucket edges."""
    labels = list(config.labels)
    edges = {}
    if getattr(registry.model_class(model_name), "uses_label_edges", False):
        from mean_tf.models.odmn import quantile_edges

        scaled = scaled_labels(train_files, labels)
        edges = {label: quantile_edges(scaled[:, i], config.label_clip, config.odmn_sub_distributions,
                                       config.odmn_buckets) for i, label in enumerate(labels)}
    return DataFacts(categorical_vocab_sizes=categorical_vocab_sizes(tf_transform_output),
                     label_max=preprocessing.analyzer_constants(tf_transform_output, labels, contract.MAX_SUFFIX),
                     odmn_edges=edges, bn_momentum=selection.derived_bn_momentum(steps_per_epoch))


def scaled_labels(files: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """The transformed (scaled) labels of gzipped transformed examples, [N, H] (parses only those columns)."""
    spec = {label + contract.SCALED_SUFFIX: tf.io.FixedLenFeature([], tf.float32) for label in labels}
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(list(files))), compression_type="GZIP")
    parts = [np.stack([batch[label + contract.SCALED_SUFFIX].numpy() for label in labels], axis=1)
             for batch in records.batch(8192).map(lambda r: tf.io.parse_example(r, spec))]
    return np.concatenate(parts) if parts else np.zeros((0, len(labels)), np.float32)


def eval_scorer(criterion: str, dataset: tf.data.Dataset, label_transform: preprocessing.LabelTransform,
                labels: Sequence[str]):
    """score(model) -> the metric `criterion` of `mean_tf.evaluation.metrics` on the dataset's money predictions
    (mean over labels; NaN if any label's metric is NaN or any prediction is not finite). One traced
    prediction function per scorer."""
    truth = dataset_targets(dataset, "raw")
    predictor = money_predictor(label_transform, labels)

    def score(model) -> float:
        predicted = predictor(model, dataset)
        if not np.isfinite(predicted).all():  # a diverged model: never selected (fit then reports the NaN loss)
            return float("nan")
        return float(np.mean([metrics.evaluate(truth[:, i], predicted[:, i])[criterion] for i in range(len(labels))]))

    return score


def fit(model_name: str, config: MEANConfig, transform_dir: str, train_files: Sequence[str],
        eval_files: Sequence[str], *, log_dir: Optional[str] = None, backup_dir: Optional[str] = None,
        verbose: int = 2) -> FitResult:
    """Train registry model `model_name` on transformed examples under the protocol of the module docstring.

    `transform_dir`: the Transform graph (TFX `transform_graph` or `materialize`'s folder).
    `log_dir`: TensorBoard logs; `backup_dir`: BackupAndRestore checkpoints and the model-selection
    state, so a killed run restarted with the same arguments resumes at its last finished epoch and
    ends where an uninterrupted run ends (the folder is emptied when fit returns).
    Seeds and determinism: `mean_tf.runtime.determinism.configure(config.seed, config.deterministic)`.
    A loss that turns NaN or infinite stops training with MeanTFError.
    """
    if registry.spec(model_name).kind != "keras":
        raise MeanTFError(f"model {model_name!r} is classical: train it with fit_classical")
    strategy = strategy_from_env()  # first: a multi-worker strategy must exist before any TensorFlow op runs
    determinism.configure(config.seed, config.deterministic)
    tf_transform_output = tft.TFTransformOutput(transform_dir)
    model_config = registry.model_config(model_name, config)
    labels = list(model_config.labels)
    spec = tf_transform_output.transformed_feature_spec()
    missing = [label for label in labels if label + contract.SCALED_SUFFIX not in spec]
    if missing:
        raise MeanTFError(f"label {missing[0]!r} is not in the Transform output (not a label of the dataset)")
    label_transform = label_transform_for(tf_transform_output, model_config)

    batch = model_config.batch_size
    steps_per_epoch = count_batches(train_files, batch)
    facts = data_facts(model_name, model_config, tf_transform_output, train_files, steps_per_epoch)
    train = make_dataset(train_files, spec, labels, batch, shuffle=True, seed=model_config.seed)
    evaluation = make_dataset(eval_files, spec, labels, batch)
    if num_workers_from_env() == 1:
        # A known epoch length: without one, tf_keras ends a fit's first epoch with an empty step that still
        # advances the optimizer's iteration count (Adam's bias correction), once per process: a resumed
        # run would then differ from an uninterrupted one. (Multi-worker input is sharded: not counted.)
        train = train.apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
    # Keras makes one iterator of `train` per epoch, and each new iterator reshuffles: replay the
    # iterators of the epochs an interrupted run already finished, so that every epoch keeps its order.
    for _ in range(completed_epochs(backup_dir) if backup_dir else 0):
        iter(train)

    with strategy.scope():
        model = registry.model_class(model_name)(model_config, facts)  # the config is resolved once, above
        model.compile(optimizer=optimizer(model_config))
    criterion = model_config.selection_metric
    score_fn = None if criterion in LOSS_SELECTIONS else eval_scorer(criterion, evaluation, label_transform,
                                                                           labels)
    chooser = selection.ModelSelection(criterion, model.prediction_loss, model_config.patience,
                                       model_config.max_steps, score_fn,
                                       os.path.join(backup_dir, SELECTION_STATE) if backup_dir else None)
    callbacks = [tf.keras.callbacks.TerminateOnNaN()]
    if model_config.bn_reestimate:
        callbacks.append(selection.BatchNormReestimation(make_dataset(train_files, spec, labels, batch),
                                                         steps_per_epoch))
    callbacks.append(chooser)
    if model_config.reduce_lr_patience:
        callbacks.append(tf.keras.callbacks.ReduceLROnPlateau(
            selection.SELECTION_KEY, factor=0.5, patience=model_config.reduce_lr_patience,
            mode="max" if selection.higher_is_better(criterion) else "min"))
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if backup_dir:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(backup_dir))
    epochs = min(model_config.epochs, -(-model_config.max_steps // max(steps_per_epoch, 1)))
    history = model.fit(train, validation_data=evaluation, epochs=epochs, callbacks=callbacks, verbose=verbose)
    if backup_dir and tf.io.gfile.exists(os.path.join(backup_dir, SELECTION_STATE)):
        tf.io.gfile.rmtree(os.path.join(backup_dir, SELECTION_STATE))  # BackupAndRestore removed its checkpoint
    check_finite_history(model_name, {k: v for k, v in history.history.items() if k != selection.SELECTION_KEY})
    return FitResult(model, model_config, facts, history.history, label_transform, chooser.best_epoch,
                     int(model.optimizer.iterations.numpy()), chooser.hit_max_steps, chooser.best_value)


def optimizer(config: MEANConfig) -> tf.keras.optimizers.Optimizer:
    """Adam at the config's learning rate (sec. 4.1), or AdamW when `weight_decay` > 0 (decoupled weight decay)."""
    if config.weight_decay > 0:
        return tf.keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    return tf.keras.optimizers.Adam(config.learning_rate)


def money_predictor(label_transform: preprocessing.LabelTransform, labels: Sequence[str]):
    """predict(model, dataset) -> money [N, H], with one traced step per model (reused across calls)."""
    labels = list(labels)
    steps = {}

    def predict(model, dataset):
        if id(model) not in steps:
            @tf.function
            def step(inputs):
                cltv = model(inputs, training=False)["cltv"]
                if model.output_space == "scaled":
                    return label_transform.to_money(cltv, labels)
                return tf.maximum(cltv, 0.0)

            steps[id(model)] = step
        step = steps[id(model)]
        parts = [step(batch[0] if isinstance(batch, tuple) else batch).numpy() for batch in dataset]
        return np.concatenate(parts).reshape(-1, len(labels)) if parts else np.zeros((0, len(labels)), np.float32)

    return predict


def predict_money(model: tf.keras.Model, dataset: tf.data.Dataset, label_transform: preprocessing.LabelTransform,
                  labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """Predicted CLTV in money, [N, H] (labels = the model's labels), over a dataset of inputs or (inputs, targets)."""
    return money_predictor(label_transform, labels or model.config.labels)(model, dataset)


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
