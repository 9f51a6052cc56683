"""The benchmark: the plan and its run order, a crashing cell, and the smoke run end to end."""
import types

import numpy as np

from mean_tf.benchmark import plan, report
from mean_tf.contract import LABELS


def test_plan_covers_every_table1_model_and_trains_multi_horizon_models_once():
    cells = plan.cells(plan.Plan(datasets=("online_retail_ii",), studies=("table1",), seeds=(0,), other_horizon_seeds=(0,)))
    assert {c.model for c in cells} == set(plan.TABLE1_MODELS + plan.ABLATION_MODELS)
    mtl = [c for c in cells if c.model == "mtl_mean"]
    assert len(mtl) == 1 and mtl[0].labels == LABELS
    assert sorted(c.labels[0] for c in cells if c.model == "mean") == sorted(LABELS)
    assert len({c.key for c in cells}) == len(cells)


def test_run_order_puts_noise_variants_choices_then_searches_then_cltv_365_with_all_its_seeds_then_the_rest():
    cells = plan.cells(plan.Plan())
    studies = [c.study for c in cells]
    counts = {name: studies.count(name) for name in ("noise", "neural", "choice", "tune")}
    head = ["noise"] * counts["noise"] + ["neural"] * counts["neural"] + ["choice"] * counts["choice"]
    assert studies[:len(head)] == head  # the noise first: every search's margin comes from it
    noise = cells[:counts["noise"]]
    assert {(c.dataset, c.model) for c in noise} == {(d, m) for d in plan.Plan().datasets for m in plan.NOISE_MODELS}
    assert noise[-1].dataset == "synthetic"
    n_before = len(head)
    searches = cells[n_before:n_before + counts["tune"]]
    assert {c.study for c in searches} == {"tune"} and searches[-1].dataset == "synthetic"
    assert {(c.dataset, c.model) for c in searches} == {(d, m) for d in plan.Plan().datasets for m in plan.TUNED_MODELS}
    rest = cells[n_before + counts["tune"]:]
    first = rest[: 3 * len(plan.TABLE1_MODELS + plan.ABLATION_MODELS) + 1]  # + the synthetic oracle
    assert all("cltv_365" in c.labels and c.seed == 0 and c.study == "table1" for c in first)
    is_365 = ["cltv_365" in c.labels and c.study == "table1" for c in rest]
    last_365 = max(i for i, flag in enumerate(is_365) if flag)
    assert all(is_365[: last_365 + 1])  # every seed of cltv_365 before any other horizon or study
    assert {c.seed for c in rest[: last_365 + 1]} == {0, 1, 2, 3, 4}
    other = [c for c in rest if c.study == "table1" and not ("cltv_365" in c.labels)]
    assert {c.seed for c in other} == {0, 1}  # the other horizons: 2 seeds


def test_cells_that_depend_on_the_tuning_rule_carry_its_protocol_and_older_keys_stay_as_they_were():
    cells = plan.cells(plan.Plan())
    for c in cells:
        expected = plan.PROTOCOL if c.study in ("tune",) + plan.TUNED_STUDIES else 1
        assert c.protocol == expected, c
    old = plan.Cell("table1", "cdnow", "mean", ("cltv_365",), 0)  # a row written before protocols existed
    assert old.key == '["table1", "cdnow", "mean", ["cltv_365"], 0, [], ""]'
    assert plan.tune_cell("cdnow", "mean").key != plan.tune_cell("cdnow", "mean", protocol=1).key


