"""`mean-tf train --model NAME --data MANIFEST --label cltv_365`: fit one model, print its test metrics."""
from __future__ import annotations

import hashlib
import json
import os

from mean_tf.commands._common import add_config_options, config_from_args
from mean_tf.runtime.files import write_json


def register(subparsers):
    from mean_tf.models.registry import MODEL_NAMES

    p = subparsers.add_parser("train", help="train one registry model on a dataset and print test-split metrics",
                              description="Train a model (early stopping on the eval split) and print "
                                          "mean_tf.evaluation.metrics.evaluate on the test split. Multi-horizon models "
                                          "train on all four labels.")
    p.add_argument("--model", required=True, choices=MODEL_NAMES, metavar="NAME", help=", ".join(MODEL_NAMES))
    p.add_argument("--data", required=True, help="the dataset's manifest.json (from `mean-tf data ...`)")
    p.add_argument("--label", default="cltv_365", help="label of single-horizon models (default cltv_365)")
    p.add_argument("--work", default=os.path.join(".cache", "train"),
                   help="folder for the cached Transform output and the training backup (an interrupted run "
                        "restarted with the same arguments resumes from its last finished epoch)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
    p.add_argument("--json", dest="json_out", help="also write the metrics to this JSON file")
    add_config_options(p)
    p.set_defaults(func=main)


def format_metrics(results) -> str:
    """A text table: one row per label, one column per metric."""
    from mean_tf.contract import METRIC_NAMES

    head = f"{'label':<10}" + "".join(f"{m:>17}" for m in METRIC_NAMES)
    rows = [f"{label:<10}" + "".join(f"{values[m]:>17.4f}" for m in METRIC_NAMES) for label, values in results.items()]
    return "\n".join([head] + rows)


def main(args) -> int:
    from mean_tf.data.manifest import read_manifest, verify_split_files

    changes = {"labels": (args.label,)}
    if args.seed is not None:
        changes["seed"] = args.seed
    config = config_from_args(args, **changes)
    manifest = read_manifest(args.data)
    verify_split_files(manifest)  # bad input fails in seconds: all checks before TensorFlow loads
    from mean_tf.training import fit_predict

    run_key = json.dumps([args.model, manifest.root, config.to_dict()], sort_keys=True).encode()
    backup = os.path.join(args.work, "backup", f"{args.model}-{hashlib.sha1(run_key).hexdigest()[:12]}")
    outcome = fit_predict.run(args.model, config, manifest, args.work, verbose=2, backup_dir=backup)
    results = outcome.evaluate()
    print(f"{args.model} on {manifest.name}, test split ({len(outcome.y)} rows):")
    print(format_metrics(results))
    if args.json_out:
        write_json(args.json_out, {"model": args.model, "dataset": manifest.name, "metrics": results}, indent=2)
    return 0
