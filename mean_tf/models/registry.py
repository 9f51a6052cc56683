"""One registry of models, by name: the CLI, the Trainer's run_fn, the benchmark and the notebooks all build from here."""
from __future__ import annotations

import dataclasses
import importlib

from mean_tf.config import MEANConfig
from mean_tf.contract import LABELS
from mean_tf.errors import MeanTFError
from mean_tf.models.data_facts import DataFacts


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    target: str  # "module:callable(config) -> model"
    multi_horizon: bool = False  # trained once on all four labels
    kind: str = "keras"  # "keras": a CLTVModel trained by mean_tf.training.protocol; "classical": fit/predict adapter
    overrides: tuple = ()  # config changes that define the variant, e.g. (("use_kl", False),)
    description: str = ""


_SPECS = [
    ModelSpec("mean", "mean_tf.models.mean:MEAN", description="MEAN (paper, sec. 3)"),
    ModelSpec("mtl_mean", "mean_tf.models.mean:MEAN", multi_horizon=True, description="MEAN on all four horizons"),
    ModelSpec("mean_no_kl", "mean_tf.models.mean:MEAN", overrides=(("use_kl", False),), description="ablation: without L_kl"),
    ModelSpec("mean_no_distill", "mean_tf.models.mean:MEAN", overrides=(("use_soft_distillation", False),),
              description="ablation: without the soft distillation term of L_dis"),
    ModelSpec("mvfe_only", "mean_tf.models.mean:MEAN", overrides=(("use_dam", False),),
              description="ablation: MVFE only (no DAM, no alignment)"),
    ModelSpec("mean_ziln", "mean_tf.models.mean:MEAN", overrides=(("cltv_head", "ziln"),),
              description="extension beyond the paper: MEAN's body (MVFE, attention, DAM, alignment) under a ZILN head"),
    ModelSpec("mtl_mean_ziln", "mean_tf.models.mean:MEAN", multi_horizon=True, overrides=(("cltv_head", "ziln"),),
              description="extension beyond the paper: MTL-MEAN's body under one ZILN head per horizon"),
    ModelSpec("dnn_ziln", "mean_tf.models.dnn_ziln:DNNZILN", description="DNN-ZILN (Wang et al. 2019)"),
    ModelSpec("mtl_ziln", "mean_tf.models.dnn_ziln:MTLZILN", multi_horizon=True, description="MMoE + one ZILN head per horizon"),
    ModelSpec("odmn", "mean_tf.models.odmn:ODMN", multi_horizon=True, description="ODMN (Li et al. 2022)"),
    ModelSpec("mdan", "mean_tf.models.mdan:MDAN", description="MDAN (Liu et al. 2024)"),
    ModelSpec("optdist", "mean_tf.models.optdist:OptDist", description="OptDist (Weng et al. 2024)"),
    ModelSpec("two_stage_gbdt", "mean_tf.models.classical:TwoStageGBDT", kind="classical",
              description="P(y>0) x E[y|y>0] with HistGradientBoosting"),
    ModelSpec("bgnbd_gg", "mean_tf.models.classical:BGNBDGammaGamma", kind="classical",
              description="BG/NBD + Gamma-Gamma (lifetimes), transaction datasets only"),
    ModelSpec("last_period", "mean_tf.models.classical:LastPeriod", kind="classical",
              description="spend of the same-length window before the cutoff"),
]
SPECS = {s.name: s for s in _SPECS}
MODEL_NAMES = tuple(SPECS)


def spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise MeanTFError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return SPECS[name]


def is_multi_horizon(name: str) -> bool:
    return spec(name).multi_horizon


def model_config(name: str, config: MEANConfig) -> MEANConfig:
    """The config a model is built with: the variant's overrides, and all four labels for multi-horizon models."""
    s = spec(name)
    changes = dict(s.overrides)
    if s.multi_horizon:
        changes["labels"] = LABELS
    return config.replace(**changes) if changes else config


def model_class(name: str):
    """The class (or factory) registered as `name`."""
    module, attr = spec(name).target.split(":")
    return getattr(importlib.import_module(module), attr)


def labels(name: str, config: MEANConfig) -> tuple:
    """The labels model `name` trains on: all four for a multi-horizon model, else `config.labels`."""
    return LABELS if spec(name).multi_horizon else tuple(config.labels)


def build(name: str, config: MEANConfig | None = None, facts: DataFacts | None = None):
    """Build the model registered as `name` (a CLTVModel, or a classical fit/predict adapter) from the
    variant's config and, for a Keras model, what the training data fixes (`DataFacts`)."""
    config = model_config(name, config or MEANConfig())
    if spec(name).kind == "keras":
        return model_class(name)(config, facts)
    return model_class(name)(config)
