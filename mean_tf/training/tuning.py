"""One tuning budget and one choosing rule for every model: the search spaces, KerasTuner's oracle, mean-tf's trial.

Every model gets `TRIALS` random-search trials over the same kind of space: the learning rate, a width
factor applied to every layer width of the config, dropout and weight decay (`REGULARISATION`, every neural
model alike), and the model's own knob (`OWN_KNOBS`): Huber δ for
MEAN, the number of sub-distributions for ODMN, channels for MDAN, candidates for OptDist; for the
two-stage GBDT its learning rate, leaves and L2. A trial trains with the protocol of `mean_tf.training.protocol`
and scores the eval split; the test split is never read. The number of
distributions n is not tuned: it is fixed by the Transform (bucket boundaries), so the TFX Tuner could
not change it; the benchmark measures it as a sensitivity curve on the eval split instead.

The rule, the same for every model, is built against the noise of the eval criterion (one eval Gini of a few
thousand heavy-tailed rows moves more from one epoch to the next than between settings):
- the first trial is the defaults, so every search measures the setting it would replace;
- a trial's score is the mean of its best `SCORE_EPOCHS` epochs of the selection criterion (`trial_score`), not
  the single best epoch, whose maximum over a noisy curve rewards luck;
- the best trial is chosen only if it beats the defaults' trial by more than `margin`, the seed spread of that
  score at the defaults (the benchmark's noise study measures it); otherwise the defaults stay (`choose`).

KerasTuner 1.4.8 imports Keras 3, and its `Tuner.run_trial` fits a Keras 3 model with Keras 3 callbacks,
which mean-tf's tf_keras models cannot take (`TF_USE_LEGACY_KERAS=1`). So `CLTVTuner` keeps KerasTuner's
oracle (random search, trial bookkeeping, state on disk: an interrupted search resumes) and overrides
`run_trial` with mean-tf's training, and `get_best_hyperparameters` with `choose`. The TFX Tuner component
calls `mean_tf.tfx_modules.tuner.tuner_fn` (the penguin example's wiring); the benchmark calls `make_tuner`
with its own trial function.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.models import registry

TRIALS = 12
SCORE_EPOCHS = 3
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
            _choice(hp, name, values, getattr(config, name))
        return hp
    _choice(hp, "learning_rate", LEARNING_RATES, config.learning_rate)
    _choice(hp, "width", WIDTH_FACTORS, 1.0)
    if model_name in OWN_KNOBS:
        name, values = OWN_KNOBS[model_name]
        _choice(hp, name, values, getattr(config, name))
    for name, values in REGULARISATION.items():
        _choice(hp, name, values, getattr(config, name))
    return hp


def _choice(hp, name: str, values: tuple, default) -> None:
    """A choice among `values` and the config's own value (the default), so the defaults are a point of the space."""
    hp.Choice(name, tuple(sorted(set(values) | {default})), default=default)


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


