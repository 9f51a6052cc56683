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
