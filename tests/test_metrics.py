"""The NumPy CLTV metrics (mean_tf.evaluation.metrics): golden values, independent references, edge cases."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from mean_tf import contract
from mean_tf.evaluation import metrics
from mean_tf.errors import MeanTFError

GOLDEN_Y = [0, 0, 1, 3, 10]
GOLDEN_P = [0.1, 0.5, 0.4, 2, 3]


def zero_inflated(seed, n=500, zero_share=0.7):
    """Money-like y with many zeros and ties, and a noisy rounded prediction with ties."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < zero_share, 0.0, np.round(rng.lognormal(3, 1, n)))
    p = np.round(y * rng.uniform(0.3, 1.7, n) + rng.exponential(5, n))
    return y, p


def lifetime_value_gini(y, p):
    """The google/lifetime_value pandas recipe (cumulative_true + gini_from_gain), with a stable sort."""
    def gain(score):
        frame = pd.DataFrame({"y": y, "s": score}).sort_values("s", ascending=False, kind="mergesort")
        return (frame["y"].cumsum() / frame["y"].sum()).values

    raw = lambda g: 2 * g.sum() / len(g) - 1.0  # noqa: E731
    return raw(gain(p)) / raw(gain(y))


def test_golden_gini():
    assert metrics.normalized_gini(GOLDEN_Y, GOLDEN_P) == pytest.approx(0.966667, abs=1e-6)
    assert metrics.normalized_gini(GOLDEN_Y, -np.array(GOLDEN_P)) == pytest.approx(-0.5, abs=1e-12)


def test_perfect_ranking_gives_gini_one_and_zero_decile_mape():
    y = np.arange(50, 0, -1, dtype=float)
    assert metrics.normalized_gini(y, y) == pytest.approx(1.0, abs=1e-12)
    assert metrics.decile_mape(y, y) == 0.0
    assert metrics.percentile_mape(y, y) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gini_matches_lifetime_value_recipe(seed):
    y, p = zero_inflated(seed)
    assert metrics.normalized_gini(y, p) == pytest.approx(lifetime_value_gini(y, p), abs=1e-12)


def test_gini_ties_keep_input_order():
    y, p = np.array([0.0, 5.0, 1.0]), np.array([1.0, 1.0, 0.0])
    # order by p desc, stable: indices 0, 1, 2 -> gains 0, 5/6, 1
    expected_raw = 2 * np.mean([0.0, 5 / 6, 1.0]) - 1
    oracle_raw = 2 * np.mean([5 / 6, 1.0, 1.0]) - 1
    assert metrics.normalized_gini(y, p) == pytest.approx(expected_raw / oracle_raw, abs=1e-12)
    # swapping the tied pair puts the 5 first: gains 5/6, 5/6, 1
    swapped_raw = 2 * np.mean([5 / 6, 5 / 6, 1.0]) - 1
    assert metrics.normalized_gini(y[[1, 0, 2]], p[[1, 0, 2]]) == pytest.approx(swapped_raw / oracle_raw, abs=1e-12)


def test_percentile_mape_matches_array_split_definition():
    y, p = zero_inflated(3, n=537)
    order = np.argsort(-p, kind="stable")
    scores = []
    for group in np.array_split(order, 100):
        mean_y = y[group].mean()
        if mean_y > 0:
            scores.append(abs(p[group].mean() - mean_y) / mean_y)
    assert metrics.percentile_mape(y, p) == pytest.approx(np.mean(scores), abs=1e-12)
    assert metrics.decile_mape(y, p) == metrics.percentile_mape(y, p, n_bins=10)


def test_percentile_mape_golden_and_small_n():
    # n = 5 < 100 bins: empty groups are skipped, zero-mean groups too: (0.7 + 1/3 + 0.6) / 3
    assert metrics.percentile_mape(GOLDEN_Y, GOLDEN_P) == pytest.approx((0.7 + 1 / 3 + 0.6) / 3, abs=1e-12)
    assert metrics.percentile_mape([2.0], [3.0]) == pytest.approx(0.5)


def test_rank_metrics_match_scipy_and_sklearn():
    y, p = zero_inflated(4)
    assert metrics.spearman(y, p) == pytest.approx(stats.spearmanr(y, p).correlation, abs=1e-12)
    assert metrics.auc(y, p) == pytest.approx(roc_auc_score(y > 0, p), abs=1e-12)
    threshold = np.sort(y)[::-1][49]  # k = ceil(0.1 * 500) = 50
    assert metrics.top_auc(y, p) == pytest.approx(roc_auc_score(y >= threshold, p), abs=1e-12)


def test_top_auc_counts_threshold_ties_and_never_zero_spenders():
    y = np.array([0, 0, 0, 5, 5, 1, 0, 0, 0, 0], dtype=float)
    p = np.array([9, 0, 0, 1, 2, 8, 0, 0, 0, 0], dtype=float)
    # k = 1, threshold 5: both 5s are high value; they score 1 and 2, below 9 and 8 of the rest
    assert metrics.top_auc(y, p) == pytest.approx(roc_auc_score([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], p))
    # only 10 % payers, all zero otherwise: threshold would be 0, but zeros are never high value
    assert metrics.top_auc(np.r_[1.0, np.zeros(29)], np.arange(30.0)) == 0.0


