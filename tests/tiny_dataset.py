"""A tiny synthetic dataset folder (manifest + gzipped TFRecords) for the transform, training and trainer tests."""
import atexit
import functools
import shutil
import tempfile

import numpy as np
import pandas as pd

from mean_tf.data.manifest import Manifest, write_dataset

NUMERIC = ["recency_days", "frequency", "net_spend", "spend_last_30d"]
MONEY = ["net_spend", "spend_last_30d"]
LABELS = ["cltv_30", "cltv_90", "cltv_180", "cltv_365"]


def tiny_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers whose future spend grows with past spend; about half spend nothing in 30 days."""
    rng = np.random.default_rng(seed)
    spend = rng.lognormal(4.0, 1.0, rows) * (rng.random(rows) < 0.8)
    buys = rng.random(rows) < 0.3 + 0.5 * (spend > np.median(spend))
    cltv_30 = np.where(buys, spend * rng.lognormal(-1.0, 0.5, rows), 0.0)
    later = [np.where(rng.random(rows) < 0.3, spend * rng.lognormal(-1.0, 0.5, rows), 0.0) for _ in range(3)]
    cltv_90, cltv_180, cltv_365 = np.cumsum([cltv_30] + later, axis=0)[1:]
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(rows)],
        "cutoff": "2011-06-01",
        "recency_days": rng.integers(0, 365, rows).astype(float),
        "frequency": rng.poisson(3.0, rows).astype(float),
        "net_spend": spend,
        "spend_last_30d": spend * rng.random(rows) * 0.2,
        "country": rng.choice(["United Kingdom", "France", "Germany"], rows, p=[0.7, 0.2, 0.1]),
        "cltv_30": cltv_30,
        "cltv_90": cltv_90,
        "cltv_180": cltv_180,
        "cltv_365": cltv_365,
        "split": np.array(["train"] * 7 + ["eval"] * 2 + ["test"])[np.arange(rows) % 10],
    })


def write_tiny_dataset(folder, rows: int = 300, seed: int = 0) -> Manifest:
    return write_dataset(tiny_frame(rows, seed), folder, Manifest(
        name="tiny", splits={}, numeric_features=NUMERIC, money_features=MONEY, categorical_features=["country"],
        slice_features=["country"], labels=LABELS, last_period_features={"cltv_30": "spend_last_30d"}))


@functools.lru_cache(maxsize=None)
def materialized_tiny():
    """(manifest, Materialized) of the tiny dataset with the default Transform settings (label_scaling
    "scale", n = 5, all four labels), made once per test process and shared by the test modules."""
    from mean_tf.transform import preprocessing
    from mean_tf.config import MEANConfig

    root = tempfile.mkdtemp(prefix="mean_tf_tiny_")
    atexit.register(shutil.rmtree, root, True)
    manifest = write_tiny_dataset(f"{root}/data")
    return manifest, preprocessing.materialize(manifest, MEANConfig(), f"{root}/transformed")
