"""The benchmark on user-built public-benchmark datasets (`--datasets NAME:FOLDER`): the plan's cells follow the
dataset's labels, and a smoke run on each fixture dataset scores its cells and reports them."""
import numpy as np
import pytest

import public_fixtures as pf
from mean_tf import cli
from mean_tf.benchmark import plan, report
from mean_tf.contract import LABELS


def test_plan_follows_a_user_datasets_labels():
    p = plan.with_datasets(plan.Plan(), {"kaggle_shoppers": ("cltv_365",), "criteo_ssc": ("conversion_value",),
                                         "kaggle_horizons": LABELS})
    cells = plan.cells(p)
    for name, labels in (("kaggle_shoppers", {("cltv_365",)}), ("criteo_ssc", {("conversion_value",)})):
        mine = [c for c in cells if c.dataset == name]
        assert {c.labels for c in mine} == labels
        assert not {c.model for c in mine} & {"mtl_mean", "mtl_ziln", "odmn"}  # they need all four horizons
        assert {c.seed for c in mine if c.study == "table1"} == set(p.seeds)  # the primary label: all seeds
    horizons = [c for c in cells if c.dataset == "kaggle_horizons"]
    assert {c.labels for c in horizons if c.model == "mtl_mean"} == {LABELS}
    assert [c for c in cells if c.dataset == "cdnow"] == [c for c in plan.cells(plan.Plan()) if c.dataset == "cdnow"]
    assert plan.tune_cell("criteo_ssc", "mean", ("conversion_value",)).labels == ("conversion_value",)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from mean_tf.data import criteo_ssc, kaggle_shoppers

    root = tmp_path_factory.mktemp("public")
    kaggle = pf.write_kaggle(root / "transactions.csv.gz", pf.kaggle_rows(600))
    criteo = pf.write_criteo(root / "CriteoSearchData", pf.criteo_rows(1500))
    kaggle_shoppers.build(root / "kaggle", kaggle)
    criteo_ssc.build(root / "criteo", criteo)
    return root


def test_smoke_run_on_each_fixture_dataset(datasets, tmp_path, capsys):
    work = tmp_path / "smoke"
    kaggle, criteo = f"kaggle_shoppers:{datasets / 'kaggle'}", f"criteo_ssc:{datasets / 'criteo'}"
    # The Keras path (Transform, training, money prediction) on one, the classical path (with its search) on the other.
    assert cli.main(["benchmark", "run", "--smoke", "--work", str(work), "--only", "table1", "--models", "dnn_ziln",
                     "--datasets", kaggle]) == 0
    assert cli.main(["benchmark", "--smoke", "--work", str(work), "--models", "two_stage_gbdt",
                     "--only", "tune,table1", "--datasets", f"{kaggle},{criteo}"]) == 0
    rows = report.read_results(str(work / "results.jsonl"))
    done = {(r["study"], r["dataset"], r["model"], tuple(r["labels"])): r for r in rows}
    assert set(done) == {("table1", "kaggle_shoppers", "dnn_ziln", ("cltv_365",)),
                         ("tune", "kaggle_shoppers", "two_stage_gbdt", ("cltv_365",)),
                         ("table1", "kaggle_shoppers", "two_stage_gbdt", ("cltv_365",)),
                         ("tune", "criteo_ssc", "two_stage_gbdt", ("conversion_value",)),
                         ("table1", "criteo_ssc", "two_stage_gbdt", ("conversion_value",)),
                         # a search's margin: the noise cells of its model, run first
                         ("noise", "kaggle_shoppers", "two_stage_gbdt", ("cltv_365",)),
                         ("noise", "criteo_ssc", "two_stage_gbdt", ("conversion_value",))}
    assert {r["status"] for r in rows} == {"ok"}, [r.get("error") for r in rows]
    for r in rows:
        if r["study"] == "table1":
            (label, values), = r["metrics"].items()
            assert -1.0 <= values["normalized_gini"] <= 1.0 and np.isfinite(values["percentile_mape"])
            assert r["n_test"] > 0 and list(r["gain"]) == [label]
    text = (work / "docs" / "results.md").read_text()
    assert "## kaggle_shoppers" in text and "## criteo_ssc" in text
    assert "### Summary: conversion_value" in text and "| cltv_365 | dnn_ziln |" in text
    assert (work / "docs" / "figures" / "criteo_ssc_gain_conversion_value.png").stat().st_size > 0

    capsys.readouterr()
    assert cli.main(["benchmark", "run", "--smoke", "--work", str(work), "--models", "two_stage_gbdt",
                     "--only", "tune,table1", "--datasets", criteo]) == 0
    assert "2 cells, 2 already done, 0 to run" in capsys.readouterr().err


def test_a_bad_dataset_argument_is_one_error_line(tmp_path, capsys):
    assert cli.main(["benchmark", "run", "--smoke", "--work", str(tmp_path), "--datasets", "x:"]) == 2
    assert capsys.readouterr().err.startswith("error: --datasets 'x:': expected NAME:FOLDER")
    assert cli.main(["benchmark", "run", "--smoke", "--work", str(tmp_path), "--datasets", f"x:{tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no dataset manifest at") and err.count("\n") == 1
