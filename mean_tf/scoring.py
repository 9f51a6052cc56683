"""Batch scoring of a dataset with an exported model (`mean-tf score`): one row per customer.

Columns: the id columns (customer_id, cutoff); `cltv`, the model's calibrated money prediction for
its label, and `cltv_uncalibrated`; `cltv_<days>` for every label of a multi-horizon model; `p_payer`
where the model has one; `cltv_q10/q50/q90` (ZILN models) or `p_bucket_<b>` with the bucket's money
range `bucket_<b>_lower/upper` (DAM models); then `rank` (1 = highest cltv, ties by input order),
`decile` (1 = top tenth) and `target` (the top `target_share` of customers, as the paper's A/B test
targets the top 10 % by predicted cltv_365).

Streaming: the records go through the model's `serving_default` signature in batches and each batch is
written to a temporary Parquet file; only the `cltv` column (8 bytes per customer) is kept in memory, to
rank; a second pass adds rank, decile and target. The output is written next to its path and renamed at
the end: never half-written.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import numpy as np

from mean_tf.errors import MeanTFError
from mean_tf.files import atomic_file, exists, open_file, scratch_dir

BATCH_SIZE = 8192
TARGET_SHARE = 0.1
FORMATS = (".parquet", ".csv")
# Written next to the SavedModel by `mean_tf.trainer.export_serving_model` (TF Serving ignores assets.extra):
# the label, labels, raw features, calibration and bucket ranges.
MODEL_INFO_FILE = os.path.join("assets.extra", "mean_tf.json")


def read_model_info(export_dir: str) -> dict:
    """The `MODEL_INFO_FILE` of an exported model; MeanTFError if `export_dir` is not one."""
    if not exists(os.path.join(export_dir, "saved_model.pb")):
        raise MeanTFError(f"{export_dir}: not a SavedModel folder (no saved_model.pb); give the folder of one "
                          f"pushed model version, e.g. out/pipeline/serving_model/<version>")
    path = os.path.join(export_dir, MODEL_INFO_FILE)
    if not exists(path):
        raise MeanTFError(f"{export_dir}: no {MODEL_INFO_FILE}: not exported by this version of mean-tf")
    with open_file(path) as f:
        return json.load(f)


def check_output(out: str) -> str:
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise MeanTFError(f"{out}: the output must end in {' or '.join(FORMATS)}")
    return suffix


def _columns(outputs: Dict[str, np.ndarray], labels: List[str]) -> Dict[str, np.ndarray]:
    """The output table's columns (module docstring) from one batch of serving outputs."""
    from mean_tf import trainer, uncertainty

    cols = {trainer.CLTV_OUTPUT: outputs[trainer.CLTV_OUTPUT],
            trainer.UNCALIBRATED_OUTPUT: outputs[trainer.UNCALIBRATED_OUTPUT]}
    if len(labels) > 1:
        cols.update({label: outputs[label] for label in labels})
    for key in (trainer.PAYER_OUTPUT, *(uncertainty.quantile_name(q) for q in uncertainty.QUANTILES)):
        if key in outputs:
            cols[key] = outputs[key]
    if trainer.BUCKET_PROBS_OUTPUT in outputs:
        probs = outputs[trainer.BUCKET_PROBS_OUTPUT]
        for b in range(probs.shape[1]):
            cols[f"p_bucket_{b}"] = probs[:, b]
            for edge, key in (("lower", trainer.BUCKET_LOWER_OUTPUT), ("upper", trainer.BUCKET_UPPER_OUTPUT)):
                if key in outputs:
                    cols[f"bucket_{b}_{edge}"] = outputs[key][:, b]
    return cols


