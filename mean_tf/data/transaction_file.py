"""A user's transaction log (CSV or Parquet) -> a training or a scoring dataset (`mean-tf data transactions`).

Training: `cutoffs` give the snapshot dates (features before each, labels after: every label window
must end within the data). Scoring: `score_date` gives the one date to score at, "end" (`DATA_END`) meaning the
day after the last transaction (today, for a log that is up to date); the dataset has the same
features and no labels (split "score", for `mean-tf score`). Both go through
`mean_tf.data.transactions.snapshots_from_transactions`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from mean_tf.data.manifest import Manifest
from mean_tf.data.table import load_table
from mean_tf.data.transactions import snapshots_from_transactions
from mean_tf.errors import MeanTFError


def build(out: str, input_path: str, customer: str, time: str, amount: str, *,
          cutoffs: Sequence[str] = (), score_date: Optional[str] = None, quantity: Optional[str] = None,
          product: Optional[str] = None, order: Optional[str] = None, categorical: Sequence[str] = (),
          time_format: Optional[str] = None, split_rule: str = "customer", seed: int = 0,
          name: Optional[str] = None) -> Manifest:
    """Write the dataset folder `out` from the log at `input_path` (module docstring); returns its manifest."""
    if bool(cutoffs) == bool(score_date):
        raise MeanTFError("give either --cutoffs (a training dataset) or --score-date (a scoring dataset)")
    df = load_table(input_path, what="transaction log")
    source = Path(input_path).name
    snapshots = snapshots_from_transactions(
        df, customer, time, amount, [score_date] if score_date else list(cutoffs), quantity_col=quantity,
        product_col=product, order_col=order, categorical_cols=categorical, time_format=time_format,
        source=source, labels=not score_date)
    name = name or Path(input_path).stem
    if score_date:
        return snapshots.write_scoring(out, name)
    return snapshots.write(out, name, split_rule=split_rule, seed=seed)
