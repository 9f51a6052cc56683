"""Train one registry model on one dataset and predict a split in money: the path shared by
`mean-tf train`, the benchmark and the notebooks (the TFX Trainer runs the same `mean_tf.training.protocol`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Dict, Optional, Sequence

import numpy as np

from mean_tf.training import calibration, protocol
from mean_tf.evaluation import metrics
from mean_tf.transform import preprocessing
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.models import registry


@dataclasses.dataclass
class Outcome:
    """True and predicted money on one split, [N, H] each, columns in `labels` order."""

    labels: tuple
    y: np.ndarray
    p: np.ndarray
    fit: Optional[protocol.FitResult] = None  # Keras models only
    model: object = None
    eval: Optional["Outcome"] = None  # the eval split's, when `run(..., with_eval=True)`
    calibrations: Optional[Dict[str, calibration.Calibration]] = None  # set by `calibrated`

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        return {label: metrics.evaluate(self.y[:, i], self.p[:, i]) for i, label in enumerate(self.labels)}


def calibrated(outcome: Outcome, config: MEANConfig) -> Optional[Outcome]:
    """`outcome` with its predictions passed through the money calibration fitted on `outcome.eval`
    (`mean_tf.training.calibration`, as the serving model does); None if `config.calibration` is "none", there
    is no eval outcome, or the eval split cannot be calibrated (no positive value)."""
    if config.calibration == "none" or outcome.eval is None:
        return None
    try:
        fitted = calibration.fit_columns(outcome.eval.p, outcome.eval.y, outcome.labels, config.calibration)
    except MeanTFError:
        return None
    return dataclasses.replace(outcome, p=calibration.apply_columns(fitted, outcome.p, outcome.labels), eval=None,
                               calibrations=fitted)


def materialize_cached(manifest, config: MEANConfig, work_dir: str,
                       beam_pipeline_args: Sequence[str] = ()) -> preprocessing.Materialized:
    """Transform the dataset once per Transform setting, under `work_dir/transformed/<name>/<hash>`
    (`beam_pipeline_args`: how Beam runs it, which does not change the output)."""
    key = hashlib.sha1(json.dumps(preprocessing.transform_config(manifest, config), sort_keys=True).encode()).hexdigest()
    return preprocessing.materialize(manifest, config, os.path.join(work_dir, "transformed", manifest.name, key[:12]),
                                     beam_pipeline_args)


def run(model_name: str, config: MEANConfig, manifest, work_dir: str, split: str = "test",
        verbose: int = 0, backup_dir: Optional[str] = None, with_eval: bool = False,
        beam_pipeline_args: Sequence[str] = ()) -> Outcome:
    """Fit `model_name` (train split, model selection on eval) and predict `split` in money
    (and the eval split too, as `Outcome.eval`, with `with_eval`); `beam_pipeline_args` run the Transform."""
    from mean_tf.data.manifest import read_split

    labels = registry.labels(model_name, config)
    missing = [label for label in labels if label not in manifest.labels]
    if missing:
        raise MeanTFError(f"label {missing[0]!r} is not a label of dataset {manifest.name} ({', '.join(manifest.labels)})")
    if registry.spec(model_name).kind == "classical":
        model = protocol.fit_classical(model_name, registry.model_config(model_name, config), manifest)

        def classical(name):
            y = read_split(manifest, name)[list(labels)].to_numpy(float)
            return Outcome(labels, y, protocol.predict_classical(model, manifest, name), model=model)

        outcome = classical(split)
        outcome.eval = classical("eval") if with_eval else None
        return outcome
    mat = materialize_cached(manifest, config, work_dir, beam_pipeline_args)
    result = protocol.fit(model_name, config, mat.out_dir, mat.files("train"), mat.files("eval"),
                          verbose=verbose, backup_dir=backup_dir)
    spec = mat.tf_transform_output().transformed_feature_spec()

    def keras(name):
        data = protocol.make_dataset(mat.files(name), spec, list(labels), result.config.batch_size)
        p = protocol.predict_money(result.model, data, result.label_transform, labels)
        return Outcome(labels, protocol.dataset_targets(data, "raw"), p, fit=result, model=result.model)

    outcome = keras(split)
    outcome.eval = keras("eval") if with_eval else None
    return outcome