def trial_score(curve: Sequence[float], higher_is_better: bool = True, epochs: int = SCORE_EPOCHS) -> float:
    """The mean of the best `epochs` finite values of a per-epoch eval criterion (higher or lower is better);
    NaN if none is finite."""
    values = np.asarray([v for v in curve if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("nan")
    ordered = np.sort(values)
    return float(np.mean(ordered[-epochs:] if higher_is_better else ordered[:epochs]))


def default_values(model_name: str, config: Optional[MEANConfig] = None) -> Dict[str, object]:
    """The search space's point that is `config` itself (every choice at its default)."""
    return {hp.name: hp.default for hp in search_space(model_name, config).space}


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a search chose and why: the chosen values, and the scores the rule compared."""

    values: Dict[str, object]
    score: float
    adopted: bool  # the best trial beat the defaults by more than the margin (False: the defaults stay)
    best_score: float
    default_score: float  # NaN if the defaults' trial did not finish
    runner_up_score: float  # the second-best trial's score, NaN with one trial
    margin: float


def choose(trials: Sequence[Mapping], defaults: Mapping[str, object], margin: float = 0.0) -> Choice:
    """The rule: the best trial if it beats the defaults' trial by more than `margin`, else the defaults.

    `trials` as `trials_summary` gives them (best first, higher is better). Without a finished defaults' trial
    the best is chosen (nothing to compare against), and `default_score` is NaN."""
    if not trials:
        raise MeanTFError("tuning: no trial of the search finished")
    best = trials[0]
    default = next((t for t in trials if _same(t["values"], defaults)), None)
    default_score = float(default["score"]) if default is not None else float("nan")
    adopted = default is None or best is default or best["score"] - default_score > margin
    chosen = best if adopted else default
    runner_up = float(trials[1]["score"]) if len(trials) > 1 else float("nan")
    return Choice(dict(chosen["values"]), float(chosen["score"]), bool(adopted and default is not best),
                  float(best["score"]), default_score, runner_up, float(margin))


def _same(values: Mapping[str, object], defaults: Mapping[str, object]) -> bool:
    return all(np.isclose(float(values.get(k, np.nan)), float(v)) if isinstance(v, (int, float)) else values.get(k) == v
               for k, v in defaults.items())


def make_tuner(model_name: str, trial_fn: Callable[[MEANConfig], float], config: MEANConfig, directory: str,
               project_name: str, max_trials: int = TRIALS, seed: int = 0, margin: float = 0.0):
    """A KerasTuner tuner whose trials call `trial_fn(tuned config) -> eval score` (higher is better), the first
    trial at the defaults; its `get_best_hyperparameters` follows `choose` with `margin`.

    It resumes a search saved under `directory/project_name`; trials that failed there (an interrupted or
    broken run) do not count toward `max_trials`, so every finished search has `max_trials` scored trials."""
    import keras_tuner
    from keras_tuner.engine.trial import TrialStatus

    defaults = default_values(model_name, config)

    class DefaultsFirstOracle(keras_tuner.oracles.RandomSearchOracle):
        """Random search whose first trial is the defaults."""

        def populate_space(self, trial_id):
            if not self._duplicate(defaults):
                return {"status": TrialStatus.RUNNING, "values": dict(defaults)}
            return super().populate_space(trial_id)

    class CLTVTuner(keras_tuner.Tuner):
        """KerasTuner's oracle with mean-tf's training as the trial and `choose` as the answer (module docstring)."""

        def run_trial(self, trial, *args, **kwargs):
            return {OBJECTIVE: float(trial_fn(apply(config, trial.hyperparameters.values)))}

        def get_best_hyperparameters(self, num_trials=1):
            chosen = choose(trials_summary(self), defaults, margin).values
            hp = self.oracle.hyperparameters.copy()
            hp.values = dict(chosen)
            return [hp][:num_trials]

    oracle = DefaultsFirstOracle(
        objective=keras_tuner.Objective(OBJECTIVE, "max"), max_trials=max_trials, seed=seed,
        hyperparameters=search_space(model_name, config), allow_new_entries=False, tune_new_entries=False)
    tuner = CLTVTuner(oracle=oracle, directory=directory, project_name=project_name, overwrite=False)
    failed = sum(t.status in ("FAILED", "INVALID") for t in tuner.oracle.trials.values())
    tuner.oracle.max_trials = max_trials + failed
    return tuner


def fit_score(history: Mapping[str, Sequence[float]], selection_metric: str) -> float:
    """A trial's score from its fit's per-epoch history: `trial_score` of the selection criterion, negated for a
    loss (the search maximises)."""
    from mean_tf.training import selection

    higher = selection.higher_is_better(selection_metric)
    score = trial_score(history.get(selection.SELECTION_KEY, []), higher)
    return score if higher else -score


def trials_summary(tuner) -> list:
    """[{trial_id, score, values}] of the finished trials, best first."""
    return [{"trial_id": t.trial_id, "score": t.score, "values": dict(t.hyperparameters.values)}
            for t in tuner.oracle.get_best_trials(tuner.oracle.max_trials) if t.score is not None]
