"""benchmarks.perf: the FLOP counter against hand counts, the projection's arithmetic, and the whole
`python -m benchmarks.perf` harness end to end at toy scale (behaviour only: no timing is asserted)."""
import json
import os

import pytest

import mean_tf  # noqa: F401
from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError
from mean_tf.models import build
from benchmarks.perf.flops import count_model_flops, einsum_flops
from benchmarks.perf.projection import fit_line, project

TINY_MEAN = MEANConfig(shared_units=(4, 2), num_experts=2, expert_units=3, num_distributions=2, attention_units=2,
                       dam_shared_units=2, dam_units=(2,))


def test_einsum_flops_counts_every_index_once_and_expands_ellipsis():
    assert einsum_flops("bnd,du->bnu", [(7, 5, 3), (3, 2)]) == 2 * 7 * 5 * 3 * 2
    assert einsum_flops("...d,du->...u", [(7, 5, 3), (3, 2)]) == 2 * 7 * 5 * 3 * 2


def test_forward_flops_of_a_tiny_mean_equal_a_hand_count():
    # D = 3 numeric inputs, shared [4, 2], M = 2 experts of 3 units, n = 2 distributions, attention width 2.
    hand = (2 * (3 * 4 + 4 * 2)  # shared MLP
            + 2 * 2 * (2 * 3)  # two experts, Dense 2 -> 3
            + 2 * 2 * (3 * 2)  # two gates on x_u (eq. 3), Dense D = 3 -> M = 2
            + 2 * 2 * 2 * 3  # f_i = sum_j G_ij E_j (eq. 2): bnm,bmu->bnu
            + 2 * (2 * 2 * 3 * 2)  # W_q h_t and W_k h_t (eq. 4): bnd,du->bnu, twice
            + 2 * 2 * 2 * 2  # g'_t W_a (eq. 5): bnu,um->bnm
            + 2 * 2 * 2 * 3  # z_i = sum_j A_ij h_j (eq. 6): bij,bjd->bid
            + 2 * 3 * 1)  # the CLTV head (eq. 7); DAM does not feed `cltv`, so it is not in the forward count
    count = count_model_flops(build("mean", TINY_MEAN), num_numeric=3, batch_size=4)
    assert count.forward_per_example == hand == 206


def test_training_flops_count_backward_matmuls_but_not_the_unused_input_gradient():
    config = MEANConfig(ziln_units=(4,))
    count = count_model_flops(build("dnn_ziln", config), num_numeric=3, batch_size=5)
    forward = 2 * 3 * 4 + 2 * 4 * 3  # Dense 3 -> 4, then the 3 ZILN logits
    backward = 2 * 3 * 4 + 2 * 4 * 3 + 2 * 4 * 3  # dW1, dW2, and dh = dlogits W2^T; no dx = dh W1^T
    assert count.forward_per_example == forward
    assert count.train_per_example == forward + backward


def test_mean_training_flops_exceed_three_forward_passes_minus_input_gradients():
    count = count_model_flops(build("mean", TINY_MEAN), num_numeric=3, batch_size=4)
    # Training adds DAM (absent from the forward count) and roughly two backward matmuls per forward one.
    assert 2 * count.forward_per_example < count.train_per_example < 4 * (count.forward_per_example + 2 * 3 * 2)


def _run(rows, seconds, rss):
    return {"rows": rows, "wall_seconds": sum(seconds.values()), "peak_rss_gib": rss,
            "components": [{"name": n, "seconds": s, "peak_rss_gib": rss} for n, s in seconds.items()]}


