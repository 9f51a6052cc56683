"""`mean-tf benchmark [run|report] [--smoke]`: the paper's experiments on public data, and their report."""
from __future__ import annotations

import json
import os
import shlex
import sys

DEFAULT_RESULTS = os.path.join("docs", "benchmark", "results.jsonl")
DEFAULT_WORK = os.path.join(".cache", "benchmark")
DISCUSSION = os.path.join("docs", "benchmark", "discussion.md")


def _csv(text):
    return tuple(x for x in (text or "").split(",") if x)


def register(subparsers):
    p = subparsers.add_parser(
        "benchmark", help="run the paper's experiments (Table 1, ablations, sweeps, targeting) and render docs/results.md",
        description="Run benchmark cells (resumable: finished cells are skipped) and/or render the report. "
                    "Without an action: run, then report.")
    p.add_argument("action", nargs="?", choices=("run", "report", "all"), default="all")
    p.add_argument("--smoke", action="store_true",
                   help="tiny synthetic data, one seed, two epochs, cltv_365, a model of each kind and one cell per study; "
                        "results and report go under --work")
    p.add_argument("--results", help=f"results file (JSON lines); default {DEFAULT_RESULTS}, or under --work with --smoke")
    p.add_argument("--work", default=None, help=f"scratch folder for datasets and Transform caches (default {DEFAULT_WORK})")
    p.add_argument("--docs", default=None, help="where results.md and figures/ go (default docs, or under --work with --smoke)")
    p.add_argument("--only", type=_csv, default=(), help="studies: table1,variant,delta,n")
    p.add_argument("--models", type=_csv, default=(), help="comma-separated model names")
    p.add_argument("--datasets", type=_csv, default=(), help="online_retail_ii,cdnow,synthetic")
    p.add_argument("--seeds", type=lambda t: tuple(int(x) for x in _csv(t)), default=(), help="e.g. 0,1,2")
    p.set_defaults(func=main)


def _paths(args):
    work = args.work or (os.path.join(".cache", "benchmark-smoke") if args.smoke else DEFAULT_WORK)
    results = args.results or (os.path.join(work, "results.jsonl") if args.smoke else DEFAULT_RESULTS)
    docs = args.docs or (os.path.join(work, "docs") if args.smoke else "docs")
    return work, results, docs


def _record_command(meta_path: str) -> None:
    """Append this command line to the results' metadata (every run that added cells), with the machine."""
    from mean_tf.benchmark import run

    command = "mean-tf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "mean-tf benchmark"
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    meta = {"commands": meta.get("commands", []) + [command], **run.environment()}
    os.makedirs(os.path.dirname(os.path.abspath(meta_path)), exist_ok=True)
    with open(meta_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + ".tmp", meta_path)


def main(args) -> int:
    from mean_tf.benchmark import plan as plan_lib
    from mean_tf.errors import MeanTFError
    from mean_tf.models import registry

    work, results, docs = _paths(args)
    for name in args.models:
        if name != "oracle":
            registry.spec(name)
    from mean_tf.benchmark import report, run  # after the checks: they load TensorFlow
    meta_path = os.path.splitext(results)[0] + ".meta.json"
    plan = plan_lib.SMOKE if args.smoke else plan_lib.Plan()
    if args.action in ("run", "all"):
        cells = plan_lib.narrow(plan_lib.cells(plan), args.only, args.models, args.seeds, args.datasets)
        if not cells:
            raise MeanTFError("benchmark: the filters select no cell")
        _record_command(meta_path)  # first, so a run that is stopped midway is still on record
        rows = run.Runner(work, results, smoke=args.smoke, tuned_models=plan.tuned_models).run(cells)
        failed = [r for r in rows if r["status"] != "ok"]
        print(f"benchmark: {len(rows)} cells run, {len(failed)} skipped; results in {results}")
    if args.action in ("report", "all"):
        if not os.path.exists(results):
            raise MeanTFError(f"benchmark: no results file at {results}; run `mean-tf benchmark run` first")
        meta = {}
        if os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        path = report.render(results, docs, meta, discussion=DISCUSSION if not args.smoke else None,
                             planned=plan_lib.cells(plan), settings=run.settings(args.smoke))
        print(f"benchmark: report written to {path}")
    return 0
