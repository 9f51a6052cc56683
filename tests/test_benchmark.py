"""The benchmark plan: coverage of Table 1 and the run order."""
from mean_tf.benchmark import plan
from mean_tf.config import ALL_LABELS


def test_plan_covers_every_table1_model_and_trains_multi_horizon_models_once():
    cells = plan.cells(plan.Plan(datasets=("online_retail_ii",), studies=("table1",), seeds=(0,)))
    assert {c.model for c in cells} == set(plan.TABLE1_MODELS + plan.ABLATION_MODELS)
    mtl = [c for c in cells if c.model == "mtl_mean"]
    assert len(mtl) == 1 and mtl[0].labels == ALL_LABELS
    assert sorted(c.labels[0] for c in cells if c.model == "mean") == sorted(ALL_LABELS)
    assert len({c.key for c in cells}) == len(cells)


def test_run_order_puts_cltv_365_with_all_its_seeds_first_then_horizons_then_studies():
    cells = plan.cells(plan.Plan())
    first = cells[: 3 * len(plan.TABLE1_MODELS + plan.ABLATION_MODELS) + 1]  # + the synthetic oracle
    assert all("cltv_365" in c.labels and c.seed == 0 and c.study == "table1" for c in first)
    assert {c.dataset for c in first} == {"online_retail_ii", "cdnow", "synthetic"}
    is_365 = ["cltv_365" in c.labels and c.study == "table1" for c in cells]
    last_365 = max(i for i, flag in enumerate(is_365) if flag)
    assert all(is_365[: last_365 + 1])  # every seed of cltv_365 before any other horizon or study
    assert {c.seed for c in cells[: last_365 + 1]} == {0, 1, 2}
    other_horizons = [i for i, c in enumerate(cells) if c.study == "table1" and not is_365[i] and c.seed == 0]
    assert max(other_horizons) < min(i for i, c in enumerate(cells) if c.study != "table1")
