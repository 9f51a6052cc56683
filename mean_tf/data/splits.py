"""Train/eval/test assignment of snapshot rows.

- `customer` (default): customers are ranked by a seeded hash of their id and cut 7:1:2, so every
  snapshot of a customer lands in one split (no customer straddles two splits), the customer counts
  are exactly 70/10/20 % (rounded), and the result depends only on the set of customers and the seed.
- `time` (out-of-time): the rows at the last cutoff are the test split; the rows at earlier cutoffs are
  split 7:1 into train/eval by customer as above. Test customers also appear in train (at earlier
  cutoffs) by design: the split measures the model's quality in a later period. With 365-day labels
  and monthly cutoffs, train label windows overlap the test period; that is inherent to the data.
"""
from __future__ import annotations

import hashlib
from typing import Sequence, Tuple

import numpy as np
import pandas as pd

from mean_tf.errors import MeanTFError

FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_NAMES = ("train", "eval", "test")


def customer_split(customers: Sequence, seed: int = 0, fractions: Tuple[float, ...] = FRACTIONS,
                   names: Tuple[str, ...] = SPLIT_NAMES) -> np.ndarray:
    """Split name per element of `customers` (ids, repeated ids allowed): all rows of a customer share
    one split; distinct customers are cut by `fractions` after a seeded-hash ranking."""
    if len(fractions) != len(names) or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise MeanTFError(f"split fractions {fractions} must be {len(names)} non-negative numbers summing to 1")
    ids = np.asarray(pd.Series(customers).astype(str).to_numpy(dtype=object))
    uniq, inv = np.unique(ids, return_inverse=True)
    salt = f"{int(seed)}:".encode()
    h = np.fromiter((int.from_bytes(hashlib.blake2b(salt + u.encode("utf-8"), digest_size=8).digest(), "little")
                     for u in uniq), dtype=np.uint64, count=len(uniq))
    order = np.lexsort((np.arange(len(uniq)), h))  # ties (never in practice) broken by id order
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    bounds = np.round(np.cumsum(fractions) * len(uniq)).astype(np.int64)
    which = np.searchsorted(bounds, rank, side="right")
    which = np.minimum(which, len(names) - 1)
    return np.asarray(names, dtype=object)[which][inv]


def assign_splits(frame: pd.DataFrame, rule: str = "customer", seed: int = 0, customer_col: str = "customer_id",
                  cutoff_col: str = "cutoff") -> np.ndarray:
    """Split name per row of a snapshot table, by `rule` ("customer" or "time"; see the module doc)."""
    if rule == "customer":
        return customer_split(frame[customer_col], seed)
    if rule == "time":
        cutoffs = sorted(frame[cutoff_col].unique())
        if len(cutoffs) < 2:
            raise MeanTFError(f"the out-of-time split needs at least 2 cutoffs (have {cutoffs}); "
                              f"give more cutoffs or use --split customer")
        last = frame[cutoff_col].to_numpy() == cutoffs[-1]
        out = np.empty(len(frame), dtype=object)
        out[last] = "test"
        out[~last] = customer_split(frame.loc[~last, customer_col], seed, (0.875, 0.125, 0.0))
        return out
    raise MeanTFError(f"unknown split rule {rule!r} (use 'customer' or 'time')")


def hashed_split(keys: np.ndarray, seed: int = 0, fractions: Tuple[float, ...] = FRACTIONS,
                 names: Tuple[str, ...] = SPLIT_NAMES) -> np.ndarray:
    """Split name per non-negative integer key (e.g. a row's line number), drawn independently for each key
    from a seeded hash (splitmix64) of (seed, key): no ranking of all keys, so a file can be split as it
    streams by; the shares approach `fractions` as the keys grow in number."""
    z = np.asarray(keys, dtype=np.uint64) + np.uint64((int(seed) * 0x9E3779B97F4A7C15 + 1) % 2**64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    which = np.minimum(np.searchsorted(np.cumsum(fractions), u, side="right"), len(names) - 1)
    return np.asarray(names, dtype=object)[which]
