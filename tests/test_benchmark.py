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


def test_run_order_puts_every_model_on_cltv_365_first_and_extra_seeds_last():
    cells = plan.cells(plan.Plan())
    first = cells[: len(plan.TABLE1_MODELS + plan.ABLATION_MODELS)]
    assert all("cltv_365" in c.labels and c.seed == 0 and c.study == "table1" for c in first)
    seeds = [c.seed for c in cells]
    assert seeds.index(1) > max(i for i, c in enumerate(cells) if c.seed == 0 and c.study == "table1")
