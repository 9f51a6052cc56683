"""Batch scoring of a dataset with an exported model (`mean-tf score`): one row per customer.

Columns: the id columns (customer_id, cutoff); `cltv`, the model's calibrated money prediction for
its label, and `cltv_uncalibrated`; `inputs_out_of_range`, how many numeric features lay beyond the model's
training range and were clipped to it (> 0: a flagged customer), and `clipped_features`, their names; `cltv_<days>` for every label of a multi-horizon model; `p_payer`
where the model has one; `cltv_q10/q50/q90` (ZILN models) or `p_bucket_<b>` with the bucket's money
range `bucket_<b>_lower/upper` (DAM models); then `rank` (1 = highest cltv, ties by input order),
`decile` (1 = top tenth) and `target` (the top `target_share` of customers, as the paper's A/B test
targets the top 10 % by predicted cltv_365).

Streaming: the records go through the model's `serving_default` signature in batches and each batch is
written to a temporary Parquet file; only the `cltv` column (8 bytes per customer) is kept in memory, to
rank; a second pass adds rank, decile and target. The output is written next to its path and renamed at
the end (a gs:// output: uploaded at the end): never half-written.

One odd customer does not stop a run: a customer the model refuses (a missing or non-finite feature) is
set aside and listed in a rejects file next to the output (`<name>.rejects.csv`: customer_id, feature,
reason); the run fails only when every customer is refused, or with `strict` when any is.
"""
from __future__ import annotations

import collections
import json
import math
import os
import re
from typing import Dict, List, Optional

import numpy as np

from mean_tf import contract
from mean_tf.contract import MODEL_INFO_FILE, SCORE_SPLIT
from mean_tf.data.manifest import MAX_ABS_VALUE
from mean_tf.errors import MeanTFError
from mean_tf.runtime.files import atomic_file, exists, open_file, scratch_dir

BATCH_SIZE = 8192
TARGET_SHARE = 0.1
FORMATS = (".parquet", ".csv")
REJECTS_COLUMNS = ("customer_id", "feature", "reason")
CLIPPED_COLUMN = "clipped_features"


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
    from mean_tf.serving import uncertainty

    cols = {contract.CLTV_OUTPUT: outputs[contract.CLTV_OUTPUT],
            contract.UNCALIBRATED_OUTPUT: outputs[contract.UNCALIBRATED_OUTPUT]}
    if contract.OUT_OF_RANGE_OUTPUT in outputs:  # > 0: flagged, its inputs beyond the training range were clipped
        cols[contract.OUT_OF_RANGE_OUTPUT] = outputs[contract.OUT_OF_RANGE_OUTPUT]
    if len(labels) > 1:
        cols.update({label: outputs[label] for label in labels})
    for key in (contract.PAYER_OUTPUT, *(uncertainty.quantile_name(q) for q in uncertainty.QUANTILES)):
        if key in outputs:
            cols[key] = outputs[key]
    if contract.BUCKET_PROBS_OUTPUT in outputs:
        probs = outputs[contract.BUCKET_PROBS_OUTPUT]
        for b in range(probs.shape[1]):
            cols[f"p_bucket_{b}"] = probs[:, b]
            for edge, key in (("lower", contract.BUCKET_LOWER_OUTPUT), ("upper", contract.BUCKET_UPPER_OUTPUT)):
                if key in outputs:
                    cols[f"bucket_{b}_{edge}"] = outputs[key][:, b]
    return cols


