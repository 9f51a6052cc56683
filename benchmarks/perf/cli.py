"""`python -m benchmarks.perf train|input|serving|pipeline|score|writer|all|report`: the benchmarks of
docs/performance.md (run from a checkout: the performance suite does not ship with mean-tf).

Each part writes one JSON file to `--results` (`<part>.json`, or `<part>-<tag>.json` for an experiment
with `--tag`); `report` renders the report (`--report`) from that folder. Both default to out/;
`--write-docs` uses the tracked docs/perf/ and docs/performance.md (what `make perf` runs).
"""
from __future__ import annotations

import os

from mean_tf.commands._common import OUT, add_config_options, add_list_option, add_renamed_option, config_from_args, \
    integers
from mean_tf import cli
from mean_tf.errors import MeanTFError

PROG = "python -m benchmarks"

DEFAULT_RESULTS = os.path.join(OUT, "perf")
DEFAULT_REPORT = os.path.join(OUT, "performance.md")
DOCS_RESULTS = os.path.join("docs", "perf")
DOCS_REPORT = os.path.join("docs", "performance.md")
DEFAULT_WORK = os.path.join(".cache", "perf")


def _results_option(sp) -> None:
    sp.add_argument("--results", default=None,
                    help=f"results folder (default {DEFAULT_RESULTS}; {DOCS_RESULTS} with --write-docs)")
    sp.add_argument("--write-docs", action="store_true",
                    help=f"the repository's docs: results in {DOCS_RESULTS}, the report in {DOCS_REPORT} "
                         "(`make perf`), unless --results/--report say otherwise")


def _report_option(sp, *old) -> None:
    add_renamed_option(sp, "--report", *old, default=None, metavar="FILE",
                       help=f"report path (default {DEFAULT_REPORT}; {DOCS_REPORT} with --write-docs)")


_PARTS = {}  # part -> its parser: `all` runs each part with that parser's defaults


def _resolve_paths(args) -> None:
    """Fill --results (and --report) from --write-docs or the out/ defaults."""
    docs = getattr(args, "write_docs", False)
    if args.results is None:
        args.results = DOCS_RESULTS if docs else DEFAULT_RESULTS
    if hasattr(args, "report") and args.report is None:
        args.report = DOCS_REPORT if docs else DEFAULT_REPORT


