"""One name per concept across `mean-tf` subcommands (and `python -m benchmarks.perf`): list flags keep every value,
renamed flags still work with a note, generated outputs default to out/ and only --write-docs writes docs/.

Everything here parses arguments or renders from empty folders: no TensorFlow, seconds in all.
"""
import argparse
import os
from pathlib import Path

import pytest

from benchmarks.perf import cli as perf
from mean_tf import cli
from mean_tf.commands import _common, benchmark

ROOT = Path(__file__).resolve().parents[1]


COMMANDS = {**cli.registered_commands(), "perf": perf.register}  # `perf` is `python -m benchmarks.perf`


def parse(*argv):
    return cli.build_parser(COMMANDS).parse_args(list(argv))


def subparsers(parser, path=()):
    """(command path, parser) for every parser and subparser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subparsers(sub, path + (name,))


TABLE = ("data", "table", "--input", "t.csv", "--out", "o")
TRANSACTIONS = ("data", "transactions", "--input", "t.csv", "--out", "o", "--customer", "c", "--time", "t",
                "--amount", "a")


@pytest.mark.parametrize("argv, dest, expected", [
    (TABLE + ("--categorical", "country", "--categorical", "channel"), "categorical", ("country", "channel")),
    (TABLE + ("--categorical", "country,channel"), "categorical", ("country", "channel")),
    (TABLE + ("--categorical", "country, channel", "--categorical", "device"), "categorical",
     ("country", "channel", "device")),
    (TABLE + ("--numeric", "a", "--numeric", "b", "--money", "a", "--money", "a"), "money", ("a",)),
    (TABLE + ("--numeric", "a", "--numeric", "b"), "numeric", ("a", "b")),
    (TABLE + ("--labels", "cltv_30", "--labels", "cltv_365"), "labels", ("cltv_30", "cltv_365")),
    (TRANSACTIONS + ("--categorical", "country", "--categorical", "channel"), "categorical", ("country", "channel")),
    (TRANSACTIONS + ("--cutoffs", "2024-01-01", "--cutoffs", "2024-02-01,2024-03-01"), "cutoffs",
     ("2024-01-01", "2024-02-01", "2024-03-01")),
    (("data", "online-retail", "--out", "o", "--cutoffs", "2010-11-01", "--cutoffs", "2010-12-01"), "cutoffs",
     ("2010-11-01", "2010-12-01")),
    (("benchmark", "--seeds", "0", "--seeds", "1,2"), "seeds", (0, 1, 2)),
    (("benchmark", "--datasets", "cdnow", "--datasets", "synthetic", "--models", "mean", "--models", "odmn"),
     "datasets", ("cdnow", "synthetic")),
    (("benchmark", "--only", "table1", "--only", "n"), "only", ("table1", "n")),
    (("perf", "train", "--models", "mean", "--models", "dnn_ziln"), "models", ["mean", "dnn_ziln"]),
    (("perf", "serving", "--batch-sizes", "1", "--batch-sizes", "64,1024"), "batch_sizes", [1, 64, 1024]),
    (("perf", "pipeline", "--sizes", "1000", "--sizes", "2000"), "sizes", [1000, 2000]),
])
def test_a_repeated_list_flag_keeps_every_value(argv, dest, expected):
    assert getattr(parse(*argv), dest) == expected


def test_a_list_flag_replaces_its_default_and_keeps_it_when_absent():
    assert parse("perf", "train", "--models", "mean").models == ["mean"]
    assert parse("perf", "train").models == ["mean", "mtl_mean", "dnn_ziln"]
    assert parse(*TABLE).categorical == () and parse(*TABLE).numeric is None


def test_every_flag_that_parses_a_list_is_repeatable():
    """No subcommand may parse a comma list with a plain store action (which keeps only the last use)."""
    found = 0
    for path, parser in subparsers(cli.build_parser(COMMANDS)):
        for action in parser._actions:
            if not action.option_strings or action.type in (None, int, float, str):
                continue
            try:
                value = action.type("1,2")
            except (argparse.ArgumentTypeError, ValueError):
                continue
            if isinstance(value, (list, tuple)):
                found += 1
                assert isinstance(action, _common.ListOption), f"{' '.join(path)} {action.option_strings[0]}"
    assert found >= 15


def test_a_bad_list_item_is_an_argparse_error_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        parse("benchmark", "--seeds", "0,x")
    assert stop.value.code == 2
    assert "argument --seeds: 'x' is not an integer" in capsys.readouterr().err


@pytest.mark.parametrize("argv, dest, value, note", [
    (("pipeline", "run", "--output-dir", "o/p"), "out", "o/p", "--output-dir is deprecated"),
    (("pipeline", "compile", "--manifest", "d", "--data-root", "gs://b/d", "--pipeline-root", "gs://b/r",
      "--image", "i"), "data", "d", "--manifest is deprecated"),
    (("benchmark", "report", "--docs", "r"), "report_dir", "r", "--docs is deprecated"),
    (("perf", "report", "--out", "r.md"), "report", "r.md", "--out is deprecated"),
])
def test_renamed_flags_still_work_for_one_release_with_a_one_line_note(argv, dest, value, note, capsys):
    assert getattr(parse(*argv), dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: ") and note in err[0], err


@pytest.mark.parametrize("argv, dest, value", [
    (("pipeline", "run", "--out", "o/p"), "out", "o/p"),
    (("pipeline", "compile", "--data", "d", "--data-root", "gs://b/d", "--pipeline-root", "gs://b/r",
      "--image", "i"), "data", "d"),
    (("benchmark", "report", "--report-dir", "r"), "report_dir", "r"),
    (("perf", "report", "--report", "r.md"), "report", "r.md"),
])
def test_current_flag_names_print_no_note(argv, dest, value, capsys):
    assert getattr(parse(*argv), dest) == value
    assert capsys.readouterr().err == ""


def test_the_dataset_a_command_reads_is_data_and_what_it_writes_is_out():
    readers = {("train",), ("score",), ("pipeline", "run"), ("pipeline", "compile")}
    writers = {("pipeline", "run"), ("pipeline", "compile"), ("score",), ("demo",), ("data", "online-retail"),
               ("data", "cdnow"), ("data", "synthetic"), ("data", "table"), ("data", "transactions")}
    seen = set()
    for path, parser in subparsers(cli.build_parser(COMMANDS)):
        flags = {s for a in parser._actions for s in a.option_strings}
        if path in readers:
            assert "--data" in flags, path
        if path in writers:
            assert "--out" in flags, path
        seen.add(path)
    assert readers | writers <= seen


def test_no_default_writes_into_the_tracked_docs():
    for path, parser in subparsers(cli.build_parser(COMMANDS)):
        for action in parser._actions:
            if isinstance(action.default, str):
                assert not action.default.startswith("docs"), f"{' '.join(path)} {action.option_strings}"
    args = parse("pipeline", "run")
    assert args.out == os.path.join("out", "pipeline")
    assert parse("pipeline", "compile", "--data", "d", "--data-root", "gs://b/d", "--pipeline-root", "gs://b/r",
                 "--image", "i").out == os.path.join("out", "mean_tf_pipeline.json")


def test_benchmark_writes_to_out_unless_told_to_write_docs():
    work, results, report_dir = benchmark._paths(parse("benchmark", "run"))
    assert results == os.path.join("out", "benchmark", "results.jsonl") and report_dir == os.path.join("out", "benchmark")
    _, results, report_dir = benchmark._paths(parse("benchmark", "report", "--write-docs"))
    assert results == os.path.join("docs", "benchmark", "results.jsonl") and report_dir == "docs"
    _, results, report_dir = benchmark._paths(parse("benchmark", "--write-docs", "--results", "r.jsonl"))
    assert results == "r.jsonl" and report_dir == "docs"
    work, results, _ = benchmark._paths(parse("benchmark", "--smoke"))
    assert results == os.path.join(work, "results.jsonl")


def test_benchmark_write_docs_with_smoke_is_one_error_line(capsys):
    assert cli.main(["benchmark", "--smoke", "--write-docs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: benchmark: --write-docs is for the full benchmark") and err.count("\n") == 1


def test_perf_report_defaults_to_out_and_names_its_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert perf.main(["report"]) == 0
    assert (tmp_path / "out" / "performance.md").exists() and not (tmp_path / "docs").exists()
    assert "Generated by `python -m benchmarks.perf report` from the JSON files in `out/perf`" in \
        (tmp_path / "out" / "performance.md").read_text()
    (tmp_path / "docs").mkdir()
    assert perf.main(["report", "--write-docs"]) == 0
    header = (tmp_path / "docs" / "performance.md").read_text()
    assert "Generated by `python -m benchmarks.perf report --write-docs` from the JSON files in `docs/perf`" in header
    assert "(`python -m benchmarks.perf all --write-docs`)" in header


def test_perf_parts_resolve_results_from_write_docs():
    args = parse("perf", "input")
    perf._resolve_paths(args)
    assert args.results == os.path.join("out", "perf")
    args = parse("perf", "all", "--write-docs")
    perf._resolve_paths(args)
    assert (args.results, args.report) == (os.path.join("docs", "perf"), os.path.join("docs", "performance.md"))


def test_perf_all_runs_every_part_with_that_parts_own_options(monkeypatch, tmp_path):
    """`perf all` once passed each part a hand-made namespace that lacked options the part reads (--deterministic,
    --extend, --profile): every part now gets its own parser's defaults, then what `all` was given."""
    from benchmarks.perf import pipeline_scaling, suite

    seen = {}

    def fake(part, record):
        def run(command, work, *a, **kw):
            seen[part] = (a, kw)
            return record
        return run

    monkeypatch.setattr(suite, "set_threads", lambda *a: None)
    monkeypatch.setattr(suite, "run_train", fake("train", {"models": []}))
    monkeypatch.setattr(suite, "run_input", fake("input", {"variants": {}}))
    monkeypatch.setattr(suite, "run_serving", fake("serving", {"batch_sizes": {}}))
    monkeypatch.setattr(suite, "run_score", fake("score", {"scoring_runs": []}))
    monkeypatch.setattr(suite, "run_writer", fake("writer", {"encoders": {}}))
    monkeypatch.setattr(pipeline_scaling, "run_scaling", fake("pipeline", {"runs": []}))
    monkeypatch.setattr(perf, "_report", lambda args: 0)
    assert perf.main(["all", "--results", str(tmp_path), "--sizes", "1000,2000", "--set", "epochs=1"]) == 0
    assert set(seen) == {"train", "input", "serving", "score", "writer", "pipeline"}
    assert seen["score"][0][0] == 8_000 and seen["train"][0][0] == 50_000  # each part's own --rows default
    assert seen["writer"][0] == (100_000, 720, 10)
    assert seen["score"][1]["sizes"] == [100_000, 1_000_000] and seen["pipeline"][0][0] == [1000, 2000]
    assert seen["pipeline"][1]["profile"] is False and seen["pipeline"][1]["extend"] is None
    assert seen["train"][0][2].epochs == 1  # the config `all` was given reaches every part


def test_benchmark_report_header_names_the_command_that_wrote_it(tmp_path):
    from mean_tf.benchmark import report

    results = tmp_path / "results.jsonl"
    results.write_text("")
    path = report.render(str(results), str(tmp_path / "docs"), command="mean-tf benchmark report --write-docs")
    text = Path(path).read_text()
    assert "Generated by `mean-tf benchmark report --write-docs` from `../results.jsonl`" in text


def test_the_makefile_regenerates_docs_with_write_docs():
    targets = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line and not line.startswith(("\t", "#", " ")) and ":" in line:
            current = line.split(":")[0]
        elif line.startswith("\t") and current:
            targets.setdefault(current, []).append(line.strip())
    assert targets["benchmark"] == ["$(VENV)/bin/mean-tf benchmark run --write-docs",
                                    "$(VENV)/bin/mean-tf benchmark report --write-docs"]
    assert targets["perf"] == ["$(VENV)/bin/python -m benchmarks.perf all --write-docs"]
