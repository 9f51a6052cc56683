"""Criteo Sponsored Search Conversion Log (Criteo-SSC: the file CriteoSearchData, tab-separated, no header)
-> one row per click, `mean-tf data criteo-ssc`.

The file's columns, as its documentation lists them: Sale, SalesAmountInEuro, Time_delay_for_conversion,
click_timestamp, nb_clicks_1week, product_price, product_age_group, device_type, audience_id,
product_gender, product_brand, product_category1..7, product_country, product_id, product_title,
partner_id, user_id; -1 marks a missing value (and "no conversion" in the first three).

- label `conversion_value`: SalesAmountInEuro where Sale = 1, else 0 (a Sale = 1 row whose amount is -1 is
  labelled 0 and counted in build_info.json);
- numeric features, as in the file (-1 = missing): nb_clicks_1week, product_price; both heavy-tailed, so
  money features (sign * log1p before the z-score);
- categorical features, the hashed values as text ("-1", missing, is a category of its own):
  product_age_group, device_type, audience_id, product_gender, product_brand, product_category1..7,
  product_country, product_id, partner_id;
- not features: Sale and Time_delay_for_conversion (known only after the conversion), click_timestamp
  (gives the row's `cutoff`, the click's UTC date), product_title (a list of hashed words, not one
  category), user_id (an identity, not a trait);
- ids: customer_id = the row's number in the file, 1 for the first click (the sample is a click; a header
  line is not counted), cutoff = the click's date;
- split: random by row, 7:1:2, from a seeded hash of the row number (`splits.hashed_split`).
A header line naming the columns (in any order) is accepted too. The file is read and written in batches:
memory does not grow with its length.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from mean_tf.data import manifest as mf
from mean_tf.data import streaming
from mean_tf.data.splits import hashed_split
from mean_tf.errors import MeanTFError

NAME = "criteo_ssc"
COLUMNS = ("Sale", "SalesAmountInEuro", "Time_delay_for_conversion", "click_timestamp", "nb_clicks_1week",
           "product_price", "product_age_group", "device_type", "audience_id", "product_gender", "product_brand",
           *(f"product_category{i}" for i in range(1, 8)), "product_country", "product_id", "product_title",
           "partner_id", "user_id")
LABEL = "conversion_value"
NUMERIC = ("nb_clicks_1week", "product_price")
CATEGORICAL = ("product_age_group", "device_type", "audience_id", "product_gender", "product_brand",
               *(f"product_category{i}" for i in range(1, 8)), "product_country", "product_id", "partner_id")
SLICES = ("device_type",)
ATTRIBUTION = ("Criteo Sponsored Search Conversion Log Dataset, Criteo AI Lab "
               "(https://ailab.criteo.com/criteo-sponsored-search-conversion-log-dataset/)")
FEATURE_DOCS = {
    "nb_clicks_1week": "clicks the product's ad received in the week before (-1: missing)",
    "product_price": "price of the advertised product (-1: missing)",
    **{c: f"{c} (hashed; '-1': missing)" for c in CATEGORICAL},
}


def _layout(path):
    """(column names if the file has no header, else None): the first line is a header or 23 fields."""
    fields = streaming.first_line(path).split("\t")
    if fields and fields[0].strip() in COLUMNS:
        missing = [c for c in COLUMNS if c not in [f.strip() for f in fields]]
        if missing:
            raise MeanTFError(f"{path}: missing column(s) {missing} (the header names {fields})")
        return None
    if len(fields) != len(COLUMNS):
        raise MeanTFError(f"{path}: line 1 has {len(fields)} tab-separated fields, expected the {len(COLUMNS)} "
                          f"columns of CriteoSearchData ({', '.join(COLUMNS)}) without a header line")
    return list(COLUMNS)


def _frame(batch, first_row: int, seed: int, path):
    """One batch as rows of the dataset table (ids, features, label, split), and its Sale = 1 rows without an amount."""
    import pyarrow.compute as pc

    for c in ("Sale", "SalesAmountInEuro", "click_timestamp", *NUMERIC):
        if batch.column(c).null_count:
            at = first_row + int(np.flatnonzero(pc.is_null(batch.column(c)).to_numpy(zero_copy_only=False))[0])
            raise MeanTFError(f"{path}: column {c!r} is empty at row {at}")
    sale = batch.column("Sale").to_numpy()
    bad = (sale != 0) & (sale != 1)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise MeanTFError(f"{path}: column 'Sale' is {sale[at]} at row {first_row + at}, expected 0 or 1")
    amount = batch.column("SalesAmountInEuro").to_numpy()
    numbers = first_row + np.arange(batch.num_rows, dtype=np.int64)
    frame = pd.DataFrame({
        "customer_id": numbers.astype(str),
        "cutoff": (batch.column("click_timestamp").to_numpy() // 86_400).astype("datetime64[D]").astype(str),
        **{c: batch.column(c).to_numpy() for c in NUMERIC},
        **{c: batch.column(c).to_numpy(zero_copy_only=False) for c in CATEGORICAL},
        LABEL: np.where(sale == 1, np.maximum(amount, 0.0), 0.0),
        "split": hashed_split(numbers, seed),
    })
    frame.index = pd.RangeIndex(len(frame)) + first_row  # check_table's errors name "row N"
    return frame, int(((sale == 1) & (amount < 0)).sum())


def build(out, input_path, seed: int = 0, name: str = NAME, batch_bytes: int = streaming.BATCH_BYTES,
          progress: Optional[streaming.Progress] = None) -> mf.Manifest:
    """Build the dataset folder `out` (atomically), streaming the file; returns its manifest."""
    import pyarrow as pa

    path = streaming.check_input(input_path, "Criteo-SSC file")
    mf.check_output_dir(out)
    names = _layout(path)
    types = {c: pa.string() for c in COLUMNS}
    types.update(Sale=pa.int64(), SalesAmountInEuro=pa.float64(), click_timestamp=pa.int64(),
                 nb_clicks_1week=pa.float64(), product_price=pa.float64())
    wanted = ["Sale", "SalesAmountInEuro", "click_timestamp", *NUMERIC, *CATEGORICAL]
    manifest = mf.Manifest(name=name, splits={}, split_rule="row_hash", split_seed=int(seed),
                           numeric_features=list(NUMERIC), money_features=list(NUMERIC),
                           categorical_features=list(CATEGORICAL), slice_features=list(SLICES), labels=[LABEL],
                           feature_docs=dict(FEATURE_DOCS))
    row, sale_without_amount = 1, 0
    writer = streaming.ChunkedDatasetWriter(out, manifest, source=str(path))
    with writer:
        for batch in streaming.batches(path, {c: types[c] for c in wanted}, delimiter="\t", column_names=names,
                                       include_columns=wanted, batch_bytes=batch_bytes, progress=progress):
            frame, missing_amounts = _frame(batch, row, seed, path)
            writer.write(frame)
            sale_without_amount += missing_amounts
            row += batch.num_rows
        writer.extra_files.update(streaming.build_info(
            builder="mean-tf data criteo-ssc", input=str(input_path), rows_read=row - 1,
            sale_rows_without_amount_labelled_0=sale_without_amount, split_rule="random by row: a seeded hash of "
            "the row number, 7:1:2", split_seed=seed, label="SalesAmountInEuro if Sale = 1 else 0",
            source=ATTRIBUTION))
    return writer.result
