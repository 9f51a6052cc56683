"""`mean-tf benchmark [run|report] [--smoke] [--write-docs]`: the paper's experiments on public data, and their
report. Results and report go under out/benchmark/ by default; `--write-docs` regenerates the tracked
docs/results.md from docs/benchmark/results.jsonl (what `make benchmark` runs)."""
from __future__ import annotations

import json
import os
import shlex
import sys

from mean_tf.commands._common import OUT, add_list_option, add_renamed_option, integers
from mean_tf.runtime.files import write_json

DEFAULT_RESULTS = os.path.join(OUT, "benchmark", "results.jsonl")
DEFAULT_REPORT_DIR = os.path.join(OUT, "benchmark")
DOCS_RESULTS = os.path.join("docs", "benchmark", "results.jsonl")
DOCS_REPORT_DIR = "docs"
DEFAULT_WORK = os.path.join(".cache", "benchmark")
DISCUSSION = os.path.join("docs", "benchmark", "discussion.md")


def register(subparsers):
    p = subparsers.add_parser(
        "benchmark", help="run the paper's experiments (Table 1, ablations, sweeps, targeting) and render their report",
        description="Run benchmark cells (resumable: finished cells are skipped) and/or render the report "
                    f"(results.md and figures/). Without an action: run, then report. Default outputs: "
                    f"{DEFAULT_RESULTS} and {DEFAULT_REPORT_DIR}/; --write-docs: {DOCS_RESULTS} and "
                    f"{DOCS_REPORT_DIR}/results.md, the tracked report.")
    p.add_argument("action", nargs="?", choices=("run", "report", "all"), default="all")
    p.add_argument("--smoke", action="store_true",
                   help="tiny synthetic data, one seed, two epochs, cltv_365, a model of each kind and one cell per study; "
                        "results and report go under --work")
    p.add_argument("--write-docs", action="store_true",
                   help=f"results in {DOCS_RESULTS} and the report in {DOCS_REPORT_DIR}/ (the repository's "
                        "docs; `make benchmark`), unless --results/--report-dir say otherwise")
    p.add_argument("--results", help=f"results file (JSON lines); default {DEFAULT_RESULTS}, or under --work with --smoke")
    p.add_argument("--work", default=None, help=f"scratch folder for datasets and Transform caches (default {DEFAULT_WORK})")
    add_renamed_option(p, "--report-dir", "--docs", default=None, metavar="DIR",
                       help=f"where results.md and figures/ go (default {DEFAULT_REPORT_DIR}, or under --work "
                            "with --smoke)")
    add_list_option(p, "--only", default=(), metavar="STUDIES",
                    help="studies: choice,tune,table1,variant,delta,n; scale (quality against training rows, "
                         "days of CPU) runs only when named here")
    add_list_option(p, "--models", default=(), metavar="MODELS", help="model names")
    add_list_option(p, "--datasets", default=(), metavar="DATASETS",
                    help="online_retail_ii,cdnow,synthetic, the scale study's synthetic_200k,synthetic_spread_200k,"
                         "synthetic_1m, or NAME:FOLDER for a dataset you built (e.g. kaggle_shoppers:out/kaggle), run "
                         "with the same protocol")
    add_list_option(p, "--seeds", of=integers, default=(), metavar="SEEDS", help="e.g. 0,1,2")
    p.set_defaults(func=main)


def _paths(args):
    """(work, results, report dir): the flags, else --smoke's folder under --work, --write-docs' docs/, or out/."""
    from mean_tf.errors import MeanTFError

    if args.smoke and args.write_docs:
        raise MeanTFError("benchmark: --write-docs is for the full benchmark, not --smoke (whose results stay "
                          "under --work)")
    work = args.work or (os.path.join(".cache", "benchmark-smoke") if args.smoke else DEFAULT_WORK)
    if args.smoke:
        results, report_dir = os.path.join(work, "results.jsonl"), os.path.join(work, "docs")
    elif args.write_docs:
        results, report_dir = DOCS_RESULTS, DOCS_REPORT_DIR
    else:
        results, report_dir = DEFAULT_RESULTS, DEFAULT_REPORT_DIR
    return work, args.results or results, args.report_dir or report_dir


def _record_command(meta_path: str) -> None:
    """Append this command line to the results' metadata (every run that added cells), with the machine."""
    from mean_tf.benchmark import run

    command = "mean-tf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "mean-tf benchmark"
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    meta = {"commands": meta.get("commands", []) + [command], **run.environment()}
    write_json(meta_path, meta, indent=2)


def _datasets(items):
    """(dataset names, {name: folder} of the NAME:FOLDER items): `--datasets` as given."""
    from mean_tf.errors import MeanTFError

    names, folders = [], {}
    for item in items:
        name, sep, folder = item.partition(":")
        if sep and not (name.isidentifier() and folder):
            raise MeanTFError(f"--datasets {item!r}: expected NAME:FOLDER with a name of letters, digits and _")
        names.append(name)
        if sep:
            folders[name] = folder
    return tuple(names), folders


def main(args) -> int:
    from mean_tf.benchmark import plan as plan_lib
    from mean_tf.errors import MeanTFError
    from mean_tf.models import registry

    work, results, report_dir = _paths(args)
    for name in args.models:
        if name != "oracle":
            registry.spec(name)
    from mean_tf.benchmark import report, run  # after the checks: they load TensorFlow
    meta_path = os.path.splitext(results)[0] + ".meta.json"
    plan = plan_lib.SMOKE if args.smoke else plan_lib.Plan()
    names, folders = _datasets(args.datasets)
    if folders:
        from mean_tf.data.manifest import read_manifest

        plan = plan_lib.with_datasets(plan, {n: read_manifest(f).labels for n, f in folders.items()})
    if args.action in ("run", "all"):
        cells = plan_lib.narrow(plan_lib.cells(plan_lib.with_opt_in(plan, args.only)), args.only, args.models,
                                args.seeds, names)
        waiting = {c.key: plan_lib.blocked(plan, c) for c in cells if plan_lib.blocked(plan, c)}
        for reason in dict.fromkeys(waiting.values()):
            print(f"benchmark: {sum(r == reason for r in waiting.values())} cells not run, {reason}", file=sys.stderr)
        cells = [c for c in cells if c.key not in waiting]
        if not cells:
            raise MeanTFError("benchmark: the filters select no cell" + (" that can run" if waiting else ""))
        _record_command(meta_path)  # first, so a run that is stopped midway is still on record
        rows = run.Runner(work, results, smoke=args.smoke, tuned_models=plan.tuned_models,
                          dataset_paths=folders, scale_sets=plan.scale_sets, noise_seeds=plan.noise_seeds,
                          protocol=plan.protocol).run(cells)
        failed = [r for r in rows if r["status"] != "ok"]
        print(f"benchmark: {len(rows)} cells run, {len(failed)} skipped; results in {results}")
    if args.action in ("report", "all"):
        if not os.path.exists(results):
            hint = "" if args.write_docs or args.smoke or args.results else f" (or add --write-docs to read {DOCS_RESULTS})"
            raise MeanTFError(f"benchmark: no results file at {results}; run `mean-tf benchmark run` first{hint}")
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        command = "mean-tf benchmark report" + (" --write-docs" if args.write_docs else "")
        path = report.render(results, report_dir, meta, discussion=DISCUSSION if not args.smoke else None,
                             planned=plan_lib.cells(plan), settings=run.settings(args.smoke), command=command,
                             scale_plan=plan_lib.scale_only(plan))
        print(f"benchmark: report written to {path}")
    return 0