def test_the_report_shows_a_rerun_under_a_new_protocol_only_once_all_its_cells_finished():
    def row(seed, protocol, gini):
        cell = plan.Cell("table1", "d", "mean", ("cltv_365",), seed, protocol=protocol)
        return {"key": cell.key, **cell.to_dict(), "status": "ok", "metrics": {"cltv_365": {"normalized_gini": gini}}}

    old = [{k: v for k, v in row(s, 1, 0.5).items() if k != "protocol"} for s in (0, 1)]  # rows from before
    planned = [plan.Cell("table1", "d", "mean", ("cltv_365",), s, protocol=2) for s in (0, 1)]
    shown, notes = report.protocol_rows(old + [row(0, 2, 0.9)], planned)
    assert [r["metrics"]["cltv_365"]["normalized_gini"] for r in shown] == [0.5, 0.5]
    assert notes and "protocol 2 has 1 of 2 cells" in notes[0]
    shown, notes = report.protocol_rows(old + [row(0, 2, 0.9), row(1, 2, 0.8)], planned)
    assert [r["metrics"]["cltv_365"]["normalized_gini"] for r in shown] == [0.9, 0.8] and not notes


def test_the_noise_margin_is_the_seed_range_of_the_mean_of_the_best_three_epochs():
    from mean_tf.benchmark import noise

    def row(seed, curve=None, gini=None, model="mean"):
        return {"status": "ok", "study": "noise", "dataset": "d", "model": model, "seed": seed,
                "fit": {"history": {"val_selection": curve}} if curve else None,
                "eval_metrics": {"cltv_365": {"normalized_gini": gini}}}

    rows = [row(0, [0.1, 0.5, 0.3, 0.4, float("nan")]), row(1, [0.2, 0.6, 0.6, 0.3]),
            row(0, gini=0.7, model="two_stage_gbdt"), row(1, gini=0.65, model="two_stage_gbdt")]
    found = noise.per_seed(rows, "d", "mean")
    assert found[0][0] == 0.5 and np.isclose(found[0][1], 0.4) and np.isclose(found[0][2], 0.2)
    assert np.isclose(found[1][1], 0.5) and np.isclose(noise.margin(found), 0.1)
    assert np.isclose(noise.margin(noise.per_seed(rows, "d", "two_stage_gbdt")), 0.05)
    assert np.isnan(noise.margin({0: found[0]}))


def test_ablations_reuse_means_setting_and_the_heuristics_have_none():
    assert plan.tuned_model("mean_no_kl") == "mean" and plan.tuned_model("odmn") == "odmn"
    assert plan.tuned_model("last_period") == "" and plan.tuned_model("bgnbd_gg") == ""
    assert plan.tune_cell("cdnow", "mtl_mean").labels == LABELS


def test_significance_needs_a_paired_lead_across_seeds():
    def rows(model, values):
        return [{"status": "ok", "study": "table1", "dataset": "d", "model": model, "seed": s,
                 "metrics": {"cltv_365": {"normalized_gini": v}}} for s, v in enumerate(values)]

    clear = rows("a", [0.80, 0.81, 0.82]) + rows("b", [0.70, 0.72, 0.71])
    assert report.best_models(clear, "table1", "d", ["a", "b"], "cltv_365", "normalized_gini") == {"a"}
    noisy = rows("a", [0.80, 0.60, 0.82]) + rows("b", [0.70, 0.72, 0.71])
    assert report.best_models(noisy, "table1", "d", ["a", "b"], "cltv_365", "normalized_gini") == set()
    one_seed = rows("a", [0.9]) + rows("b", [0.1])
    assert report.best_models(one_seed, "table1", "d", ["a", "b"], "cltv_365", "normalized_gini") == set()