def test_lift_and_gain_curve():
    y = np.arange(1.0, 21.0)
    p = y.copy()
    # top 10 % of 20 = the 2 largest: (20 + 19) / 210 share of value, over 0.1 of customers
    assert metrics.lift_at(y, p) == pytest.approx((39 / 210) / 0.1)
    assert metrics.lift_at(y, np.ones(20)) == pytest.approx((3 / 210) / 0.1)  # ties: input order
    assert metrics.lift_at(GOLDEN_Y, GOLDEN_P) == pytest.approx((10 / 14) / 0.2)  # k = 1 of 5
    share, gains = metrics.gain_curve(GOLDEN_Y, GOLDEN_P)
    np.testing.assert_allclose(share, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(gains, np.array([0, 10, 13, 13, 14, 14]) / 14)


@pytest.mark.parametrize(
    "y, p, expected_nan",
    [
        ([0, 0, 0, 0], [1, 2, 3, 4], set(contract.METRIC_NAMES) | {"value_ratio"}),  # all zero: no value, one class
        ([], [], set(contract.METRIC_NAMES) | {"value_ratio"}),
        ([1, 2, 3, 4], [1, 1, 1, 1], {"spearman", "payer_auc"}),  # ties everywhere, all payers
        ([3.0], [1.0], {"spearman", "payer_auc", "top_auc"}),
        ([2, 2, 2, 2], [1, 2, 3, 4], {"spearman", "payer_auc", "top_auc"}),
    ],
)
def test_edge_cases_return_documented_nan(y, p, expected_nan):
    result = metrics.evaluate(y, p)
    assert {name for name, value in result.items() if math.isnan(value)} == expected_nan


def test_ties_everywhere_are_deterministic():
    y = np.array([0, 4, 0, 1, 0, 0, 2, 0, 0, 3], dtype=float)
    p = np.ones(10)
    result = metrics.evaluate(y, p)
    np.testing.assert_equal(list(result.values()), list(metrics.evaluate(y, p).values()))
    assert result["normalized_gini"] == pytest.approx(lifetime_value_gini(y, p), abs=1e-12)


def test_evaluate_names_and_directions():
    y, p = zero_inflated(5, n=200)
    result = metrics.evaluate(y, p)
    assert tuple(result) == contract.METRIC_NAMES + contract.CALIBRATION_NAMES
    assert set(metrics.HIGHER_IS_BETTER) == set(contract.METRIC_NAMES)
    assert result["normalized_gini"] == metrics.normalized_gini(y, p)
    assert result["lift_at_10"] == metrics.lift_at(y, p, 0.1)
    assert all(isinstance(value, float) for value in result.values())


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.evaluate([1, 2], [1]),
        lambda: metrics.normalized_gini([1, np.nan], [1, 2]),
        lambda: metrics.auc([1, 2], [np.inf, 2]),
        lambda: metrics.percentile_mape([1, 2], [1, 2], n_bins=0),
        lambda: metrics.lift_at([1, 2], [1, 2], top=0.0),
        lambda: metrics.spearman(np.ones((2, 2)), np.ones((2, 2))),
    ],
)
def test_bad_input_raises_one_line_error(call):
    with pytest.raises(MeanTFError):
        call()


money = st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.5, 7.0, 40.0]), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(y=money, seed=st.integers(0, 2**16))
def test_gini_bounded_by_oracle_and_invariant_to_monotone_rescaling(y, seed):
    y = np.array(y)
    p = np.random.default_rng(seed).permutation(len(y)).astype(float)
    gini = metrics.normalized_gini(y, p)
    if y.sum() == 0:
        assert math.isnan(gini)
        return
    assert gini <= 1.0 + 1e-12
    assert metrics.normalized_gini(y, y) == pytest.approx(1.0)
    assert metrics.normalized_gini(y, np.exp(p / 10) * 3) == pytest.approx(gini, abs=1e-12)


def test_value_ratio_and_decile_calibration_golden():
    y = np.array([0, 0, 10, 20, 30, 40, 0, 50, 60, 90], dtype=float)  # sum 300
    p = np.arange(10, dtype=float) * 10  # sum 450, ranks y in input order
    assert metrics.value_ratio(y, p) == pytest.approx(450 / 300)
    assert metrics.value_ratio(y, 2 * y) == pytest.approx(2.0)
    assert math.isnan(metrics.value_ratio(np.zeros(3), np.ones(3)))
    table = metrics.decile_calibration(y, p, n_bins=5)  # groups of 2 by p descending
    np.testing.assert_array_equal(table["customers"], [2, 2, 2, 2, 2])
    np.testing.assert_allclose(table["mean_predicted"], [85, 65, 45, 25, 5])
    np.testing.assert_allclose(table["mean_actual"], [75, 25, 35, 15, 0])
    np.testing.assert_allclose(table["ratio"][:4], [85 / 75, 65 / 25, 45 / 35, 25 / 15])
    assert math.isnan(table["ratio"][4])
    # the groups are those of Percentile MAPE
    errors = np.abs(table["mean_predicted"][:4] - table["mean_actual"][:4]) / table["mean_actual"][:4]
    assert metrics.percentile_mape(y, p, n_bins=5) == pytest.approx(errors.mean())
