"""Online Retail II (UCI 502, CC BY 4.0): the bundled line-level purchases -> customer x cutoff snapshots.

Input: `data/online_retail_ii_lines.parquet` (see data/ONLINE_RETAIL_II.md): customer_id, invoice_date,
description, quantity, unit_price, country. Line amount = quantity x unit_price; a negative quantity is
a return. Orders are the (customer, invoice timestamp) groups; `description` stands in for the product
id; `country` (the value on the customer's last line before the cutoff) is a categorical feature and a
slice. Default cutoffs: the first day of each month from 2010-01-01 to 2010-12-01; each leaves a full
365-day label window before the data end (2011-12-09).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from mean_tf.data import manifest as mf
from mean_tf.data.splits import assign_splits
from mean_tf.data.transactions import (Snapshots, monthly_cutoffs, parse_numbers, require_columns,
                                      snapshots_from_transactions)
from mean_tf.errors import MeanTFError, MeanTFWarning
from mean_tf.runtime.files import atomic_file

NAME = "online_retail_ii"
COLUMNS = ("customer_id", "invoice_date", "description", "quantity", "unit_price", "country")
DEFAULT_CUTOFFS = tuple(str(c.date()) for c in monthly_cutoffs("2010-01-01", "2010-12-01"))
ATTRIBUTION = ("Online Retail II, UCI Machine Learning Repository dataset 502, Daqing Chen (2012), "
               "DOI 10.24432/C5CG6D, CC BY 4.0")


EXAMPLE_CUSTOMERS = 400  # `mean-tf data example-log` defaults: what data/example_transactions.csv holds


def example_log_path() -> Path:
    """The shipped example transaction log (<repo>/data/example_transactions.csv, `write_example_log`)."""
    return default_input().parent / "example_transactions.csv"


def example_log(customers: int = EXAMPLE_CUSTOMERS, seed: int = 0, input_path=None) -> pd.DataFrame:
    """A small transaction log from the bundled data: one row per order (a customer's invoice timestamp)
    of `customers` customers drawn at random: customer_id, time, amount (net, GBP), quantity, country."""
    lines = load_lines(input_path)
    every = np.sort(lines["customer_id"].dropna().unique())
    if not 0 < customers <= len(every):
        raise MeanTFError(f"--customers must be in 1..{len(every)}, got {customers}")
    chosen = np.random.default_rng(seed).choice(every, customers, replace=False)
    picked = lines[lines["customer_id"].isin(chosen)].astype({"country": str})
    orders = (picked.groupby(["customer_id", "invoice_date"], sort=True, observed=True)
              .agg(amount=("amount", "sum"), quantity=("quantity", "sum"), country=("country", "last"))
              .reset_index().rename(columns={"invoice_date": "time"}))
    orders["amount"] = orders["amount"].round(2)
    orders["customer_id"] = orders["customer_id"].astype(int).astype(str)
    return orders[["customer_id", "time", "amount", "quantity", "country"]]


def write_example_log(out: Union[str, Path], customers: int = EXAMPLE_CUSTOMERS, seed: int = 0,
                      input_path=None) -> int:
    """Write `example_log` as CSV (atomically); returns the number of orders."""
    orders = example_log(customers, seed, input_path)
    with atomic_file(str(out)) as tmp:
        orders.to_csv(tmp, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return len(orders)


def default_input() -> Path:
    """The bundled parquet file (repository checkout: <repo>/data/online_retail_ii_lines.parquet)."""
    return Path(__file__).resolve().parents[2] / "data" / "online_retail_ii_lines.parquet"


def load_lines(path: Optional[Union[str, Path]] = None) -> pd.DataFrame:
    """The line table with an `amount` column; MeanTFError for a missing file, column or bad value."""
    p = Path(path) if path else default_input()
    if not p.is_file():
        raise MeanTFError(f"Online Retail II input {p} not found (pass --input PATH to the parquet file)")
    if p.stat().st_size == 0:
        raise MeanTFError(f"{p}: the file is empty")
    try:
        df = mf.read_parquet(p)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise MeanTFError(f"{p}: cannot read as parquet ({type(e).__name__}: {e})") from None
    return prepare_lines(df, source=str(p))


def prepare_lines(df: pd.DataFrame, source: str = "online retail lines") -> pd.DataFrame:
    require_columns(df, COLUMNS, source)
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        warnings.warn(f"{source}: ignoring unexpected column(s) {extra} (uses {list(COLUMNS)})", MeanTFWarning,
                      stacklevel=2)
    qty = parse_numbers(df["quantity"], "quantity", source)
    price = parse_numbers(df["unit_price"], "unit_price", source, allow_negative=False)
    df = df.copy()
    # float32 prices (e.g. 6.95 -> 6.9499998) rounded back to 1/10000 so that spends sum to clean pence.
    df["amount"] = np.round(qty * np.round(price, 4), 4)
    return df


def build_snapshots(lines: pd.DataFrame, cutoffs: Sequence = DEFAULT_CUTOFFS, source: str = "online retail lines",
                    labels: bool = True) -> Snapshots:
    """The snapshot table; `labels=False`: the same features at any cutoff up to the data end, no labels."""
    return snapshots_from_transactions(
        lines, "customer_id", "invoice_date", "amount", cutoffs,
        quantity_col="quantity", product_col="description", categorical_cols=("country",), source=source,
        labels=labels,
    )


def build(out: Union[str, Path], input_path: Optional[Union[str, Path]] = None, cutoffs: Sequence = DEFAULT_CUTOFFS,
          split_rule: str = "customer", seed: int = 0) -> mf.Manifest:
    """Build the dataset folder `out` (atomically); returns its manifest."""
    mf.check_output_dir(out)
    lines = load_lines(input_path)
    snaps = build_snapshots(lines, cutoffs, source=str(input_path or default_input()))
    frame = snaps.frame.copy()
    frame["split"] = assign_splits(frame, split_rule, seed)
    info = {"builder": "mean-tf data online-retail", "input": str(input_path or default_input()), "cutoffs": snaps.cutoffs,
            "split_rule": split_rule, "split_seed": seed, "source": ATTRIBUTION,
            "label_window": "[cutoff, cutoff + H days), net of returns, clipped at 0, non-decreasing in H"}
    m = mf.write_dataset(frame, out, snaps.manifest(NAME, split_rule, seed),
                         extra_files={"build_info.json": json.dumps(info, indent=2) + "\n"})
    return m