def score(model_dir: str, dataset, out: str, split: Optional[str] = None, target_share: float = TARGET_SHARE,
          batch_size: int = BATCH_SIZE) -> dict:
    """Score `split` of `dataset` (a Manifest; default: its "score" split, else "test") with the model
    exported at `model_dir`; write `out` (.parquet or .csv). Returns a summary dict."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mean_tf import trainer
    from mean_tf.data.manifest import SCORE_SPLIT, require_features, verify_split_files

    fmt = check_output(out)
    if not 0.0 < target_share <= 1.0:
        raise MeanTFError(f"--target-share must be in (0, 1], got {target_share}")
    info = read_model_info(model_dir)
    split = split or (SCORE_SPLIT if SCORE_SPLIT in dataset.splits else "test")
    files = dataset.files(split)  # MeanTFError naming the splits when missing
    require_features(dataset, info["raw_features"], f"the model at {model_dir}")
    verify_split_files(dataset)  # a file cut short would otherwise score fewer customers, silently

    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    id_spec = {c: tf.io.FixedLenFeature([], tf.string) for c in dataset.id_columns}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    with scratch_dir(out) as tmp_dir:
        parts, cltv = [], []
        for i, batch in enumerate(records):
            ids = {k: v.numpy().astype(str) for k, v in tf.io.parse_example(batch, id_spec).items()}
            try:
                outputs = {k: v.numpy() for k, v in serve(examples=batch).items()}
            except tf.errors.InvalidArgumentError:
                raise MeanTFError(refused(serve, batch, ids["customer_id"], model_dir)) from None
            table = pa.table({**ids, **_columns(outputs, info["labels"])})
            parts.append(os.path.join(tmp_dir, f"part-{i:06d}.parquet"))
            pq.write_table(table, parts[-1])
            cltv.append(outputs[trainer.CLTV_OUTPUT].astype(np.float64))
        values = np.concatenate(cltv) if cltv else np.zeros(0)
        if not np.isfinite(values).all():
            raise MeanTFError(f"the model at {model_dir} predicted a non-finite value for "
                              f"{int((~np.isfinite(values)).sum())} customer(s)")
        from mean_tf.metrics import ranking_order, top_count

        n = values.size
        if not n:
            raise MeanTFError(f"dataset {dataset.name!r}: split {split!r} has no customers to score")
        rank = np.empty(n, dtype=np.int64)
        rank[ranking_order(values)] = np.arange(1, n + 1)
        decile = np.minimum((rank - 1) * 10 // n + 1, 10)
        targeted = top_count(n, target_share)
        with atomic_file(out) as tmp_out:
            start, writer = 0, None
            for j, part in enumerate(parts):
                table = pq.read_table(part)
                stop = start + table.num_rows
                table = table.append_column("rank", pa.array(rank[start:stop])).append_column(
                    "decile", pa.array(decile[start:stop])).append_column("target",
                                                                          pa.array(rank[start:stop] <= targeted))
                if fmt == ".parquet":
                    writer = writer or pq.ParquetWriter(tmp_out, table.schema)
                    writer.write_table(table)
                else:
                    table.to_pandas().to_csv(tmp_out, mode="a", header=j == 0, index=False)
                start = stop
            if writer is not None:
                writer.close()
    return {"customers": n, "split": split, "label": info["label"], "calibrated": info["label"] in info["calibrated"],
            "targeted": targeted, "predicted_total": float(values.sum()),
            "targeted_total": float(values[rank <= targeted].sum()), "out": out}


def refused(serve, batch, customers, model_dir: str, shown: int = 5) -> str:
    """The one-line error for a batch the model refused: how many customers, and why for the first few."""
    import tensorflow as tf

    reasons = []
    for customer, record in zip(customers, batch):
        try:
            serve(examples=record[None])
        except tf.errors.InvalidArgumentError as e:
            text = e.message.split("<stack traces unavailable>")[-1]  # eager errors lead with the node's name
            text = " ".join(text.split(" : Tensor had")[0].split("[[")[0].split())  # the check's own words
            reasons.append(f"customer {customer}: {text[:160]}")
    return (f"the model at {model_dir} refused {len(reasons)} customer(s) of a batch (nothing written); first "
            f"{min(shown, len(reasons))}: " + "; ".join(reasons[:shown]))


def summary_line(summary: dict) -> str:
    """One line for the CLI."""
    return (f"scored {summary['customers']:,} customers ({summary['split']} split) -> {summary['out']}: predicted "
            f"{summary['label']} total {summary['predicted_total']:,.2f}"
            f"{'' if summary['calibrated'] else ' (uncalibrated)'}; top {summary['targeted']:,} targeted "
            f"({summary['targeted_total']:,.2f} predicted)")