def test_projection_fits_fixed_and_per_row_costs_and_judges_linearity():
    assert fit_line([10, 30], [15, 35]) == pytest.approx((5.0, 1.0))
    linear = {"runs": [_run(1000, {"Transform": 12.0, "Trainer": 3.0}, 1.0),
                       _run(3000, {"Transform": 32.0, "Trainer": 7.0}, 1.1)]}
    proj = project(linear, train_examples_per_s=1000.0)
    transform = next(c for c in proj["components"] if c["name"] == "Transform")
    assert transform["fixed_seconds"] == pytest.approx(2.0) and transform["per_row_ms"] == pytest.approx(10.0)
    assert proj["linear_and_flat"] and "Dataflow" in proj["text"] and "Vertex" in proj["text"]
    # 1M rows: Transform 2 + 10 ms × 1M and Trainer 1 + 2 ms × 1M seconds.
    assert f"about {(2 + 1 + 12_000) / 3600:,.1f} h for 1,000,000 rows" in proj["text"]
    growing = {"runs": [_run(1000, {"Transform": 10.0}, 1.0), _run(3000, {"Transform": 60.0}, 3.0)]}
    assert not project(growing)["linear_and_flat"]
    # One component's memory growing fails the goal even when the overall peak (another component) is flat.
    example_gen = [_run(1000, {"Transform": 12.0}, 8.0), _run(3000, {"Transform": 32.0}, 8.2)]
    example_gen[0]["components"].append({"name": "ImportExampleGen", "seconds": 5.0, "peak_rss_gib": 2.0})
    example_gen[1]["components"].append({"name": "ImportExampleGen", "seconds": 15.0, "peak_rss_gib": 6.0})
    proj = project({"runs": example_gen})
    assert not proj["linear_and_flat"] and "growing in ImportExampleGen (2.00 → 6.00 GiB)" in proj["verdict"]
    assert [c["name"] for c in proj["components"] if c["memory_grows"]] == ["ImportExampleGen"]
    assert project({"runs": growing["runs"][:1]}) is None


def test_the_goals_say_when_the_per_row_costs_alone_exceed_the_whole_run_goal():
    from benchmarks.perf.report import _Commands, _pipeline_goals

    def record(ms_per_row):
        env = {"cores": 2, "memory_gib": 8}
        runs = [_run(rows, {"Transform": 10 + ms_per_row * rows / 1e3}, 1.0) for rows in (100_000, 1_000_000)]
        return {"runs": runs, "features": 720, "beam_pipeline_args": [], "command": "perf", "environment": env}

    slow = record(2.0)  # 2 ms a row: 2,000 s at 1M rows before any fixed cost, above the 1,500 s goal
    answer, goals, why = _pipeline_goals(slow, project(slow), _Commands())
    assert goals[0][3] is False and "add up to 2.00 ms a row, 2,000 s at 1,000,000 rows" in why
    fast = record(1.0)  # over the goal only by its fixed costs (the row cost alone is 1,000 s)
    fast["runs"][1]["wall_seconds"] = 1600.0
    assert _pipeline_goals(fast, project(fast), _Commands())[2] == ""


def test_tagged_records_are_read_oldest_first_by_when_they_started_not_by_their_files_times(tmp_path):
    from benchmarks.perf import results

    for tag, started in (("old", "2026-01-01 00:00:00 UTC"), ("new", "2026-02-01 00:00:00 UTC")):
        results.write_result(str(tmp_path), "pipeline", {"environment": {"time": started}}, tag=tag)
    os.utime(tmp_path / "pipeline-old.json", (2e9, 2e9))  # a checkout gave the older record the newer file
    assert [e["_file"] for e in results.read_experiments(str(tmp_path), "pipeline")] == [
        "pipeline-old.json", "pipeline-new.json"]


@pytest.fixture(scope="module")
def perf_results(tmp_path_factory):
    """`python -m benchmarks.perf train|input|serving|score` on 300 synthetic rows x 10 features, then `perf report`."""
    from benchmarks.perf.cli import main

    root = tmp_path_factory.mktemp("perf")
    common = ["--rows", "300", "--features", "10", "--work", str(root / "work"), "--results", str(root / "results"),
              "--set", "batch_size=32"]
    assert main(["train", *common, "--models", "mean,dnn_ziln", "--steps", "2", "--warmup", "1",
                 "--roofline-min-seconds", "0.001", "--peak-size", "128"]) == 0
    assert main(["input", *common, "--batches", "3", "--warmup", "1"]) == 0
    assert main(["serving", *common, "--batch-sizes", "1,4", "--requests", "3"]) == 0
    assert main(["score", *common, "--sizes", "200,700"]) == 0
    assert main(["writer", *common, "--passes", "2"]) == 0
    report = root / "performance.md"
    assert main(["report", "--results", str(root / "results"), "--report", str(report)]) == 0
    return root / "results", report.read_text(encoding="utf-8")