def score(model_dir: str, dataset, out: str, split: Optional[str] = None, target_share: float = TARGET_SHARE,
          batch_size: int = BATCH_SIZE, strict: bool = False) -> dict:
    """Score `split` of `dataset` (a Manifest; default: its "score" split, else "test") with the model
    exported at `model_dir`; write `out` (.parquet or .csv) and its rejects file (`rejects_path`). A customer
    the model refuses (a missing or non-finite feature) goes to the rejects file and the others are scored;
    MeanTFError (nothing written) when every customer is refused, or with `strict` when any is. Returns a
    summary dict."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mean_tf.data.manifest import require_features, verify_split_files

    fmt = check_output(out)
    if not 0.0 < target_share <= 1.0:
        raise MeanTFError(f"--target-share must be in (0, 1], got {target_share}")
    info = read_model_info(model_dir)
    split = split or (SCORE_SPLIT if SCORE_SPLIT in dataset.splits else "test")
    files = dataset.files(split)  # MeanTFError naming the splits when missing
    require_features(dataset, info["raw_features"], f"the model at {model_dir}")
    verify_split_files(dataset)  # a file cut short would otherwise score fewer customers, silently

    import tensorflow as tf

    signatures = tf.saved_model.load(model_dir).signatures
    serve, beyond = signatures["serving_default"], signatures.get(contract.OUT_OF_RANGE_SIGNATURE)
    id_spec = {c: tf.io.FixedLenFeature([], tf.string) for c in dataset.id_columns}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    with scratch_dir(out) as tmp_dir:
        parts, cltv, rejects, clipped, flagged = [], [], [], collections.Counter(), 0
        for i, batch in enumerate(records):
            ids = {k: v.numpy().astype(str) for k, v in tf.io.parse_example(batch, id_spec).items()}
            outputs, served, refused = serve_each(serve, batch)
            rejects += [(ids["customer_id"][j], *rejection(text, batch[j].numpy())) for j, text in refused]
            if not served.size:
                continue
            columns = {**{k: v[served] for k, v in ids.items()}, **_columns(outputs, info["labels"])}
            if contract.OUT_OF_RANGE_OUTPUT in outputs and beyond is not None:
                columns[CLIPPED_COLUMN] = clipped_names(beyond, tf.gather(batch, served),
                                                        outputs[contract.OUT_OF_RANGE_OUTPUT], info["numeric_features"])
                flagged += int((outputs[contract.OUT_OF_RANGE_OUTPUT] > 0).sum())
                clipped.update(name for names in columns[CLIPPED_COLUMN] if names for name in names.split(","))
            table = pa.table(columns)
            parts.append(os.path.join(tmp_dir, f"part-{i:06d}.parquet"))
            pq.write_table(table, parts[-1])
            cltv.append(outputs[contract.CLTV_OUTPUT].astype(np.float64))
        values = np.concatenate(cltv) if cltv else np.zeros(0)
        if not np.isfinite(values).all():
            raise MeanTFError(f"the model at {model_dir} predicted a non-finite value for "
                              f"{int((~np.isfinite(values)).sum())} customer(s)")
        from mean_tf.evaluation.metrics import ranking_order, top_count

        n = values.size
        if rejects and (strict or not n):
            raise MeanTFError(refused_line(rejects, n, model_dir, strict))
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
        with atomic_file(rejects_path(out)) as tmp_rejects:
            import pandas as pd

            pd.DataFrame(rejects, columns=list(REJECTS_COLUMNS)).to_csv(tmp_rejects, index=False)
    return {"customers": n, "split": split, "label": info["label"], "calibrated": info["label"] in info["calibrated"],
            "targeted": targeted, "predicted_total": float(values.sum()),
            "targeted_total": float(values[rank <= targeted].sum()), "out": out, "flagged": flagged,
            "clipped": clipped.most_common(), "rejected": len(rejects), "rejects": rejects_path(out)}


def clipped_names(beyond, records, out_of_range: np.ndarray, numeric: List[str]) -> np.ndarray:
    """The names of the features `serving_default` clipped, comma-separated, per record ("" for none): the
    model's `out_of_range_features` signature, asked about the flagged records only."""
    names = np.full(len(out_of_range), "", dtype=object)
    flagged = np.flatnonzero(out_of_range > 0)
    if flagged.size:
        import tensorflow as tf

        mask = beyond(examples=tf.gather(records, flagged))[contract.BEYOND_OUTPUT].numpy()
        names[flagged] = [",".join(np.asarray(numeric)[row]) for row in mask]
    return names


