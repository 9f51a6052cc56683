"""Kaggle "Acquire Valued Shoppers" transactions.csv[.gz] -> one row per shopper of a company, as
google/lifetime_value's notebooks prepare it (notebooks/kaggle_acquire_valued_shoppers_challenge/
preprocess_data.ipynb and regression.ipynb), `mean-tf data kaggle-shoppers`.

The published protocol (`protocol="ziln"`, the default), per company:
- only the company's rows with purchaseamount > 0 (returns and zero rows are dropped before anything else);
- a shopper's first day is the earliest date of those rows; `cutoff` is the day after it;
- `log_calibration_value` = log of the first day's spend; `chain`, `dept`, `category`, `brand`,
  `productmeasure` of the first day's largest row (per column the first value that is not missing in
  descending amount, as pandas' groupby().first(); "UNKNOWN" if none; equal amounts: file order);
- `cltv_365` = spend in (first day, first day + 365 days];
- test = the notebook's 20 % eval set: sklearn's train_test_split(test_size=0.2, random_state=123) on the
  shoppers sorted by id (computed here with NumPy's RandomState, as sklearn does); eval = 1/8 of the other
  80 % by `splits.customer_split` (seed `seed`), train the rest: 70/10/20.
`protocol="horizons"`: the same shoppers, split and cltv_365, plus cltv_30/90/180 (same window start) and
the transaction features of `transactions.snapshots_from_transactions` on the first day's rows (those that
vary between shoppers). Several companies: each is prepared and split on its own, then pooled, with
`company` as a categorical feature and customer ids `<company>:<id>`.

The file is read twice in Arrow batches (first days, then everything else): memory grows with the
company's shoppers (and, for `horizons`, their first-day rows), not with the file's length.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from mean_tf.data import manifest as mf
from mean_tf.data import streaming
from mean_tf.data.splits import customer_split
from mean_tf.contract import HORIZONS
from mean_tf.data.transactions import LAST_PERIOD_FEATURES, snapshots_from_transactions
from mean_tf.errors import MeanTFError

NAME = "kaggle_shoppers"
COLUMNS = ("id", "chain", "dept", "category", "company", "brand", "date", "productsize", "productmeasure",
           "purchasequantity", "purchaseamount")
ATTRIBUTES = ("chain", "dept", "category", "brand", "productmeasure")
DEFAULT_COMPANIES = ("103600030",)  # the regression notebook's COMPANY
PROTOCOLS = ("ziln", "horizons")
UNKNOWN = "UNKNOWN"
NOTEBOOK_TEST_SIZE, NOTEBOOK_RANDOM_STATE = 0.2, 123
ATTRIBUTION = ("Kaggle Acquire Valued Shoppers Challenge (2014), transactions.csv; the competition's rules "
               "(https://www.kaggle.com/c/acquire-valued-shoppers-challenge/rules)")
FEATURE_DOCS = {
    "log_calibration_value": "log of the first day's spend (purchaseamount > 0 rows)",
    **{c: f"{c} of the first day's largest purchase row ('{UNKNOWN}' if missing)" for c in ATTRIBUTES},
}


@dataclasses.dataclass
class Shoppers:
    """The customer-level table of the file: one row per (company, shopper) with a purchase."""

    frame: pd.DataFrame  # company, id, start_day, calibration_value, cltv_<h>..., attributes
    first_day_rows: Optional[pd.DataFrame]  # horizons protocol: the first day's rows (company, id, amount, ...)
    rows_read: int


def _check_header(path) -> None:
    header = streaming.first_line(path).split(",")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise MeanTFError(f"{path}: missing column(s) {missing} (the header has {header}; expected the Kaggle "
                          f"transactions.csv header {','.join(COLUMNS)})")


def _purchases(batch, companies: Sequence[str], columns: Sequence[str]):
    """The batch's rows of `companies` with purchaseamount > 0, as a dict of NumPy arrays (+ `company_index`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = pc.and_(pc.is_in(batch.column("company"), value_set=pa.array(companies)),
                   pc.greater(pc.fill_null(batch.column("purchaseamount"), 0.0), 0.0))
    part = batch.filter(keep)
    out = {c: part.column(c) for c in columns}
    out["company_index"] = pc.index_in(part.column("company"), value_set=pa.array(companies)).to_numpy()
    return part.num_rows, out


def _numbers(column, name: str, path) -> np.ndarray:
    if column.null_count:
        raise MeanTFError(f"{path}: column {name!r} has a missing value in a row of the selected companies")
    return column.to_numpy(zero_copy_only=False)


