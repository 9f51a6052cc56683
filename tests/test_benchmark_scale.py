"""The benchmark's scale study: its plan (sizes, seeds, shapes, where each set's setting comes from, the sets
that wait), Table 1's cells counted, each set's Beam arguments and Transform cache, and the study end to end on
tiny sizes with its report section, whole and partial."""
import dataclasses
import json
import types

from mean_tf.contract import LABELS
from mean_tf.benchmark import plan, report
from mean_tf.models import registry


def test_scale_plan_sizes_seeds_shapes_and_searches(tmp_path, capsys):
    assert not [c for c in plan.cells(plan.Plan()) if c.study == "scale"]  # only when named
    cells = plan.cells(plan.with_opt_in(plan.Plan(), ["scale"]))
    scale = [c for c in cells if c.study == "scale"]
    assert scale == [c for c in plan.cells(plan.scale_only(plan.Plan())) if c.study == "scale"]
    seeds = {d: sorted({c.seed for c in scale if c.dataset == d and c.model == "mean"}) for d in {c.dataset for c in scale}}
    assert seeds == {"synthetic": [0, 1, 2], "synthetic_200k": [0, 1, 2], "synthetic_spread_200k": [0, 1, 2],
                     "synthetic_1m": [0, 1]}
    models = {"mean", "dnn_ziln", "mdan", "optdist", "two_stage_gbdt"} | ({"mean_ziln"} & set(registry.MODEL_NAMES))
    assert {c.model for c in scale} == models | {"oracle"}
    assert all(c.labels == ("cltv_365",) for c in scale)
    searches = {(c.dataset, c.model) for c in plan.cells(plan.scale_only(plan.Plan())) if c.study == "tune"}
    assert searches == {(d, m) for d in ("synthetic", "synthetic_200k") for m in models if plan.tuned_model(m)}
    sets = {s.dataset: s for s in plan.SCALE_SETS}
    assert sets["synthetic_1m"].tuned_on == sets["synthetic_spread_200k"].tuned_on == "synthetic_200k"
    assert sets["synthetic_spread_200k"].informative == (216, 24) and sets["synthetic_1m"].rows == 1_000_000
    # the 1,000,000-row cells stay planned but wait for a Transform whose memory is flat
    assert {c.dataset for c in scale if plan.blocked(plan.Plan(), c)} == {"synthetic_1m"}
    assert not [c for c in cells if c.study != "scale" and plan.blocked(plan.Plan(), c)]
    assert {s.features for s in plan.SCALE_SETS} == {720}
    from mean_tf.benchmark import run

    assert (sets["synthetic"].rows, sets["synthetic"].features) == (run.SYNTHETIC_ROWS, run.SYNTHETIC_FEATURES)
    # resumable like the rest: one key per cell, the 40,000-row searches are Table 1's own
    assert len({c.key for c in cells}) == len(cells)
    assert plan.tune_cell("synthetic", "mean") in plan.cells(plan.Plan())
    from mean_tf import cli

    assert cli.main(["benchmark", "run", "--only", "scale", "--datasets", "synthetic_1m", "--work", str(tmp_path),
                     "--results", str(tmp_path / "results.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"benchmark: {2 * len(models) + 1} cells not run, blocked: its Transform would need" in err
    assert err.strip().endswith("error: benchmark: the filters select no cell that can run")
    assert not list(tmp_path.iterdir())  # nothing written


def _runner(tmp_path, monkeypatch, calls):
    from mean_tf.benchmark import run

    (tmp_path / "build_info.json").write_text(json.dumps({"n_features": 720, "informative_numeric": 12,
                                                          "informative_categorical": 2}))
    manifest = types.SimpleNamespace(root=str(tmp_path), row_counts={"train": 28_000, "eval": 4_000, "test": 8_000},
                                     numeric_features=(), categorical_features=(), labels=LABELS)

    def fit(model, config, manifest, work_dir, **kwargs):
        calls.append((model, kwargs.get("beam_pipeline_args"), config.learning_rate, work_dir))
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(run.Runner, "manifest", lambda self, dataset: manifest)
    monkeypatch.setattr(run.fit_predict, "run", fit)
    sets = [dataclasses.replace(s, beam_pipeline_args=BEAM) if s.rows > 200_000 else s for s in plan.SCALE_SETS]
    return run.Runner(str(tmp_path), str(tmp_path / "results.jsonl"), verbose=False, scale_sets=sets)


BEAM = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def test_table1_cells_count_and_the_largest_set_reuses_the_200k_setting_and_its_beam_args(tmp_path, monkeypatch):
    calls = []
    runner = _runner(tmp_path, monkeypatch, calls)
    table1 = plan.Cell("table1", "synthetic", "mean", ("cltv_365",), 1)
    runner._append({"key": table1.key, **table1.to_dict(), "status": "ok", "metrics": {"cltv_365": {"a": 1.0}},
                    "tuned": {"learning_rate": 0.003}, "wall_s": 90.0})
    for dataset, rate in (("synthetic_200k", 0.0003), ("synthetic", 0.001)):
        search = plan.tune_cell(dataset, "mean")
        runner._append({"key": search.key, **search.to_dict(), "status": "ok", "tuned": {"learning_rate": rate}})

    copied = runner.run_cell(dataclasses.replace(table1, study="scale"))
    assert copied["status"] == "ok" and copied["same_as"] == table1.key and copied["study"] == "scale"
    assert copied["metrics"] == {"cltv_365": {"a": 1.0}} and copied["wall_s"] < 90 and not calls
    assert copied["scale"] == {"train_rows": 28_000, "features": 720, "informative": [12, 2], "tuned_on": "synthetic"}

    large = runner.run_cell(plan.Cell("scale", "synthetic_1m", "mean", ("cltv_365",), 0))
    assert large["status"] == "failed" and "same_as" not in large and large["scale"]["tuned_on"] == "synthetic_200k"
    # the 200,000-row search's setting; a Transform cache of its own (every synthetic set has the same features)
    assert calls == [("mean", BEAM, 0.0003, str(tmp_path / "scale" / "synthetic_1m"))]
    runner.run_cell(plan.Cell("scale", "synthetic", "mean", ("cltv_365",), 2))  # Table 1 has no such cell: runs
    assert calls[1:] == [("mean", (), 0.001, str(tmp_path))]  # Table 1's setting and cache, in memory


def test_scale_study_end_to_end_on_tiny_sizes_renders_its_section_and_lists_what_is_missing(tmp_path, monkeypatch,
                                                                                            capsys):
    """`--smoke --only scale`: 2,000 and 4,000 rows of the sparse shape and 2,000 of the spread one (40 features,
    one seed, two epochs); MEAN untuned here to keep the test short (the GBDT's search is reused)."""
    from mean_tf import cli

    monkeypatch.setattr(plan, "SMOKE", dataclasses.replace(plan.SMOKE, tuned_models=("two_stage_gbdt",)))
    work = tmp_path / "smoke"
    assert cli.main(["benchmark", "--smoke", "--only", "scale", "--work", str(work)]) == 0
    rows = report.read_results(str(work / "results.jsonl"))
    planned = plan.cells(plan.scale_only(plan.SMOKE))
    margin = plan.noise_cells("synthetic_2k", "two_stage_gbdt", ("cltv_365",), plan.SMOKE.noise_seeds)  # run first
    assert {r["key"] for r in rows} == {c.key for c in planned + margin} and {r["status"] for r in rows} == {"ok"}
    search = next(r for r in rows if r["study"] == "tune")
    assert (search["dataset"], search["model"]) == ("synthetic_2k", "two_stage_gbdt")
    assert search["choice"]["margin"] >= 0
    for r in rows:
        if r["study"] == "scale" and r["model"] == "two_stage_gbdt":
            assert r["tuned"] == search["tuned"] and r["scale"]["tuned_on"] == "synthetic_2k"
    assert len(list((work / "scale").glob("*/transformed/synthetic/*/materialize.json"))) == 3  # one per set
    shapes = {r["dataset"]: (r["scale"]["train_rows"], r["scale"]["informative"]) for r in rows if r["study"] == "scale"}
    assert shapes == {"synthetic_2k": (1_400, [12, 2]), "synthetic_4k": (2_800, [12, 2]),
                      "synthetic_spread_2k": (1_400, [24, 3])}

    text = (work / "docs" / "results.md").read_text()
    section = text[text.index("## Scale"):]
    assert "Scale plan: 10 of 10 cells finished" in section
    assert "synthetic_4k and synthetic_spread_2k reuse the setting of the search on synthetic_2k unchanged" in section
    assert (work / "docs" / "figures" / "scale_0.png").stat().st_size > 0
    assert "### 12 numeric + 2 categorical of 40 features informative" in section
    assert "| 2,800 | mean | 1 |" in section and "|  | oracle | 1 |" in section
    assert "Where MEAN stands at 2,800 training rows (synthetic_4k):" in section
    assert "- Gini ↑: MEAN ranks" in section
    assert "| two_stage_gbdt | " in section and "MEAN − two_stage_gbdt: " in section and "the lines " in section
    assert "### The shapes side by side at 1,400 training rows" in section
    assert "Cells not run" not in section

    capsys.readouterr()
    assert cli.main(["benchmark", "run", "--smoke", "--only", "scale", "--work", str(work)]) == 0  # resumes
    assert "9 cells, 9 already done, 0 to run" in capsys.readouterr().err

    # A partial run shows what is missing: a cell not run, one of a set that waits, one failed, with the reasons.
    gone = {("synthetic_4k", "mean"), ("synthetic_2k", "oracle")}
    kept = [r for r in rows if (r["dataset"], r["model"]) not in gone]
    failed = next(r for r in rows if r["dataset"] == "synthetic_spread_2k" and r["model"] == "mean")
    kept = [r for r in kept if r is not failed] + [{**failed, "status": "failed", "error": "RuntimeError: boom"}]
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
    sets = tuple(dataclasses.replace(s, blocked="blocked: a reason") if s.dataset == "synthetic_4k" else s
                 for s in plan.SMOKE.scale_sets)
    scale_plan = plan.scale_only(dataclasses.replace(plan.SMOKE, scale_sets=sets))
    path = report.render(str(partial), str(tmp_path / "docs"), scale_plan=scale_plan)
    section = open(path, encoding="utf-8").read().split("## Scale", 1)[1]
    assert "Scale plan: 7 of 10 cells finished" in section
    assert "- synthetic_4k, blocked: a reason: mean (seed 0)" in section
    assert "- synthetic_2k, not run yet: oracle (seed 0)" in section
    assert "- synthetic_spread_2k, failed: RuntimeError: boom: mean (seed 0)" in section
    assert "| 2,800 | two_stage_gbdt | 1 |" in section