def register(subparsers) -> None:
    p = subparsers.add_parser("perf", help="performance benchmarks: train, input, serving, pipeline, score, writer, all, report",
                              description="Measure throughput, input pipeline, serving latency and pipeline scaling on "
                                          "synthetic data; results are JSON files, rendered by `python -m benchmarks.perf report`.")
    sub = p.add_subparsers(dest="part", metavar="PART")

    def common(sp, rows_default=50_000):
        _results_option(sp)
        sp.add_argument("--work", default=DEFAULT_WORK, help=f"data cache folder (default {DEFAULT_WORK})")
        sp.add_argument("--rows", type=int, default=rows_default,
                        help=f"synthetic rows (default {rows_default or 'each part its own'})")
        sp.add_argument("--features", type=int, default=720, help="synthetic features (default 720, the paper's)")
        sp.add_argument("--tag", default=None, help="save as an experiment <part>-<tag>.json next to the baseline")
        sp.add_argument("--note", default="", help="a note stored with the result (shown in the report)")
        sp.add_argument("--intra-op", type=int, default=None, help="TensorFlow intra-op threads (default: TF's)")
        sp.add_argument("--inter-op", type=int, default=None, help="TensorFlow inter-op threads (default: TF's)")
        add_config_options(sp)

    sp = _PARTS["train"] = sub.add_parser("train", help="benchmark 1: training examples/s, FLOPs and the matmul roofline")
    common(sp)
    add_list_option(sp, "--models", default=["mean", "mtl_mean", "dnn_ziln"], metavar="MODELS",
                    help="registry models, trained in this order in one run (default mean,mtl_mean,dnn_ziln)")
    sp.add_argument("--steps", type=int, default=30, help="timed steps per model and mode (default 30)")
    sp.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    sp.add_argument("--jit", action="store_true", help="compile the training step with XLA (jit_compile=True)")
    sp.add_argument("--deterministic", action="store_true",
                    help="enable TensorFlow's op determinism, as training does by default (MEANConfig.deterministic)")
    sp.add_argument("--roofline-min-seconds", type=float, default=0.05,
                    help="shortest timing sample of each roofline op (default 0.05; smaller is faster, noisier)")
    sp.add_argument("--peak-size", type=int, default=1024, help="n of the n x n x n matmul giving the peak rate")
    sp.set_defaults(func=_train)

    sp = _PARTS["input"] = sub.add_parser("input", help="benchmark 2: input pipeline examples/s")
    common(sp)
    sp.add_argument("--batches", type=int, default=40, help="timed batches per variant (default 40)")
    sp.add_argument("--warmup", type=int, default=5, help="untimed batches first (default 5)")
    sp.set_defaults(func=_input)

    sp = _PARTS["serving"] = sub.add_parser("serving",
                                           help="benchmark 3: serving_default latency p50/p99 (TF1 Session loader)")
    common(sp)
    sp.add_argument("--model", default="mean", help="registry model to export (default mean)")
    add_list_option(sp, "--batch-sizes", of=integers, default=[1, 64, 1024], metavar="SIZES",
                    help="request batch sizes (default 1,64,1024)")
    sp.add_argument("--requests", type=int, default=200, help="timed requests per batch size (default 200)")
    sp.set_defaults(func=_serving)

    sp = _PARTS["pipeline"] = sub.add_parser(
        "pipeline", help="benchmark 4: the local TFX pipeline at several sizes, time and peak memory")
    common(sp)
    add_list_option(sp, "--sizes", of=integers, default=[20_000, 60_000], metavar="ROWS",
                    help="rows of each run (default 20000,60000)")
    sp.add_argument("--model", default="mean", help="registry model the pipeline trains (default mean)")
    sp.add_argument("--direct-num-workers", type=int, default=2, help="Beam DirectRunner processes (default 2)")
    sp.add_argument("--epochs", type=int, default=None, help="cap the Trainer's epochs (default: the config's)")
    sp.add_argument("--not-run", default="", help="sizes not run, and why (shown in the report)")
    sp.add_argument("--shuffle-examples", action="store_true",
                    help="TFX's stock ImportExampleGen (reshuffles each split in memory) instead of the copying one")
    sp.add_argument("--extend", action="store_true",
                    help="keep the runs of the saved record (same setup) at other sizes and add these sizes to it")
    sp.add_argument("--profile", action="store_true",
                    help="sample every process with py-spy (on PATH): CPU time per component and function")
    sp.set_defaults(func=_pipeline)

    sp = _PARTS["score"] = sub.add_parser(
        "score", help="benchmark 5: `mean-tf score` time and peak memory at growing customer counts")
    common(sp, rows_default=8_000)
    sp.add_argument("--model", default="mean", help="registry model to export (default mean)")
    add_list_option(sp, "--sizes", of=integers, default=[100_000, 1_000_000], metavar="CUSTOMERS",
                    help="customers scored in each run (default 100000,1000000)")
    sp.set_defaults(func=_score)

    sp = _PARTS["writer"] = sub.add_parser(
        "writer", help="benchmark 6: the dataset writer's tf.Example encoder against tfx_bsl's, rows/s")
    common(sp, rows_default=100_000)
    sp.add_argument("--passes", type=int, default=10, help="times the generated rows are written (default 10)")
    sp.set_defaults(func=_writer)

    sp = sub.add_parser("all", help="train, input, serving, score, writer and pipeline with their defaults, then report")
    common(sp, rows_default=None)
    add_list_option(sp, "--sizes", of=integers, default=[20_000, 60_000], metavar="ROWS",
                    help="pipeline sizes (default 20000,60000)")
    _report_option(sp)
    sp.set_defaults(func=_all)

    sp = sub.add_parser("report", help="render the report (docs/performance.md with --write-docs) from the results folder")
    _results_option(sp)
    _report_option(sp, "--out")
    sp.set_defaults(func=_report)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _prepare(args):
    from benchmarks.perf import results, suite

    _resolve_paths(args)
    suite.set_threads(args.intra_op, args.inter_op)
    return config_from_args(args), getattr(args, "command_line", None) or results.command_line(args)


def _save(args, part, record) -> int:
    from benchmarks.perf import results

    if args.tag:
        record["tag"] = args.tag
    path = results.write_result(args.results, part, record, args.tag)
    print(f"wrote {path}")
    return 0


