"""mean_tf.training.tuning: the same kind of search space for every model, KerasTuner's oracle driving mean-tf's own
trials (resumable), tuned values applied to the config, and the TFX Tuner wiring."""
import numpy as np
import pytest

import mean_tf  # noqa: F401

from mean_tf.training import tuning
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError


@pytest.mark.parametrize("model, own", [("mean", "huber_delta"), ("odmn", "odmn_sub_distributions"),
                                        ("mdan", "mdan_channels"), ("optdist", "optdist_candidates"),
                                        ("dnn_ziln", None), ("mtl_ziln", None)])
def test_every_neural_model_searches_learning_rate_width_regularisation_and_its_own_knob(model, own):
    space = tuning.search_space(model)
    names = {hp.name for hp in space.space}
    assert names == {"learning_rate", "width", "dropout", "weight_decay"} | ({own} if own else set())
    assert space.values["dropout"] == 0.0 and space.values["weight_decay"] == 0.0  # the defaults: none
    assert space.values["learning_rate"] == MEANConfig().learning_rate and space.values["width"] == 1.0


def test_gbdt_searches_learning_rate_leaves_and_l2_and_the_heuristics_have_nothing_to_tune():
    assert {hp.name for hp in tuning.search_space("two_stage_gbdt").space} == set(tuning.GBDT_SPACE)
    with pytest.raises(MeanTFError, match="nothing|no hyperparameters"):
        tuning.search_space("last_period")


def test_a_trial_scores_the_mean_of_its_best_three_epochs():
    assert np.isclose(tuning.trial_score([0.1, 0.5, float("nan"), 0.3, 0.4]), 0.4)
    assert np.isclose(tuning.trial_score([0.9, 0.5, 0.3, 0.4], higher_is_better=False), 0.4)  # a loss: the lowest
    assert np.isclose(tuning.trial_score([0.2]), 0.2) and np.isnan(tuning.trial_score([float("nan")]))
    history = {"val_selection": [3.0, 1.0, 2.0, 5.0]}
    assert np.isclose(tuning.fit_score(history, "normalized_gini"), 10 / 3)
    assert np.isclose(tuning.fit_score(history, "val_loss"), -2.0)  # the search maximises


def test_the_defaults_are_a_point_of_the_space_even_off_its_grid():
    config = MEANConfig(learning_rate=5e-4, dropout=0.2)
    space = tuning.search_space("mean", config)
    learning_rate = next(hp for hp in space.space if hp.name == "learning_rate")
    assert learning_rate.default == 5e-4 and 5e-4 in learning_rate.values
    assert tuning.default_values("mean", config)["dropout"] == 0.2
    assert tuning.apply(config, tuning.default_values("mean", config)) == config


def test_the_rule_keeps_the_defaults_unless_the_best_beats_them_by_the_margin():
    defaults = {"learning_rate": 1e-3, "width": 1.0}
    trials = [{"score": 0.74, "values": {"learning_rate": 3e-3, "width": 1.0}},
              {"score": 0.73, "values": dict(defaults)}, {"score": 0.70, "values": {"learning_rate": 3e-4, "width": 2.0}}]
    within = tuning.choose(trials, defaults, margin=0.02)
    assert within.values == defaults and not within.adopted and within.score == 0.73
    assert (within.best_score, within.default_score, within.runner_up_score) == (0.74, 0.73, 0.73)
    beyond = tuning.choose(trials, defaults, margin=0.005)
    assert beyond.values["learning_rate"] == 3e-3 and beyond.adopted
    best_is_default = tuning.choose(trials[1:], defaults, margin=0.0)
    assert best_is_default.values == defaults and not best_is_default.adopted
    no_default = tuning.choose(trials[:1], defaults, margin=0.5)  # nothing to compare against: the best
    assert no_default.values["learning_rate"] == 3e-3 and np.isnan(no_default.default_score)


def test_apply_scales_every_width_and_sets_config_fields():
    config = tuning.apply(MEANConfig(), {"learning_rate": 3e-3, "width": 0.5, "huber_delta": 2.0})
    assert config.learning_rate == 3e-3 and config.huber_delta == 2.0
    assert config.shared_units == (256, 128) and config.expert_units == 64 and config.dam_units == (128, 64, 32)
    assert tuning.apply(MEANConfig(), {}) == MEANConfig()
    with pytest.raises(MeanTFError, match="not a MEANConfig field"):
        tuning.apply(MEANConfig(), {"depth": 3})


def test_the_oracle_drives_our_trials_finds_the_best_and_resumes(tmp_path):
    seen = {}

    def trial(config):  # a score with a known optimum: learning rate 3e-3, delta 2, full width
        score = (-abs(np.log10(config.learning_rate / 3e-3)) - abs(config.huber_delta - 2.0)
                 - abs(config.expert_units - 128) / 128)
        seen[(config.learning_rate, config.huber_delta, config.expert_units, config.dropout, config.weight_decay)] = score
        return score

    tuner = tuning.make_tuner("mean", trial, MEANConfig(), str(tmp_path), "mean", max_trials=8, seed=0)
    tuner.search()
    summary = tuning.trials_summary(tuner)
    assert len(summary) == len(seen) == 8  # eight distinct points of the 3 x 3 x 3 x 3 x 3 space
    assert summary[0]["score"] == max(seen.values())
    best = tuning.apply(MEANConfig(), summary[0]["values"])
    assert seen[(best.learning_rate, best.huber_delta, best.expert_units, best.dropout, best.weight_decay)] == \
        summary[0]["score"]
    again = tuning.make_tuner("mean", trial, MEANConfig(), str(tmp_path), "mean", max_trials=8, seed=0)
    again.search()  # a finished search reloads from disk and runs nothing
    assert len(seen) == 8 and tuning.trials_summary(again)[0]["score"] == summary[0]["score"]


def test_the_first_trial_is_the_defaults_and_the_tuner_answers_with_the_rule(tmp_path):
    calls = []

    def trial(config):  # the defaults score 0; one other point scores a little more, within a margin of 10
        calls.append(config)
        return 0.0 if len(calls) == 1 else 1.0 if len(calls) == 2 else -1.0

    tuner = tuning.make_tuner("mean", trial, MEANConfig(), str(tmp_path), "strict", max_trials=4, seed=0, margin=10.0)
    tuner.search()
    assert calls[0] == MEANConfig()  # the defaults ran first
    assert tuner.get_best_hyperparameters()[0].values == tuning.default_values("mean")  # what TFX's Tuner writes
    loose = tuning.make_tuner("mean", trial, MEANConfig(), str(tmp_path), "strict", max_trials=4, seed=0, margin=0.5)
    assert tuning.apply(MEANConfig(), loose.get_best_hyperparameters()[0].values) == calls[1]


def test_failed_trials_of_a_resumed_search_do_not_count_toward_its_budget(tmp_path):
    calls = []

    def broken(config):
        calls.append(config)
        raise RuntimeError("a bug fixed before the rerun")

    def trial(config):
        calls.append(config)
        return -abs(np.log10(config.learning_rate / 3e-3))

    first = tuning.make_tuner("mean", broken, MEANConfig(), str(tmp_path), "mean", max_trials=4, seed=0)
    with pytest.raises(Exception):
        first.search()  # KerasTuner gives up after 3 consecutive failures
    failed = len(calls)
    assert failed == 3
    again = tuning.make_tuner("mean", trial, MEANConfig(), str(tmp_path), "mean", max_trials=4, seed=0)
    again.search()
    assert len(tuning.trials_summary(again)) == 4 and len(calls) == failed + 4