def test_smoke_run_scores_every_cell_renders_the_report_and_resumes(tmp_path, capsys):
    from mean_tf import cli

    work = tmp_path / "smoke"
    assert cli.main(["benchmark", "--smoke", "--work", str(work)]) == 0
    rows = report.read_results(str(work / "results.jsonl"))
    planned = plan.cells(plan.SMOKE)
    assert {r["key"] for r in rows} == {c.key for c in planned}
    # Synthetic customers have no transaction histories: BG/NBD + GG is skipped with the reason, not run.
    skipped = [r for r in rows if r["status"] != "ok"]
    assert [r["model"] for r in skipped] == ["bgnbd_gg"], [r.get("error") for r in skipped]
    assert "no bgnbd_features" in skipped[0]["error"]
    searches = [r for r in rows if r["study"] == "tune"]
    assert {r["model"] for r in searches} == {"mean", "two_stage_gbdt"}
    assert all(r["trial_count"] == 2 and r["tuned"] for r in searches)
    for r in rows:
        if r["status"] != "ok" or r["study"] == "tune":
            continue
        if r["study"] == "table1" and r["model"] == "mean":  # trains with the setting its search found
            assert r["tuned"] == next(s["tuned"] for s in searches if s["model"] == "mean")
            assert r["fit"]["steps"] > 0 and "val_selection" in r["fit"]["history"]
        for values in list(r["metrics"].values()) + list(r.get("eval_metrics", {}).values()):
            assert -1.0 <= values["normalized_gini"] <= 1.0
            assert np.isfinite(values["percentile_mape"])
    text = (work / "docs" / "results.md").read_text()
    for model in set(plan.SMOKE.models + ("oracle",)) - {"bgnbd_gg"}:
        assert f"| {model} |" in text
    assert "### Summary: cltv_365" in text and "### Tuning (eval split only)" in text
    assert "| teacher_log_probs | 1 |" in text
    assert "### Diagnostics of MEAN" in text and (work / "docs" / "figures" / "synthetic_eval_gini_per_epoch.png").exists()
    assert "- bgnbd_gg: dataset 'synthetic' has no bgnbd_features" in text
    assert (f"{len(planned) - 1} of {len(planned)} planned cells finished, 1 skipped with their reason "
            "(the run is complete)") in text
    assert (work / "docs" / "figures" / "synthetic_gain_cltv_365.png").stat().st_size > 0
    assert (work / "docs" / "figures" / "synthetic_delta_normalized_gini.png").exists()

    capsys.readouterr()
    assert cli.main(["benchmark", "run", "--smoke", "--work", str(work)]) == 0  # resumes: nothing left
    assert f"{len(planned)} already done, 0 to run" in capsys.readouterr().err


def test_coverage_counts_skipped_cells_as_done_and_says_what_is_left():
    cells = plan.cells(plan.Plan(datasets=("cdnow",), models=("last_period", "mean", "dnn_ziln"),
                                 labels=("cltv_365",), seeds=(0,), studies=("table1",)))
    rows = [{"key": cells[0].key, "status": "ok"}, {"key": cells[1].key, "status": "skipped"},
            {"key": cells[2].key, "status": "failed"}]
    text = "\n".join(report.coverage(rows, cells))
    assert "1 of 3 planned cells finished, 1 skipped with their reason; 1 left" in text
    assert "| table1 | cdnow | 1 | 1 | 3 |" in text


def test_a_cell_that_crashes_is_recorded_the_run_goes_on_and_a_rerun_retries_it(tmp_path, monkeypatch):
    from mean_tf.benchmark import run

    cells = plan.cells(plan.Plan(datasets=("cdnow",), models=("last_period", "mean"), labels=("cltv_365",),
                                 seeds=(0,), studies=("table1",)))
    crash = {"mean": True}

    def predict(self, cell, manifest):
        if crash.get(cell.model):
            raise RuntimeError("INVALID_ARGUMENT: a TensorFlow error\nwith its last line")
        return np.ones((4, 1)), np.arange(4.0)[:, None], {}

    manifest = types.SimpleNamespace(row_counts={}, numeric_features=(), categorical_features=())
    monkeypatch.setattr(run.Runner, "manifest", lambda self, dataset: manifest)
    monkeypatch.setattr(run.Runner, "_predict", predict)
    runner = run.Runner(str(tmp_path), str(tmp_path / "results.jsonl"), verbose=False)
    first = {r["model"]: r for r in runner.run(cells)}
    assert first["mean"]["status"] == "failed" and first["mean"]["error"] == "RuntimeError: with its last line"
    assert first["last_period"]["status"] == "ok"

    crash.clear()
    again = runner.run(cells)
    assert [r["model"] for r in again] == ["mean"] and again[0]["status"] == "ok"
    assert {r["status"] for r in report.read_results(str(tmp_path / "results.jsonl"))} == {"ok"}