def _train(args) -> int:
    from benchmarks.perf import suite

    config, command = _prepare(args)
    if args.deterministic:
        from mean_tf.runtime import determinism

        determinism.configure(config.seed, deterministic=True)
    record = suite.run_train(command, args.work, args.rows, args.features, config, args.models, args.steps,
                             args.warmup, args.jit, roofline_min_seconds=args.roofline_min_seconds,
                             peak_size=args.peak_size, note=args.note)
    for m in record["models"]:
        print(f"{m['model']:>10}: {m['streamed']['examples_per_s']:>9,.0f} ex/s streamed, "
              f"{m['in_memory']['examples_per_s']:>9,.0f} ex/s in memory, roofline share "
              f"{m['in_memory']['roofline_share']:.0%}")
    return _save(args, "train", record)


def _input(args) -> int:
    from benchmarks.perf import suite

    config, command = _prepare(args)
    record = suite.run_input(command, args.work, args.rows, args.features, config, args.batches, args.warmup,
                             note=args.note)
    for name, v in record["variants"].items():
        print(f"{name:>15}: {v['examples_per_s']:>10,.0f} examples/s")
    return _save(args, "input", record)


def _serving(args) -> int:
    from benchmarks.perf import suite

    config, command = _prepare(args)
    record = suite.run_serving(command, args.work, args.rows, args.features, config, args.model,
                               batch_sizes=args.batch_sizes, requests=args.requests, note=args.note)
    for b, r in record["batch_sizes"].items():
        print(f"batch {b:>5}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    return _save(args, "serving", record)


def _pipeline(args) -> int:
    from benchmarks.perf import pipeline_scaling, results

    config, command = _prepare(args)
    earlier = results.read_result(args.results, "pipeline", args.tag) if args.extend else None
    if args.extend and earlier is None:
        raise MeanTFError(f"--extend: no saved record {results.result_path(args.results, 'pipeline', args.tag)}")
    record = pipeline_scaling.run_scaling(command, args.work, args.sizes, args.features, config, args.model,
                                          args.direct_num_workers, epochs=args.epochs, not_run=args.not_run,
                                          note=args.note, shuffle_examples=args.shuffle_examples, extend=earlier,
                                          on_run=lambda partial: _save(args, "pipeline", partial), profile=args.profile)
    for r in record["runs"]:
        print(f"{r['rows']:>9,} rows: {r['wall_seconds']:.0f} s, peak {r['peak_rss_gib']:.2f} GiB")
    return 0


def _score(args) -> int:
    from benchmarks.perf import suite

    config, command = _prepare(args)
    record = suite.run_score(command, args.work, args.rows, args.features, config, args.model, sizes=args.sizes,
                             note=args.note)
    for r in record["scoring_runs"]:
        print(f"{r['customers']:>9,} customers: {r['wall_seconds']:.0f} s, peak {r['peak_rss_mib']:,.0f} MiB")
    return _save(args, "score", record)


def _writer(args) -> int:
    from benchmarks.perf import suite

    _, command = _prepare(args)
    record = suite.run_writer(command, args.work, args.rows, args.features, args.passes, note=args.note)
    for name, r in record["encoders"].items():
        print(f"{name}: {r['rows_per_s']:,.0f} rows/s, {r['cpu_seconds']:.0f} CPU-s, {r['megabytes']:,.0f} MB")
    return _save(args, "writer", record)


def _all(args) -> int:
    import argparse

    from benchmarks.perf import results

    _resolve_paths(args)
    args.command_line = results.command_line(args)
    shared = {k: v for k, v in vars(args).items() if k not in ("func", "part", "report", "sizes") and v is not None}
    for part, func in (("train", _train), ("input", _input), ("serving", _serving), ("score", _score),
                       ("writer", _writer), ("pipeline", _pipeline)):
        own = vars(_PARTS[part].parse_args([]))  # the part's own defaults, then what `all` was given
        if part == "pipeline":
            own["sizes"] = args.sizes
        func(argparse.Namespace(**{**own, **shared}))
    return _report(argparse.Namespace(results=args.results, report=args.report, write_docs=args.write_docs))


def _report(args) -> int:
    from benchmarks.perf.report import write_report

    _resolve_paths(args)
    print(f"wrote {write_report(args.results, args.report, flags=' --write-docs' if args.write_docs else '')}")
    return 0


def main(argv=None) -> int:
    """`python -m benchmarks.perf PART ...`: the `perf` command of the mean-tf CLI's machinery (errors, logs)."""
    import sys

    return cli.main(["perf", *(sys.argv[1:] if argv is None else argv)], {"perf": register}, PROG)
