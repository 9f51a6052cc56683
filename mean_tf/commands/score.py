"""`mean-tf score --model SERVING_DIR --data DATASET --out predictions.parquet|csv`: score customers in batches."""
from __future__ import annotations


def register(subparsers):
    from mean_tf.serving.scoring import BATCH_SIZE, TARGET_SHARE

    p = subparsers.add_parser(
        "score", help="score a dataset's customers with an exported model: one row per customer",
        description="Predict each customer's CLTV with a pushed model (a SavedModel version folder) and write "
                    "one row per customer: calibrated cltv, P(payer), quantiles or bucket probabilities with "
                    "their money ranges, rank, decile, a target flag for the top share and inputs_out_of_range "
                    "(features beyond the training range, clipped). Customers the model refuses go to a rejects "
                    "file. Paths may be gs:// URIs. Build a scoring dataset from a transaction log with "
                    "`mean-tf data transactions --score-date end`.")
    p.add_argument("--model", required=True, metavar="SERVING_DIR",
                   help="an exported model version, e.g. out/pipeline/serving_model/<version>")
    p.add_argument("--data", required=True, metavar="DATASET", help="a dataset folder (or its manifest.json)")
    p.add_argument("--split", default=None, help="split to score (default: 'score' in a scoring dataset, else 'test')")
    p.add_argument("--out", required=True, help="predictions file: .parquet or .csv (written atomically)")
    p.add_argument("--target-share", type=float, default=TARGET_SHARE,
                   help=f"share of customers flagged as targets, by rank (default {TARGET_SHARE})")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"records per batch (default {BATCH_SIZE})")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 2, nothing written) when the model refuses any customer; by default refused "
                        "customers (missing or non-finite features) go to <out name>.rejects.csv and the others "
                        "are scored")
    p.set_defaults(func=main)


def main(args) -> int:
    from mean_tf.data.manifest import read_manifest
    from mean_tf.serving import scoring

    scoring.check_output(args.out)  # fast checks before TensorFlow loads the model
    dataset = read_manifest(args.data)
    scoring.read_model_info(args.model)
    summary = scoring.score(args.model, dataset, args.out, args.split, args.target_share, args.batch_size,
                            strict=args.strict)
    print(scoring.summary_line(summary))
    return 0
