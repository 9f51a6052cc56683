"""CDNOW (the full CDNOW_master.txt shipped by the `lifetimes` package, MIT): 23,570 customers whose first
purchase was in Q1 1997, transactions to 1998-06-30 -> customer x cutoff snapshots.

The setting of the MEAN paper: predict the value of newly acquired customers. Default cutoff 1997-04-01:
features describe each customer's first quarter (first purchase value and date as tenure, orders, CDs,
spend, recency, ...); labels are the four horizons after the cutoff (365 days fit before 1998-06-30).
Columns of the file: customer id, date YYYYMMDD, number of CDs, dollar value (whitespace-separated).
Orders are (customer, day) groups. Features that are constant over the whole table (e.g. cutoff_month
with one cutoff, spend_yago_90d when no customer has a year of history) are dropped.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import pandas as pd

from mean_tf.data import manifest as mf
from mean_tf.data.splits import assign_splits
from mean_tf.data.transactions import (Snapshots, parse_numbers, parse_times, require_columns,
                                      snapshots_from_transactions)
from mean_tf.errors import MeanTFError

NAME = "cdnow"
DEFAULT_CUTOFFS = ("1997-04-01",)
COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")
ATTRIBUTION = "CDNOW master data set (Fader & Hardie), as shipped by the lifetimes package (MIT)"


def default_input() -> Path:
    try:
        import lifetimes
    except ImportError:
        raise MeanTFError("the `lifetimes` package is not installed; pass --input PATH to CDNOW_master.txt") from None
    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def load_transactions(path: Optional[Union[str, Path]] = None) -> pd.DataFrame:
    """CDNOW_master.txt as a DataFrame (customer_id str, date datetime, number_of_cds, dollar_value);
    MeanTFError naming the line for a malformed one."""
    p = Path(path) if path else default_input()
    if not p.is_file():
        raise MeanTFError(f"CDNOW input {p} not found (pass --input PATH to CDNOW_master.txt)")
    try:
        raw = pd.read_csv(p, sep=r"\s+", header=None, dtype=str)
    except pd.errors.EmptyDataError:
        raise MeanTFError(f"{p}: the file is empty") from None
    except pd.errors.ParserError as e:
        raise MeanTFError(f"{p}: cannot parse ({str(e).splitlines()[0]})") from None
    if raw.shape[1] != 4:
        raise MeanTFError(f"{p}: expected 4 whitespace-separated columns {list(COLUMNS)}, found {raw.shape[1]}")
    # Optional header line (the lifetimes copy has one)
    if len(raw) and not str(raw.iloc[0, 1]).isdigit():
        raw = raw.iloc[1:]
    raw.columns = list(COLUMNS)
    # file line numbers in the index, for error messages
    raw.index = pd.RangeIndex(len(raw)) + (2 if len(raw) and raw.index[0] == 1 else 1)
    raw.index.name = "line"
    return prepare_transactions(raw, source=str(p))


def prepare_transactions(df: pd.DataFrame, source: str = "cdnow") -> pd.DataFrame:
    require_columns(df, COLUMNS, source)
    out = pd.DataFrame(index=df.index)
    ids = df["customer_id"]
    out["customer_id"] = ids.where(ids.isna(), ids.astype(str).str.lstrip("0").replace("", "0"))  # "00001" -> "1"
    is_dt = pd.api.types.is_datetime64_any_dtype(df["date"])
    t = parse_times(df["date"], "date", source, time_format=None if is_dt else "%Y%m%d")
    out["date"] = t.astype("datetime64[ns]")
    out["number_of_cds"] = parse_numbers(df["number_of_cds"], "number_of_cds", source, allow_negative=False)
    out["dollar_value"] = parse_numbers(df["dollar_value"], "dollar_value", source, allow_negative=False)
    return out


def build_snapshots(tx: pd.DataFrame, cutoffs: Sequence = DEFAULT_CUTOFFS, source: str = "cdnow") -> Snapshots:
    snaps = snapshots_from_transactions(tx, "customer_id", "date", "dollar_value", cutoffs,
                                        quantity_col="number_of_cds", allow_negative_amounts=False, source=source)
    keep = set(snaps.bgnbd_features.values()) | set(snaps.last_period_features.values()) | set(snaps.slice_features)
    constant = [c for c in snaps.numeric_features + snaps.categorical_features
                if c not in keep and snaps.frame[c].nunique(dropna=False) <= 1]
    snaps = snaps.drop_features(constant)
    # the acquisition month (Jan/Feb/Mar 1997) is CDNOW's natural slice
    if "first_order_month" in snaps.categorical_features:
        snaps = dataclasses.replace(snaps, slice_features=["first_order_month"] + snaps.slice_features)
    return snaps


def build(out: Union[str, Path], input_path: Optional[Union[str, Path]] = None, cutoffs: Sequence = DEFAULT_CUTOFFS,
          split_rule: str = "customer", seed: int = 0) -> mf.Manifest:
    """Build the dataset folder `out` (atomically); returns its manifest."""
    mf.check_output_dir(out)
    src = str(input_path or default_input())
    tx = load_transactions(input_path)
    snaps = build_snapshots(tx, cutoffs, source=src)
    frame = snaps.frame.copy()
    frame["split"] = assign_splits(frame, split_rule, seed)
    info = {"builder": "mean-tf data cdnow", "input": src, "cutoffs": snaps.cutoffs, "split_rule": split_rule,
            "split_seed": seed, "source": ATTRIBUTION,
            "label_window": "[cutoff, cutoff + H days), clipped at 0, non-decreasing in H"}
    m = mf.write_dataset(frame, out, snaps.manifest(NAME, split_rule, seed),
                         extra_files={"build_info.json": json.dumps(info, indent=2) + "\n"})
    return m
