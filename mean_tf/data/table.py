"""A user's own feature table -> dataset folder (`mean-tf data table`): a CSV or Parquet file with one row
per (customer_id, cutoff), the features and the labels `cltv_H` (money, >= 0, non-decreasing in H).

Column roles: `customer_id` and `cutoff` (a date) are the ids; the labels are `labels` (default: every
`cltv_<days>` column, ordered by horizon); an optional `split` column (train/eval/test) is used as is,
otherwise rows are split by `split_rule`. Every other column is a feature: categorical if named in
`categorical`, else numeric, so a stray text value in a numeric column is an error naming its row.
With an explicit `numeric` list, columns in no list are ignored with a warning (MeanTFWarning), as are
`cltv_*` columns that are not labels (a later label must never become a feature).
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import pandas as pd

from mean_tf.data import manifest as mf
from mean_tf.data.splits import assign_splits
from mean_tf.data.transactions import _row, parse_times
from mean_tf.errors import MeanTFError, MeanTFWarning

LABEL_PATTERN = re.compile(r"^cltv_(\d+)$")
SPLIT_COLUMN = "split"


def load_table(path: Union[str, Path], what: str = "feature table") -> pd.DataFrame:
    """The file as a DataFrame (.csv, or .parquet/.pq); CSV rows are indexed by their line number."""
    p = Path(path)
    if not p.is_file():
        raise MeanTFError(f"{what} {p} not found")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = mf.read_parquet(p)
        else:
            df = pd.read_csv(p)
            df.index = pd.RangeIndex(len(df)) + 2  # line 1 is the header
            df.index.name = "line"
    except pd.errors.EmptyDataError:
        raise MeanTFError(f"{p}: the file is empty") from None
    except Exception as e:  # pandas and pyarrow raise many types for a malformed file
        reason = str(e).splitlines()[0] if str(e) else ""
        raise MeanTFError(f"{p}: cannot read ({type(e).__name__}: {reason})") from None
    if len(df) == 0:
        raise MeanTFError(f"{p}: the table has no rows")
    return df


def _label_columns(df: pd.DataFrame, labels: Sequence[str], source: str) -> list:
    if labels:
        return list(labels)
    found = sorted((int(m.group(1)), c) for c in df.columns if (m := LABEL_PATTERN.match(str(c))))
    if not found:
        raise MeanTFError(f"{source}: no label column (cltv_<days>, e.g. cltv_365); name them with --labels")
    return [c for _, c in found]


def build(out: Union[str, Path], input_path: Union[str, Path], *, labels: Sequence[str] = (),
          categorical: Sequence[str] = (), numeric: Optional[Sequence[str]] = None, money: Sequence[str] = (),
          split_rule: str = "customer", seed: int = 0, name: Optional[str] = None) -> mf.Manifest:
    """Build the dataset folder `out` (atomically) from the feature table `input_path`; returns its manifest."""
    mf.check_output_dir(out)
    source = str(input_path)
    df = load_table(input_path)
    labels = _label_columns(df, labels, source)
    ids = list(mf.ID_COLUMNS)
    reserved = set(ids) | set(labels) | {SPLIT_COLUMN}
    if numeric is None:
        numeric = [c for c in df.columns
                   if c not in reserved and c not in categorical and not LABEL_PATTERN.match(str(c))]
    listed = set(numeric) | set(categorical) | reserved
    missing = [c for c in [*ids, *labels, *numeric, *categorical, *money] if c not in df.columns]
    if missing:
        raise MeanTFError(f"{source}: missing column(s) {missing} (has {list(df.columns)})")
    bad_money = [c for c in money if c not in numeric]
    if bad_money:
        raise MeanTFError(f"{source}: money column(s) {bad_money} must be numeric features")
    extra = [c for c in df.columns if c not in listed]
    if extra:
        warnings.warn(f"{source}: ignoring unexpected column(s) {extra} (not an id, label, split or listed feature)",
                      MeanTFWarning, stacklevel=2)
    if not numeric and not categorical:
        raise MeanTFError(f"{source}: no feature columns besides {sorted(reserved & set(df.columns))}")

    frame = df[[c for c in df.columns if c in listed]].copy()
    frame["customer_id"] = _ids(df["customer_id"], source)
    frame["cutoff"] = pd.to_datetime(parse_times(df["cutoff"], "cutoff", source)).strftime("%Y-%m-%d")
    for c in categorical:
        frame[c] = df[c].where(df[c].isna(), df[c].astype(str))
    if SPLIT_COLUMN not in frame.columns:
        frame[SPLIT_COLUMN] = assign_splits(frame, split_rule, seed)
    manifest = mf.Manifest(name=name or Path(input_path).stem, splits={}, split_rule=split_rule, split_seed=int(seed),
                           numeric_features=list(numeric), money_features=list(money),
                           categorical_features=list(categorical), slice_features=list(categorical), labels=labels)
    info = {"builder": "mean-tf data table", "input": source, "split_rule": split_rule, "split_seed": seed}
    return mf.write_dataset(frame, out, manifest, source=source,
                            extra_files={"build_info.json": json.dumps(info, indent=2) + "\n"})


def _ids(series: pd.Series, source: str) -> pd.Series:
    bad = series.isna().to_numpy()
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise MeanTFError(f"{source}: column 'customer_id' is missing at {_row(series.to_frame(), i)}")
    return series.astype(str)
