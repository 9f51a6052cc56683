"""Training shared by the TFX Trainer's run_fn, `mean-tf train` and the benchmark.

Keras models (registry kind "keras") train on Transform output: gzipped TFRecords of transformed
examples, read batch-then-parse, with early stopping on the eval loss and the best epoch's weights
restored (sec. 4.1). Classical models (kind "classical") fit on the raw splits as DataFrames.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Dict, List, Optional, Sequence

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from mean_tf import determinism, transform
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
    ds = ds.map(lambda records: transform.split_targets(tf.io.parse_example(records, feature_spec), labels),
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


# --- resumable training -------------------------------------------------------------------------
EARLY_STOPPING_STATE = "early_stopping"


class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """EarlyStopping on `val_loss` (best weights restored) whose state survives a killed process.

    After every epoch it writes its state (best value and epoch, patience count, best weights) to
    `state_dir`; when BackupAndRestore resumes a run at epoch k, it reloads the state of epoch k - 1, so
    the resumed run stops, and restores, exactly where an uninterrupted one would. Put it before
    BackupAndRestore in the callbacks: the state of an epoch is then on disk before its checkpoint.
    """

    def __init__(self, state_dir: str, **kwargs):
        super().__init__(monitor="val_loss", restore_best_weights=True, **kwargs)
        self.state_dir = state_dir
        self._first_epoch = True

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and epoch > 0:
            self._load(epoch - 1)
        self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.model.distribute_strategy.extended.should_checkpoint:
            self._save(epoch)

    def _path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    def _save(self, epoch: int) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        weights = self._path(f"best-{self.best_epoch}.npz")
        if self.best_weights is not None and self.best_epoch == epoch:
            np.savez(weights + ".tmp.npz", *self.best_weights)
            os.replace(weights + ".tmp.npz", weights)
        state = {"best": float(self.best), "best_epoch": int(self.best_epoch), "wait": int(self.wait),
                 "stopped_epoch": int(self.stopped_epoch)}
        path = self._path(f"state-{epoch}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)
        keep = {f"state-{epoch}.json", f"state-{epoch - 1}.json", f"best-{self.best_epoch}.npz"}
        previous = self._read(epoch - 1)
        if previous:
            keep.add(f"best-{previous['best_epoch']}.npz")
        for name in os.listdir(self.state_dir):
            if name not in keep:
                os.remove(self._path(name))

    def _read(self, epoch: int) -> Optional[dict]:
        path = self._path(f"state-{epoch}.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def _load(self, epoch: int) -> None:
        state = self._read(epoch)
        if state is None:
            raise MeanTFError(f"cannot resume training: {self._path(f'state-{epoch}.json')} is missing "
                              f"(delete the backup folder {os.path.dirname(self.state_dir)} to start over)")
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        with np.load(self._path(f"best-{self.best_epoch}.npz")) as weights:
            self.best_weights = [weights[f"arr_{i}"] for i in range(len(weights.files))]


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
    config: MEANConfig  # the model's config: variant overrides, labels, vocabulary sizes filled in
    history: Dict[str, List[float]]
    label_transform: transform.LabelTransform
    best_epoch: int


def fit(model_name: str, config: MEANConfig, transform_dir: str, train_files: Sequence[str],
        eval_files: Sequence[str], *, log_dir: Optional[str] = None, backup_dir: Optional[str] = None,
        verbose: int = 2) -> FitResult:
    """Train registry model `model_name` on transformed examples; early stopping on the eval loss.

    `transform_dir`: the Transform graph (TFX `transform_graph` or `materialize`'s folder).
    `log_dir`: TensorBoard logs; `backup_dir`: BackupAndRestore checkpoints and the early-stopping
    state, so a killed run restarted with the same arguments resumes at its last finished epoch and
    ends where an uninterrupted run ends (the folder is emptied when fit returns).
    Seeds and determinism: `mean_tf.determinism.configure(config.seed, config.deterministic)`.
    A loss that turns NaN or infinite stops training with MeanTFError.
    """
    if registry.spec(model_name).kind != "keras":
        raise MeanTFError(f"model {model_name!r} is classical: train it with fit_classical")
    strategy = strategy_from_env()  # first: a multi-worker strategy must exist before any TensorFlow op runs
    determinism.configure(config.seed, config.deterministic)
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
    if num_workers_from_env() == 1:
        # A known epoch length: without one, tf_keras ends a fit's first epoch with an empty step that still
        # advances the optimizer's iteration count (Adam's bias correction), once per process: a resumed
        # run would then differ from an uninterrupted one. (Multi-worker input is sharded: not counted.)
        train = train.apply(tf.data.experimental.assert_cardinality(count_batches(train_files, batch)))
    # Keras makes one iterator of `train` per epoch, and each new iterator reshuffles: replay the
    # iterators of the epochs an interrupted run already finished, so that every epoch keeps its order.
    for _ in range(completed_epochs(backup_dir) if backup_dir else 0):
        iter(train)

    with strategy.scope():
        model = registry.build(model_name, model_config)
        model.compile(optimizer=tf.keras.optimizers.Adam(model_config.learning_rate))
    if backup_dir:
        stopper = ResumableEarlyStopping(os.path.join(backup_dir, EARLY_STOPPING_STATE),
                                         patience=model_config.patience)
    else:
        stopper = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=model_config.patience,
                                                   restore_best_weights=True)
    callbacks = [tf.keras.callbacks.TerminateOnNaN(), stopper]
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if backup_dir:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(backup_dir))
    history = model.fit(train, validation_data=evaluation, epochs=model_config.epochs, callbacks=callbacks,
                        verbose=verbose)
    if backup_dir:  # BackupAndRestore removed its checkpoint when fit ended; the stopper's state goes too
        shutil.rmtree(os.path.join(backup_dir, EARLY_STOPPING_STATE), ignore_errors=True)
    check_finite_history(model_name, history.history)
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
