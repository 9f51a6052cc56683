"""The benchmark harness: the plan, a smoke run through the CLI (tiny data, one seed, two epochs), resume, report."""
import json

import pytest

from mean_tf.benchmark import plan
from mean_tf.cli import main
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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    argv = ["benchmark", "--smoke", "--work", str(work), "--models", "mean,odmn,last_period", "--only", "table1,delta"]
    assert main(argv) == 0
    return work, argv


def test_smoke_run_scores_each_cell_and_renders_the_report(smoke):
    work, _ = smoke
    rows = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"mean", "odmn", "last_period"}
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:
        for values in r["metrics"].values():
            assert 0.0 < values["normalized_gini"] <= 1.0
    assert any(r["study"] == "delta" for r in rows)
    report = (work / "docs" / "results.md").read_text()
    assert "Table 1" in report and "| mean |" in report and "Targeting study" in report
    assert (work / "docs" / "figures" / "online_retail_ii_gain_cltv_365.png").exists()
    assert (work / "docs" / "figures" / "online_retail_ii_delta_percentile_mape.png").exists()


def test_a_rerun_skips_finished_cells(smoke, capsys):
    work, argv = smoke
    before = (work / "results.jsonl").read_text()
    assert main(argv) == 0
    assert (work / "results.jsonl").read_text() == before
    assert "0 to run" in capsys.readouterr().err