def test_a_cell_finished_meanwhile_by_another_run_is_not_run_again(tmp_path, monkeypatch):
    from mean_tf.benchmark import run

    cells = plan.cells(plan.Plan(datasets=("cdnow",), models=("last_period", "bgnbd_gg"), labels=("cltv_365",),
                                 seeds=(0,), studies=("table1",)))
    runner = run.Runner(str(tmp_path), str(tmp_path / "results.jsonl"), verbose=False)
    other = cells[1]

    def predict(self, cell, manifest):
        runner._append({"key": other.key, **other.to_dict(), "status": "ok", "metrics": {}})  # the other run
        return np.ones((4, 1)), np.arange(4.0)[:, None], {}

    manifest = types.SimpleNamespace(row_counts={}, numeric_features=(), categorical_features=())
    monkeypatch.setattr(run.Runner, "manifest", lambda self, dataset: manifest)
    monkeypatch.setattr(run.Runner, "_predict", predict)
    assert [r["key"] for r in runner.run(cells)] == [cells[0].key]


def test_noise_and_neural_variant_tables_compare_each_variant_with_the_seed_spread():
    def cell(study, seed, gini, variant="", curve=(0.3, 0.5, 0.4)):
        return {"status": "ok", "study": study, "dataset": "cdnow", "model": "mean", "seed": seed, "variant": variant,
                "eval_metrics": {"cltv_365": {"normalized_gini": gini, "spearman": 0.3}},
                "fit": {"history": {"val_selection": list(curve)}}}

    rows = [cell("noise", 0, 0.50), cell("noise", 1, 0.52), cell("noise", 2, 0.54, curve=(0.2, 0.6, 0.5, 0.55)),
            cell("neural", 0, 0.60, "ple", (0.6, 0.7, 0.65)), cell("neural", 1, 0.62, "ple", (0.6, 0.7, 0.65)),
            cell("neural", 0, 0.51, "dropout", (0.45, 0.5, 0.4)), cell("neural", 1, 0.52, "dropout", (0.45, 0.5, 0.4))]
    noise = "\n".join(report.noise_table(rows, "cdnow"))
    # best epochs 0.5, 0.5, 0.6; best-3 means 0.4, 0.4, 0.55; median |change| 0.1, 0.1, 0.05 + ... per seed
    assert "| mean | 3 | 0.5333 ± 0.0471 | 0.4500 ± 0.0707 | 0.1500 |" in noise  # the margin: max − min
    neural = report.neural_table(rows, "cdnow")
    ple = next(line for line in neural if "| ple |" in line)
    dropout = next(line for line in neural if "| dropout |" in line)
    # trial scores: the defaults' seeds 0 and 1 score 0.4 (margin 0.15); ple 0.65 (+0.25), dropout 0.45 (+0.05)
    assert "+0.2500" in ple and ple.endswith("| yes |")
    assert "+0.0500" in dropout and dropout.endswith("| no |")
    cells = plan.cells(plan.Plan(datasets=("cdnow",), studies=("noise", "neural")))
    assert {c.study for c in cells} == {"noise", "neural"}
    assert {c.model for c in cells if c.study == "neural"} == set(plan.NEURAL_MODELS)
    assert {c.model for c in cells if c.study == "noise"} == set(plan.NEURAL_MODELS) | {"two_stage_gbdt"}
    assert {c.variant for c in cells if c.study == "neural"} == set(plan.NEURAL_VARIANTS)