def test_train_benchmark_records_throughput_flops_and_roofline(perf_results):
    results, _ = perf_results
    train = json.loads((results / "train.json").read_text())
    assert train["command"].startswith("python -m benchmarks.perf train")
    assert train["data"]["numeric_features"] == 9 and train["data"]["categorical_features"] == 1
    by = {m["model"]: m for m in train["models"]}
    assert set(by) == {"mean", "dnn_ziln"}
    for m in by.values():
        assert m["batch_size"] == 32
        assert m["streamed"]["examples_per_s"] > 0 and m["in_memory"]["examples_per_s"] > 0
        assert m["train_flops_per_example"] > m["forward_flops_per_example"] > 0
        assert m["roofline"]["matmul_seconds_per_step"] > 0 and m["in_memory"]["roofline_share"] > 0
    assert by["mean"]["in_memory"]["vs_dnn_ziln"] > 0 and by["dnn_ziln"]["in_memory"]["vs_dnn_ziln"] == 1.0
    assert train["environment"]["cores"] >= 1 and train["environment"]["versions"]["tensorflow"]


def test_input_and_serving_benchmarks_record_rates_and_latencies(perf_results):
    results, _ = perf_results
    inp = json.loads((results / "input.json").read_text())
    assert set(inp["variants"]) == {"training", "no_shuffle", "parallel_reads"}
    assert all(v["examples"] == 3 * 32 and v["examples_per_s"] > 0 for v in inp["variants"].values())
    serving = json.loads((results / "serving.json").read_text())
    assert set(serving["batch_sizes"]) == {"1", "4"}
    assert "cltv" in serving["outputs"]
    for r in serving["batch_sizes"].values():
        assert r["requests"] >= 3 and 0 < r["p50_ms"] <= r["p99_ms"]


