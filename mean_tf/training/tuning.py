"""One tuning budget for every model: the search spaces, KerasTuner's oracle, and mean-tf's own trial.

Every model gets `TRIALS` random-search trials over the same kind of space: the learning rate, a width
factor applied to every layer width of the config, dropout and weight decay (`REGULARISATION`, every neural
model alike), and the model's own knob (`OWN_KNOBS`): Huber δ for
MEAN, the number of sub-distributions for ODMN, channels for MDAN, candidates for OptDist; for the
two-stage GBDT its learning rate, leaves and L2. A trial trains with the protocol of `mean_tf.training.protocol`
and scores the selection criterion on the eval split; the test split is never read. The number of
distributions n is not tuned: it is fixed by the Transform (bucket boundaries), so the TFX Tuner could
not change it; the benchmark measures it as a sensitivity curve on the eval split instead.

KerasTuner 1.4.8 imports Keras 3, and its `Tuner.run_trial` fits a Keras 3 model with Keras 3 callbacks,
which mean-tf's tf_keras models cannot take (`TF_USE_LEGACY_KERAS=1`). So `CLTVTuner` keeps KerasTuner's
oracle (random search, trial bookkeeping, state on disk: an interrupted search resumes) and overrides
`run_trial` with mean-tf's training. The TFX Tuner component calls `mean_tf.tfx_modules.tuner.tuner_fn` (the
penguin example's wiring); the benchmark calls `make_tuner` with its own trial function.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.models import registry

TRIALS = 6
OBJECTIVE = "val_selection"
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
WIDTH_FACTORS = (0.5, 1.0, 2.0)
# Every layer width of MEANConfig; a model reads only its own, so one rule scales any model.
WIDTH_FIELDS = ("shared_units", "expert_units", "attention_units", "dam_shared_units", "dam_units", "ziln_units",
                "odmn_tower_units", "mdan_channel_units", "optdist_units")
MEAN_FAMILY = ("mean", "mtl_mean", "mean_no_kl", "mean_no_distill", "mvfe_only")
OWN_KNOBS: Dict[str, tuple] = {
    **{name: ("huber_delta", (0.5, 1.0, 2.0)) for name in MEAN_FAMILY},
    "odmn": ("odmn_sub_distributions", (2, 4, 6)),
    "mdan": ("mdan_channels", (3, 4, 5)),
    "optdist": ("optdist_candidates", (2, 3, 4)),
}
# Regularisation, searched for every neural model alike (dropout on the hidden layers, AdamW's weight decay).
REGULARISATION = {"dropout": (0.0, 0.1, 0.3), "weight_decay": (0.0, 1e-5, 1e-4)}
GBDT_SPACE = {"gbdt_learning_rate": (0.03, 0.1, 0.3), "gbdt_max_leaf_nodes": (15, 31, 63),
              "gbdt_l2": (0.0, 1.0, 10.0)}


def search_space(model_name: str, config: Optional[MEANConfig] = None):
    """KerasTuner HyperParameters of `model_name`; each choice's default is the config's value."""
    import keras_tuner

    config = config or MEANConfig()
    spec = registry.spec(model_name)
    hp = keras_tuner.HyperParameters()
    if spec.kind == "classical":
        if model_name != "two_stage_gbdt":
            raise MeanTFError(f"model {model_name!r} has no hyperparameters to tune")
        for name, values in GBDT_SPACE.items():
            hp.Choice(name, values, default=_default(values, getattr(config, name)))
        return hp
    hp.Choice("learning_rate", LEARNING_RATES, default=_default(LEARNING_RATES, config.learning_rate))
    hp.Choice("width", WIDTH_FACTORS, default=1.0)
    if model_name in OWN_KNOBS:
        name, values = OWN_KNOBS[model_name]
        hp.Choice(name, values, default=_default(values, getattr(config, name)))
    for name, values in REGULARISATION.items():
        hp.Choice(name, values, default=_default(values, getattr(config, name)))
    return hp


def _default(values, value):
    return value if value in values else values[len(values) // 2]


def apply(config: MEANConfig, values: Dict[str, object]) -> MEANConfig:
    """`config` with tuned values: config fields as they are, `width` scaling every layer width."""
    changes = {k: v for k, v in values.items() if k != "width"}
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(MEANConfig)})
    if unknown:
        raise MeanTFError(f"tuning: {unknown[0]!r} is not a MEANConfig field")
    factor = float(values.get("width", 1.0))
    if factor != 1.0:
        for name in WIDTH_FIELDS:
            current = getattr(config, name)
            scaled = tuple(max(1, round(u * factor)) for u in current) if isinstance(current, tuple) else \
                max(1, round(current * factor))
            changes[name] = scaled
    return config.replace(**changes)


def make_tuner(model_name: str, trial_fn: Callable[[MEANConfig], float], config: MEANConfig, directory: str,
               project_name: str, max_trials: int = TRIALS, seed: int = 0):
    """A KerasTuner tuner whose trials call `trial_fn(tuned config) -> eval score` (higher is better).

    It resumes a search saved under `directory/project_name`; trials that failed there (an interrupted or
    broken run) do not count toward `max_trials`, so every finished search has `max_trials` scored trials."""
    import keras_tuner

    class CLTVTuner(keras_tuner.Tuner):
        """KerasTuner's oracle with mean-tf's training as the trial (see the module docstring)."""

        def run_trial(self, trial, *args, **kwargs):
            return {OBJECTIVE: float(trial_fn(apply(config, trial.hyperparameters.values)))}

    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective(OBJECTIVE, "max"), max_trials=max_trials, seed=seed,
        hyperparameters=search_space(model_name, config), allow_new_entries=False, tune_new_entries=False)
    tuner = CLTVTuner(oracle=oracle, directory=directory, project_name=project_name, overwrite=False)
    failed = sum(t.status in ("FAILED", "INVALID") for t in tuner.oracle.trials.values())
    tuner.oracle.max_trials = max_trials + failed
    return tuner


def trials_summary(tuner) -> list:
    """[{trial_id, score, values}] of the finished trials, best first."""
    return [{"trial_id": t.trial_id, "score": t.score, "values": dict(t.hyperparameters.values)}
            for t in tuner.oracle.get_best_trials(tuner.oracle.max_trials) if t.score is not None]