def _keys(company_index: np.ndarray, ids: np.ndarray, n_companies: int, path) -> np.ndarray:
    """One int64 per (company, shopper id)."""
    if len(ids) and (ids.min() < 0 or ids.max() >= np.iinfo(np.int64).max // max(n_companies, 1)):
        raise MeanTFError(f"{path}: column 'id' has a value outside 0..{np.iinfo(np.int64).max // n_companies}")
    return ids.astype(np.int64) * n_companies + company_index.astype(np.int64)


def read_shoppers(path, companies: Sequence[str] = DEFAULT_COMPANIES, horizons: Sequence[int] = (365,),
                  keep_first_day_rows: bool = False, batch_bytes: int = streaming.BATCH_BYTES,
                  progress=None) -> Shoppers:
    """The customer-level table of `companies` (module docstring), in two streaming passes over the file.

    `progress(rows, bytes_read, bytes_total, stage)` is called after each batch (stage: "pass 1/2", "pass 2/2").
    """
    import pyarrow as pa

    path = streaming.check_input(path, "Kaggle transactions file")
    companies = [str(c).strip() for c in companies]
    if not companies:
        raise MeanTFError("give at least one --company")
    _check_header(path)
    types = {"id": pa.int64(), "company": pa.string(), "date": pa.date32(), "purchaseamount": pa.float64(),
             "purchasequantity": pa.float64(), **{c: pa.string() for c in ATTRIBUTES}}

    def stream(number, include):
        report = (lambda rows, done, total: progress(rows, done, total, f"pass {number}/2")) if progress else None
        return streaming.batches(path, {c: types[c] for c in include}, include_columns=include, nulls=True,
                                 batch_bytes=batch_bytes, progress=report)

    # Pass 1: each shopper's first day (min over purchase rows).
    n_comp = len(companies)
    parts: List[tuple] = []
    kept, rows_read, seen = 0, 0, set()
    for batch in stream(1, ["id", "company", "date", "purchaseamount"]):
        rows_read += batch.num_rows
        seen.update(_distinct_companies(batch, companies, seen))
        n, cols = _purchases(batch, companies, ["id", "date"])
        if not n:
            continue
        keys = _keys(cols["company_index"], _numbers(cols["id"], "id", path), n_comp, path)
        days = _numbers(cols["date"], "date", path).astype("datetime64[D]").astype(np.int64)
        parts.append(_min_per_key(keys, days))
        if len(parts) > 8 and sum(len(k) for k, _ in parts) > 2 * kept:  # fold: memory stays O(shoppers)
            parts = [_min_per_key(*map(np.concatenate, zip(*parts)))]
            kept = len(parts[0][0])
    unknown = [c for c in companies if c not in seen]
    if unknown:
        raise MeanTFError(f"{path}: unknown company {unknown[0]} (no row of it in the file's 'company' column)")
    if not parts:
        raise MeanTFError(f"{path}: no purchase (purchaseamount > 0) of company {', '.join(companies)}")
    keys, start = _min_per_key(*map(np.concatenate, zip(*parts)))

    # Pass 2: first-day spend and rows, and spend in each label window.
    horizons = sorted(int(h) for h in horizons)
    calibration = np.zeros(len(keys))
    spend = {h: np.zeros(len(keys)) for h in horizons}
    first_rows: List[pd.DataFrame] = []
    order = folded = 0
    wanted = ["id", "company", "date", "purchaseamount", *ATTRIBUTES]
    wanted += ["purchasequantity"] if keep_first_day_rows else []
    for batch in stream(2, wanted):
        n, cols = _purchases(batch, companies, [c for c in batch.schema.names if c != "company"])
        if not n:
            continue
        where = np.searchsorted(keys, _keys(cols["company_index"], _numbers(cols["id"], "id", path), n_comp, path))
        days = _numbers(cols["date"], "date", path).astype("datetime64[D]").astype(np.int64)
        amount = _numbers(cols["purchaseamount"], "purchaseamount", path)
        after = days - start[where]
        first = after == 0
        calibration += np.bincount(where[first], weights=amount[first], minlength=len(keys))
        for h in horizons:
            w = (after > 0) & (after <= h)
            spend[h] += np.bincount(where[w], weights=amount[w], minlength=len(keys))
        if first.any():
            rows = {"key_index": where[first], "order": order + np.flatnonzero(first), "purchaseamount": amount[first]}
            for c in cols:
                if c in ATTRIBUTES or c == "purchasequantity":
                    rows[c] = cols[c].filter(pa.array(first)).to_numpy(zero_copy_only=False)
            first_rows.append(pd.DataFrame(rows))
        order += n
        held = sum(len(f) for f in first_rows)
        if not keep_first_day_rows and held > 2 * max(folded, 1 << 16):  # memory O(shoppers)
            first_rows = [_candidates(pd.concat(first_rows, ignore_index=True))]
            folded = len(first_rows[0])
    firsts = pd.concat(first_rows, ignore_index=True)
    frame = pd.DataFrame({"company": np.asarray(companies, dtype=object)[keys % n_comp], "id": keys // n_comp,
                          "start_day": start, "calibration_value": calibration})
    for h in horizons:
        frame[f"cltv_{h}"] = spend[h]
    frame = frame.join(_largest_row_attributes(firsts, len(keys)))
    first_day = None
    if keep_first_day_rows:
        first_day = firsts.assign(company=frame["company"].to_numpy()[firsts["key_index"]],
                                  id=frame["id"].to_numpy()[firsts["key_index"]],
                                  start_day=start[firsts["key_index"]])
    return Shoppers(frame=frame, first_day_rows=first_day, rows_read=rows_read)


def _distinct_companies(batch, companies, seen) -> set:
    """Which of `companies` (not yet in `seen`) occur in the batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    todo = [c for c in companies if c not in seen]
    if not todo:
        return set()
    found = pc.unique(batch.column("company").filter(pc.is_in(batch.column("company"), value_set=pa.array(todo))))
    return set(found.to_pylist())


def _min_per_key(keys: np.ndarray, days: np.ndarray):
    """(sorted distinct keys, the smallest day of each)."""
    order = np.lexsort((days, keys))
    keys, days = keys[order], days[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
    return keys[starts], days[starts]


def _ranked(firsts: pd.DataFrame) -> pd.DataFrame:
    """First-day rows by key, then descending amount, then file order."""
    return firsts.sort_values(["key_index", "purchaseamount", "order"], ascending=[True, False, True],
                              kind="mergesort")


def _candidates(firsts: pd.DataFrame) -> pd.DataFrame:
    """The rows `_largest_row_attributes` can pick: per key, its top row and, per attribute, the top row where
    that attribute is not missing."""
    ranked = _ranked(firsts)
    picks = [ranked.drop_duplicates("key_index").index]
    picks += [ranked[ranked[c].notna()].drop_duplicates("key_index").index for c in ATTRIBUTES]
    return ranked[ranked.index.isin(np.concatenate(picks))]


def _largest_row_attributes(firsts: pd.DataFrame, n_keys: int) -> pd.DataFrame:
    """Per key: each attribute of the first day's rows in descending amount (file order among equal amounts),
    the first that is not missing; "UNKNOWN" where all are."""
    attrs = _ranked(firsts).groupby("key_index")[list(ATTRIBUTES)].first()
    return attrs.reindex(range(n_keys)).fillna(UNKNOWN).astype(str)


def notebook_test_mask(n: int) -> np.ndarray:
    """True for the rows sklearn's train_test_split(test_size=0.2, random_state=123) puts in its test part
    (ShuffleSplit: the first ceil(0.2 n) of RandomState(123).permutation(n))."""
    permutation = np.random.RandomState(NOTEBOOK_RANDOM_STATE).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[permutation[:int(np.ceil(NOTEBOOK_TEST_SIZE * n))]] = True
    return mask


def assign_splits(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Per company: the notebook's test rows (shoppers sorted by id), then eval 1/8 of the rest, train 7/8."""
    split = np.empty(len(frame), dtype=object)
    for _, rows in frame.groupby("company", sort=False).groups.items():
        rows = np.asarray(rows)
        rows = rows[np.argsort(frame["id"].to_numpy()[rows], kind="mergesort")]
        test = notebook_test_mask(len(rows))
        split[rows[test]] = "test"
        rest = rows[~test]
        split[rest] = customer_split(frame["customer_id"].to_numpy()[rest], seed, (0.875, 0.125, 0.0))
    return split


def build(out, input_path, companies: Sequence[str] = DEFAULT_COMPANIES, protocol: str = "ziln", seed: int = 0,
          name: str = NAME, batch_bytes: int = streaming.BATCH_BYTES, progress=None) -> mf.Manifest:
    """Build the dataset folder `out` (atomically) from the transactions file; returns its manifest."""
    if protocol not in PROTOCOLS:
        raise MeanTFError(f"unknown protocol {protocol!r} (use {' or '.join(PROTOCOLS)})")
    mf.check_output_dir(out)
    companies = list(dict.fromkeys(str(c).strip() for c in companies))
    horizons = HORIZONS if protocol == "horizons" else (365,)
    shoppers = read_shoppers(input_path, companies, horizons, keep_first_day_rows=protocol == "horizons",
                             batch_bytes=batch_bytes, progress=progress)
    frame = shoppers.frame
    several = len(companies) > 1
    frame["customer_id"] = (frame["company"] + ":" + frame["id"].astype(str)) if several else frame["id"].astype(str)
    frame["cutoff"] = (frame["start_day"] + 1).to_numpy().astype("datetime64[D]").astype(str)
    frame["log_calibration_value"] = np.log(frame["calibration_value"]).astype(np.float32)
    labels = [f"cltv_{h}" for h in horizons]
    numeric, categorical = ["log_calibration_value"], list(ATTRIBUTES) + (["company"] if several else [])
    docs = {**FEATURE_DOCS, "company": "the company (brand owner) the row's spend is with"}
    extra = {"money_features": [], "last_period_features": {}, "bgnbd_features": {}}
    if protocol == "horizons":
        snaps, last_period = _first_day_features(shoppers.first_day_rows, frame)
        numeric += snaps.numeric_features
        categorical += [c for c in snaps.categorical_features if c not in categorical]
        docs.update(snaps.feature_docs)
        extra = {"money_features": snaps.money_features, "bgnbd_features": {}, "last_period_features": last_period}
        frame = frame.merge(snaps.frame, on=["customer_id", "cutoff"], how="left", validate="one_to_one")
    frame["split"] = assign_splits(frame, seed)
    manifest = mf.Manifest(name=name, splits={}, split_rule="kaggle_notebook", split_seed=int(seed),
                           numeric_features=numeric, categorical_features=categorical,
                           slice_features=["company"] if several else [], labels=labels,
                           feature_docs={k: docs[k] for k in numeric + categorical}, **extra)
    info = streaming.build_info(
        builder="mean-tf data kaggle-shoppers", input=str(input_path), companies=companies, protocol=protocol,
        rows_read=shoppers.rows_read, split_rule="test: the notebook's train_test_split(test_size=0.2, "
        "random_state=123) on shoppers sorted by id, per company; eval: 1/8 of the rest by customer hash",
        split_seed=seed, label_window="(first day, first day + H days], purchaseamount > 0 rows only",
        source=ATTRIBUTION)
    return mf.write_dataset(frame, out, manifest, extra_files=info, source=str(input_path))


def _first_day_features(rows: pd.DataFrame, shoppers: pd.DataFrame):
    """Transaction features (`snapshots_from_transactions`) of each shopper's first-day rows at its cutoff, one
    call per first day, without the features that are the same for every shopper or copies of an earlier one;
    and {label: the feature with the spend of the same-length window before the cutoff} (the first day's)."""
    ids = shoppers.set_index(["company", "id"])["customer_id"]
    rows = rows.assign(customer_id=ids.reindex(pd.MultiIndex.from_arrays([rows["company"], rows["id"]])).to_numpy(),
                       time=rows["start_day"].to_numpy().astype("datetime64[D]").astype("datetime64[ns]"),
                       product=rows["category"].astype(str) + "/" + rows["brand"].astype(str))
    frames, snaps = [], None
    for day, part in rows.groupby("start_day", sort=True):
        cutoff = pd.Timestamp(np.datetime64(int(day) + 1, "D"))
        snaps = snapshots_from_transactions(part, "customer_id", "time", "purchaseamount", [cutoff],
                                            quantity_col="purchasequantity", product_col="product",
                                            labels=False, data_end=cutoff, source="first-day rows")
        frames.append(snaps.frame)
    snaps = dataclasses.replace(snaps, frame=pd.concat(frames, ignore_index=True))
    frame = snaps.frame
    dropped = {c: None for c in snaps.numeric_features + snaps.categorical_features if frame[c].nunique() <= 1}
    kept: List[str] = []
    for c in (c for c in snaps.numeric_features if c not in dropped):
        dropped[c] = next((k for k in kept if np.array_equal(frame[k].to_numpy(), frame[c].to_numpy())), None)
        if dropped[c] is None:
            del dropped[c]
            kept.append(c)
    last_period = {label: dropped.get(column, column) for label, column in LAST_PERIOD_FEATURES.items()
                   if dropped.get(column, column)}
    return snaps.drop_features(list(dropped)), last_period