def test_score_benchmark_records_time_and_peak_memory_per_size(perf_results):
    results, text = perf_results
    score = json.loads((results / "score.json").read_text())
    runs = score["scoring_runs"]
    assert [r["customers"] >= n for r, n in zip(runs, (200, 700))] == [True, True]  # train split of n / 0.7 rows
    assert all(r["wall_seconds"] > 0 and r["peak_rss_mib"] > 100 and "scored" in r["summary"] for r in runs)
    ratio = runs[1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
    assert f"{ratio:.2f}×" in text and "## 5. Batch scoring" in text


def test_writer_benchmark_times_both_encoders_on_the_same_rows_and_checks_they_agree(perf_results):
    results, text = perf_results
    writer = json.loads((results / "writer.json").read_text())
    assert writer["rows"] == 600 and writer["same_values"] is True
    hand, library = writer["encoders"].values()
    assert hand["rows"] == library["rows"] == 600 and hand["rows_per_s"] > 0 and library["megabytes"] > 0
    assert "## 6. Dataset writer" in text and f"{hand['rows_per_s'] / library['rows_per_s']:.2f}× slower" in text


def test_report_renders_every_measured_number_with_its_command(perf_results):
    results, text = perf_results
    train = json.loads((results / "train.json").read_text())
    serving = json.loads((results / "serving.json").read_text())
    inp = json.loads((results / "input.json").read_text())
    assert "do not edit" in text and os.path.basename(str(results)) in text
    # The goals table comes first: after the title and the one-paragraph answer, before any section.
    assert "| goal | measured | target |" in text.split("\n## ")[0]
    assert "not measured: no GPU lent to this task" in text and "Not run yet: `python -m benchmarks.perf pipeline`" in text
    mean = next(m for m in train["models"] if m["model"] == "mean")
    for number in (f"{mean['train_flops_per_example'] / 1e6:.2f}", f"| {mean['in_memory']['examples_per_s']:,.0f} |",
                   f"{serving['batch_sizes']['1']['p50_ms']:.2f} ms",
                   f"| {inp['variants']['training']['examples_per_s']:,.0f} |"):
        assert number in text, number
    # Every command appears exactly once, in the appendix, and the tables cite it by its key.
    appendix = text.split("## Appendix")[1]
    for part in ("train", "input", "serving", "score", "writer"):
        command = json.loads((results / f"{part}.json").read_text())["command"]
        assert text.count(f"`{command}`") == 1 and f"`{command}`" in appendix, part
        key = appendix.split(f"`{command}`")[0].rsplit("**[", 1)[1].split("]")[0]
        assert f"[{key}]" in text.split("## Appendix")[0], part


def test_pipeline_scaling_saves_each_size_as_it_finishes(tmp_path, monkeypatch):
    """A run stopped before its largest size keeps the sizes it finished, and the report says what is missing."""
    from benchmarks.perf import pipeline_scaling
    from benchmarks.perf.report import _Commands, _pipeline_section, project

    def fake_run_once(data_dir, out_dir, *args):
        rows = int(os.path.basename(data_dir).split("-")[1].split("x")[0])
        return {"wall_seconds": rows / 100, "peak_rss_gib": 1.0, "log": "",
                "components": [{"name": "Transform", "seconds": rows / 100, "peak_rss_gib": 1.0}]}

    monkeypatch.setattr(pipeline_scaling, "run_once", fake_run_once)
    saved = []
    pipeline_scaling.run_scaling("python -m benchmarks.perf pipeline", str(tmp_path), [600, 300], 10, MEANConfig(), "mean", 2,
                                 note="two sizes", on_run=lambda record: saved.append(json.loads(json.dumps(record))))
    assert [[r["rows"] for r in s["runs"]] for s in saved] == [[300], [300, 600]]
    assert [s["pending"] for s in saved] == [[600], []]
    text = "\n".join(_pipeline_section(saved[0], None, [], _Commands()))
    assert "Not finished: 600 rows" in text and "| 300 rows [1] |" in text and "| Transform | 3 / 1.00 |" in text
    assert "Note given with the command: two sizes" in text  # --note is shown, as its help says
    assert "Not finished" not in "\n".join(_pipeline_section(saved[1], None, [], _Commands()))
    assert saved[1]["shuffle_examples"] is False and "ExampleGen copies the split files" in text

    # An earlier record (before the switch existed: TFX's ExampleGen) is shown next to this one, with the
    # Trainer's time ratio at the shared size as the check on the machine's speed.
    earlier = {**saved[1], "_file": "pipeline-old.json", "environment": {"git_commit": "abc1234"}}
    earlier.pop("shuffle_examples")
    earlier["runs"] = [{**r, "components": r["components"] + [{"name": "Trainer", "seconds": 2.0, "peak_rss_gib": 1}]}
                       for r in earlier["runs"]]
    now = {**saved[1], "runs": [{**r, "components": r["components"] + [{"name": "Trainer", "seconds": 3.0,
                                                                         "peak_rss_gib": 1}]} for r in saved[1]["runs"]]}
    text = "\n".join(_pipeline_section(now, None, [earlier], _Commands()))
    # Whole run ×1.00 (the same runs), Trainer ×1.50 (3 s now against 2 s in the earlier record).
    commit = (earlier["runs"][0].get("session") or earlier)["environment"]["git_commit"]
    assert f"| pipeline-old.json [1] | `{commit}` | stock (Reshuffle of every split) | 300 |" in text
    assert "| 6 / 1.00 | ×1.00 | ×1.50 |" in text

    # --extend keeps the earlier record's runs at other sizes, each naming the session it ran in.
    extended = pipeline_scaling.run_scaling("python -m benchmarks.perf pipeline --extend", str(tmp_path), [900], 10, MEANConfig(),
                                            "mean", 2, extend=saved[1])
    assert [r["rows"] for r in extended["runs"]] == [300, 600, 900]
    assert [r["session"]["command"] for r in extended["runs"]] == ["python -m benchmarks.perf pipeline"] * 2 + [
        "python -m benchmarks.perf pipeline --extend"]
    commands = _Commands()
    text = "\n".join(_pipeline_section(extended, project(extended), [], commands))
    assert "| component (s / peak GiB) | 300 rows [1] | 600 rows [1] | 900 rows [2] |" in text
    assert "The sizes ran in 2 sessions" in text
    assert list(commands.rows) == ["python -m benchmarks.perf pipeline", "python -m benchmarks.perf pipeline --extend"]
    assert "the lines through the 2 smaller runs alone predict 9 s of component time for the 900-row run; it " \
           "took 9 s (×1.00)" in text
    with pytest.raises(MeanTFError, match="--extend: the earlier record has features=10, this run 12"):
        pipeline_scaling.run_scaling("python -m benchmarks.perf pipeline", str(tmp_path), [900], 12, MEANConfig(), "mean", 2,
                                     extend=saved[1])


PYSPY_RAW = """\
process 10:"python -c RUNNER";run (tfx/orchestration/local/local_dag_runner.py:80);Do (tfx/components/transform/executor.py:500);trace (tensorflow/python/eager/def_function.py:10) 40
process 10:"python -c
RUNNER";run (tfx/orchestration/local/local_dag_runner.py:80);Do (tfx/components/transform/executor.py:500);build (apache_beam/pipeline.py:7) 20
process 10:"python -c RUNNER";process 11:"python -m apache_beam.runners.worker.sdk_worker_main";main (apache_beam/runners/worker/sdk_worker_main.py:1);process (tensorflow_transform/beam/impl.py:3);run (tensorflow/python/client/session.py:9) 60
process 10:"python -c RUNNER";process 12:"python -m apache_beam.runners.worker.sdk_worker_main";main (apache_beam/runners/worker/sdk_worker_main.py:1);add_input (tensorflow_data_validation/statistics/stats_impl.py:4) 30
process 10:"python -c RUNNER";process 12:"python -m apache_beam.runners.worker.sdk_worker_main";main (apache_beam/runners/worker/sdk_worker_main.py:1);_find_and_load (<frozen importlib._bootstrap>:1);exec_module (<frozen importlib._bootstrap_external>:2) 10
process 10:"python -c RUNNER";process 13:"python -m apache_beam.runners.worker.sdk_worker_main";_bootstrap (threading.py:1);channel_spin (grpc/_channel.py:5) 5
process 10:"python -c RUNNER";process 12:"python -m apache_beam.runners.worker.sdk_worker_main";_bootstrap (threading.py:1);_bootstrap_inner (threading.py:2);run (threading.py:3) 7
"""


def test_pyspy_samples_are_summed_per_component_and_function(tmp_path):
    """A runner stack belongs to the TFX executor on it; a worker's to the library of its Beam transform."""
    from benchmarks.perf.profile import IMPORTING, pyspy_summary

    raw = tmp_path / "py-spy.txt"
    raw.write_text(PYSPY_RAW)
    summary = pyspy_summary(str(raw), rate=10)
    # Worker stacks follow the runner's process frame, as py-spy --subprocesses writes them. channel_spin and a
    # thread running native code (no Python frame under `run`) are waits.
    assert summary["cpu_seconds"] == 16.0 and summary["waiting_seconds"] == 1.2
    transform, stats = (summary["components"][k] for k in ("transform", "statistics_gen"))
    assert list(summary["components"]) == ["transform", "statistics_gen"]  # most CPU first
    assert transform["cpu_seconds"] == 12.0 and transform["beam_worker_share"] == 0.5  # a stack over two lines too
    assert transform["top_own"][0] == {"function": "run (tensorflow/python/client/session.py)", "cpu_seconds": 6.0}
    assert {"function": "Do (tfx/components/transform/executor.py)", "cpu_seconds": 6.0} in transform["top_inclusive"]
    assert not any("local_dag_runner" in f["function"] for f in transform["top_inclusive"])  # the runner: plumbing
    # Worker 12's stack without a library on it (an import) counts for the component the worker serves.
    assert stats["cpu_seconds"] == 4.0 and stats["beam_worker_share"] == 1.0
    assert stats["top_own"][-1] == {"function": IMPORTING, "cpu_seconds": 1.0}


def test_profiled_runs_are_rendered_and_profiling_needs_py_spy(tmp_path, monkeypatch):
    from benchmarks.perf import profile
    from benchmarks.perf.report import _Commands, _profiles

    raw = tmp_path / "py-spy.txt"
    raw.write_text(PYSPY_RAW)
    summary = json.loads(json.dumps(profile.pyspy_summary(str(raw), rate=10), sort_keys=True))  # as saved
    run = {"rows": 300, "wall_seconds": 20.0, "components": [], "profile": summary}
    text = "\n".join(_profiles([{"command": "python -m benchmarks.perf pipeline --profile", "environment": {}, "runs": [run]}],
                               _Commands()))
    assert "### Where the CPU goes: 300 rows profiled [1]" in text
    assert "| transform | 12 | 50% | `run (tensorflow/python/client/session.py)` 6" in text
    assert text.index("| transform |") < text.index("| statistics_gen |")  # most CPU first, not by name
    assert "The largest single cost is `run (tensorflow/python/client/session.py)`: 6 CPU-s, 38% of the" in text
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MeanTFError, match="--profile needs py-spy on PATH"):
        profile.pyspy_command(str(raw), ["python"])
