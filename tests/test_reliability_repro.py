"""Reproducibility on CPU: the same seed gives the same test metrics (to 1e-6) and weights, for MEAN and for
OptDist (whose Gumbel-softmax draws random numbers in training); another seed gives other metrics (MEAN).

`MEANConfig(deterministic=True)` makes `training.fit` call `mean_tf.runtime.determinism.configure`, which seeds
Python, NumPy and TensorFlow and enables TensorFlow's op determinism (see that module's docstring).
"""
import numpy as np
import pytest

import mean_tf  # noqa: F401
from tensorflow.python.framework import config as tf_config

from mean_tf.training import fit_predict
from mean_tf.config import MEANConfig
from test_reliability_resume import shared_workspace

CONFIG = dict(shared_units=(16, 8), expert_units=8, attention_units=8, dam_shared_units=8, dam_units=(8,),
              optdist_units=(8,), embedding_dim=2, batch_size=32, epochs=2, patience=1, deterministic=True,
              label_scaling="log1p")  # the Transform of test_reliability_resume: one materialization


def _run(name, manifest, work, seed):
    outcome = fit_predict.run(name, MEANConfig(**CONFIG, seed=seed), manifest, work)
    return outcome.evaluate()["cltv_365"], outcome.model.get_weights(), outcome.p


@pytest.mark.parametrize("name", ["mean", "optdist"])
def test_same_seed_same_metrics(name, tmp_path_factory):
    manifest, work = shared_workspace(tmp_path_factory)
    first_metrics, first_weights, first_p = _run(name, manifest, work, seed=7)
    assert tf_config.is_op_determinism_enabled()
    again_metrics, again_weights, again_p = _run(name, manifest, work, seed=7)
    assert set(first_metrics) == set(again_metrics)
    for metric, value in first_metrics.items():
        assert again_metrics[metric] == pytest.approx(value, rel=1e-6, abs=1e-6, nan_ok=True), metric
    np.testing.assert_allclose(again_p, first_p, rtol=1e-6)
    for a, b in zip(first_weights, again_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    if name == "mean":  # the seed matters: the comparisons above can fail
        other_metrics, _, other_p = _run(name, manifest, work, seed=8)
        assert not np.allclose(other_p, first_p, rtol=1e-4)
        assert any(other_metrics[m] != pytest.approx(v, rel=1e-6) for m, v in first_metrics.items() if np.isfinite(v))
