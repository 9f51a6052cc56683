"""Model selection of `mean_tf.training.protocol`: one eval-split criterion decides early stopping and the restored epoch.

`ModelSelection` scores the model after every epoch on `MEANConfig.selection_metric`: by default the
normalised Gini of the money prediction on the eval split (`mean_tf.evaluation.metrics`, mean over the model's
labels), or a logged eval loss (`val_loss`, or `val_prediction_loss`, the model's own prediction term).
Ties go to the lower prediction loss. It stops after `patience` epochs without improvement or once the
optimizer has taken `max_steps` steps, restores the best epoch's weights, and logs `val_selection` so the
history shows the criterion. With `state_dir`, its state survives a killed process (see
`training.fit(backup_dir=...)`).

`BatchNormReestimation` re-estimates the running statistics of every BatchNormalization layer on
training batches before each evaluation (the `bn_reestimate` alternative to a derived momentum).
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable, Optional

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

from mean_tf.evaluation import metrics
from mean_tf.errors import MeanTFError
from mean_tf.runtime.files import atomic_file, write_json

SELECTION_KEY = "val_selection"
PREDICTION_LOSS_KEY = "val_prediction_loss"


def derived_bn_momentum(steps_per_epoch: int, keras_default: float = 0.99) -> float:
    """min(0.99, 0.01 ** (1 / steps)): after one epoch the starting statistics weigh at most 1 %."""
    return min(keras_default, 0.01 ** (1.0 / max(int(steps_per_epoch), 1)))


def higher_is_better(criterion: str) -> bool:
    """True for a metric of `mean_tf.evaluation.metrics` that grows with quality; False for a loss."""
    return metrics.HIGHER_IS_BETTER.get(criterion, False)


class ModelSelection(tf.keras.callbacks.Callback):
    """Early stopping and restore-best on one eval criterion; logs `val_selection` each epoch.

    `score_fn(model) -> float` computes a metric criterion on the eval split (unused for a loss
    criterion, which is read from the epoch's logs). A NaN score never counts as an improvement.
    """

    def __init__(self, criterion: str, prediction_loss: str, patience: int, max_steps: int,
                 score_fn: Optional[Callable[[tf.keras.Model], float]] = None, state_dir: Optional[str] = None):
        super().__init__()
        self.criterion = criterion
        self.prediction_loss = "val_" + prediction_loss
        self.patience = int(patience)
        self.max_steps = int(max_steps)
        self.score_fn = score_fn
        self.state_dir = state_dir
        self.sign = 1.0 if higher_is_better(criterion) else -1.0
        self._first_epoch = True
        self._reset()

    def _reset(self):
        self.best = -math.inf  # sign * criterion: larger is better
        self.best_tie = math.inf  # the prediction loss of the best epoch
        self.best_epoch = 0
        self.wait = 0
        self.best_weights = None
        self.hit_max_steps = False

    def on_train_begin(self, logs=None):
        self._reset()
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and epoch > 0 and self.state_dir:
            self._load(epoch - 1)
        self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.prediction_loss in logs:
            logs[PREDICTION_LOSS_KEY] = logs[self.prediction_loss]
        if self.criterion in logs:
            value = float(logs[self.criterion])
        elif self.criterion.startswith("val_"):
            raise MeanTFError(f"selection_metric {self.criterion!r} is not logged by this model "
                              f"(logged: {', '.join(sorted(k for k in logs if k.startswith('val_')))})")
        else:
            value = float(self.score_fn(self.model))
        logs[SELECTION_KEY] = value
        tie = float(logs.get(self.prediction_loss, math.inf))
        score = self.sign * value if np.isfinite(value) else -math.inf
        if score > self.best or (score == self.best and score > -math.inf and tie < self.best_tie):
            self.best, self.best_tie, self.best_epoch, self.wait = score, tie, epoch, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
        steps = int(self.model.optimizer.iterations.numpy())
        if steps >= self.max_steps:
            self.hit_max_steps = True
        if self.wait >= self.patience or self.hit_max_steps:
            self.model.stop_training = True
        if self.state_dir and self.model.distribute_strategy.extended.should_checkpoint:
            self._save(epoch)

    @property
    def best_value(self) -> float:
        """The criterion at the selected epoch (NaN if no epoch scored)."""
        return self.sign * self.best if np.isfinite(self.best) else float("nan")

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    # --- state that survives a killed process ----------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    def _save(self, epoch: int) -> None:
        tf.io.gfile.makedirs(self.state_dir)  # the Trainer's backup folder may be gs://
        weights = self._path(f"best-{self.best_epoch}.npz")
        if self.best_weights is not None and self.best_epoch == epoch:
            with atomic_file(weights) as tmp:
                np.savez(tmp, *self.best_weights)
        state = {"best": self.best, "best_tie": self.best_tie, "best_epoch": self.best_epoch, "wait": self.wait,
                 "hit_max_steps": self.hit_max_steps}
        write_json(self._path(f"state-{epoch}.json"), state)
        keep = {f"state-{epoch}.json", f"state-{epoch - 1}.json", f"best-{self.best_epoch}.npz"}
        previous = self._read(epoch - 1)
        if previous:
            keep.add(f"best-{previous['best_epoch']}.npz")
        for name in tf.io.gfile.listdir(self.state_dir):
            if name not in keep:
                tf.io.gfile.remove(self._path(name))

    def _read(self, epoch: int) -> Optional[dict]:
        path = self._path(f"state-{epoch}.json")
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def _load(self, epoch: int) -> None:
        state = self._read(epoch)
        if state is None:
            raise MeanTFError(f"cannot resume training: {self._path(f'state-{epoch}.json')} is missing "
                              f"(delete the backup folder {os.path.dirname(self.state_dir)} to start over)")
        self.best, self.best_tie = state["best"], state["best_tie"]
        self.best_epoch, self.wait, self.hit_max_steps = state["best_epoch"], state["wait"], state["hit_max_steps"]
        with tf.io.gfile.GFile(self._path(f"best-{self.best_epoch}.npz"), "rb") as f, np.load(f) as weights:
            self.best_weights = [weights[f"arr_{i}"] for i in range(len(weights.files))]


def batch_norm_layers(model: tf.keras.Model):
    """Every BatchNormalization layer inside `model`, nested layers included."""
    return [layer for layer in model.submodules if isinstance(layer, tf.keras.layers.BatchNormalization)]


def reestimate_batch_norm(model: tf.keras.Model, batches) -> int:
    """Set each BN layer's running statistics to the average of its batch statistics over `batches`.

    Runs the model in training mode (no gradient step) with momentum i / (i + 1) for batch i, so the
    running mean and variance become the plain average over the batches. Returns the batch count.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for count, (features, _) in enumerate(batches, 1):
            for layer in layers:
                layer.momentum = (count - 1) / count
            model(features, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return count


class BatchNormReestimation(tf.keras.callbacks.Callback):
    """Before each evaluation of `fit`, re-estimate BN statistics on `num_batches` training batches
    (`reestimate_batch_norm`); the restored best epoch keeps the statistics its evaluation used."""

    def __init__(self, train_dataset: tf.data.Dataset, num_batches: int):
        super().__init__()
        self.train_dataset = train_dataset
        self.num_batches = int(num_batches)

    def on_test_begin(self, logs=None):
        reestimate_batch_norm(self.model, self.train_dataset.take(self.num_batches))