def rejects_path(out: str) -> str:
    """The rejects file of a scores file: `<name>.rejects.csv` next to it."""
    return os.path.splitext(out)[0] + ".rejects.csv"


def serve_each(serve, batch):
    """Serve a batch of serialized examples, setting aside the examples the model refuses: returns (the
    outputs of the served examples, their indices in the batch, [(index, the refusal's message)]). A refused
    batch is halved until each refused example stands alone: about 2 log2(B) extra calls per refusal."""
    import tensorflow as tf

    try:
        return {k: v.numpy() for k, v in serve(examples=batch).items()}, np.arange(int(batch.shape[0])), []
    except tf.errors.InvalidArgumentError as e:
        if int(batch.shape[0]) == 1:
            return {}, np.zeros(0, np.int64), [(0, e.message)]
    half = int(batch.shape[0]) // 2
    halves = [(offset, serve_each(serve, batch[offset:stop])) for offset, stop in ((0, half), (half, None))]
    served = [(offset, outputs, kept) for offset, (outputs, kept, _) in halves if kept.size]
    outputs = {key: np.concatenate([o[key] for _, o, _ in served]) for key in served[0][1]} if served else {}
    kept = np.concatenate([offset + k for offset, _, k in served]) if served else np.zeros(0, np.int64)
    return outputs, kept, [(offset + j, text) for offset, (_, _, refused) in halves for j, text in refused]


def rejection(message: str, record: bytes) -> tuple:
    """(feature, reason) of a refused example, from the serving graph's message and the example itself."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    text = " ".join(message.split("<stack traces unavailable>")[-1].split(" : Tensor had")[0].split("[[")[0].split())
    missing = re.search(r"Feature: (\S+) \(data type: \w+\) is required", text)
    if missing:
        return missing.group(1), "missing"
    named = re.search(r"feature '([^']+)'", text)
    if not named:
        return "", text[:200]
    feature = named.group(1)
    try:
        values = tf.train.Example.FromString(record).features.feature[feature].float_list.value
    except DecodeError:  # not a tf.Example: the message is all there is
        values = []
    if len(values) == 1 and not math.isfinite(values[0]):
        return feature, f"not finite ({values[0]})"
    if len(values) == 1 and abs(values[0]) > MAX_ABS_VALUE:
        return feature, f"{values[0]:g} is beyond |x| <= {MAX_ABS_VALUE:g}"
    return feature, text[:200]


def refused_line(rejects, served: int, model_dir: str, strict: bool, shown: int = 5) -> str:
    """The one-line error when the rejects stop the run (every customer refused, or any with --strict)."""
    why = "--strict: nothing written" if strict else "no customer left to score"
    listed = "; ".join(f"customer {customer}: {feature + ' ' if feature else ''}{reason}"
                       for customer, feature, reason in rejects[:shown])
    return (f"the model at {model_dir} refused {len(rejects)} customer(s) of {len(rejects) + served} ({why}); "
            f"first {min(shown, len(rejects))}: {listed}" + ("; without --strict the others are scored and the "
                                                              "refused ones listed in a rejects file" if strict else ""))


def summary_line(summary: dict) -> str:
    """One line for the CLI."""
    return (f"scored {summary['customers']:,} customers ({summary['split']} split) -> {summary['out']}: predicted "
            f"{summary['label']} total {summary['predicted_total']:,.2f}"
            f"{'' if summary['calibrated'] else ' (uncalibrated)'}; top {summary['targeted']:,} targeted "
            f"({summary['targeted_total']:,.2f} predicted); {summary['flagged']:,} flagged"
            + (" (inputs beyond the training range, clipped: most often "
               + ", ".join(f"{name} ({count:,})" for name, count in summary["clipped"][:5]) + ")"
               if summary["flagged"] else "")
            + f"; {summary['rejected']:,} refused (missing or non-finite features) -> {summary['rejects']}")
