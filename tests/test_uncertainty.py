"""Per-customer uncertainty: ZILN quantiles against scipy, bucket money ranges against a hand count."""
import numpy as np
from scipy import stats

import mean_tf  # noqa: F401
import tensorflow as tf

from mean_tf.serving import uncertainty


def scipy_ziln_quantile(payer_logit, mu, raw_sigma, q):
    p = 1.0 / (1.0 + np.exp(-payer_logit))
    sigma = max(np.log1p(np.exp(raw_sigma)), np.sqrt(1e-7))
    if q <= 1.0 - p:
        return 0.0
    return stats.lognorm(s=sigma, scale=np.exp(mu)).ppf((q - (1.0 - p)) / p)


def test_ziln_quantiles_match_scipy():
    rng = np.random.default_rng(0)
    logits = np.c_[rng.normal(0, 2, 50), rng.normal(3, 1, 50), rng.normal(0, 1, 50)].astype(np.float32)
    got = uncertainty.ziln_quantiles_tf(tf.constant(logits)).numpy()
    expected = np.array([[scipy_ziln_quantile(*row.astype(np.float64), q) for q in uncertainty.QUANTILES]
                         for row in logits])
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)
    assert (got[:, 0] == 0).any() and (got[:, 2] > 0).any()  # 0 where the level is within P(no spend)
    assert np.all(np.diff(got, axis=1) >= 0)
    assert [uncertainty.quantile_name(q) for q in uncertainty.QUANTILES] == ["cltv_q10", "cltv_q50", "cltv_q90"]


def test_ziln_quantiles_are_capped():
    capped = uncertainty.ziln_quantiles_tf(tf.constant([[5.0, 200.0, 3.0]]), max_log_prediction=np.log(1000.0))
    np.testing.assert_allclose(capped.numpy(), 1000.0, rtol=1e-5)


def test_bucket_money_ranges():
    money = np.array([0, 0, 5, 7, 20, 25, 90, 300.0])
    bucket = np.array([0, 0, 1, 1, 2, 2, 4, 4])  # bucket 3 has no train row
    lower, upper = uncertainty.bucket_money_ranges(money, bucket, 5)
    np.testing.assert_array_equal(lower, [0, 5, 20, 20, 90])
    np.testing.assert_array_equal(upper, [0, 20, 20, 90, np.inf])
