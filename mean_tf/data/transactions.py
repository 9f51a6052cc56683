"""Customer x cutoff snapshot tables from a transaction log: `snapshots_from_transactions`.

One row per (customer, cutoff) for every customer with at least one transaction strictly before the
cutoff. Features use only transactions strictly before the cutoff; the labels `cltv_H` are the
customer's net spend in the H days that start at the cutoff, [cutoff, cutoff + H days), clipped at 0
and made non-decreasing in H (returns in a later window cannot pull a longer horizon below a shorter
one): cltv_H = max(0, max over horizons h <= H of net spend in [cutoff, cutoff + h)). Cutoffs are
dates (midnight), so with daily data the label window is the days cutoff .. cutoff + H - 1 and no
day falls between the feature and the label windows.

The Online Retail II and CDNOW builders use this function; so can a user's own log (see README).
Everything is vectorised over customers (NumPy reduceat/bincount on an order-level table); the only
Python loop is over cutoffs.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from mean_tf.contract import HORIZONS
from mean_tf.data.manifest import BGNBD_KEYS, ID_COLUMNS, Manifest
from mean_tf.errors import MeanTFError

WINDOWS = (30, 90, 180, 365)  # look-back windows of the spend_last_* / orders_last_* features
DAY_NS = 86_400 * 10**9

# One line per feature; the order here is the order in the manifest.
FEATURE_DOCS: Dict[str, str] = {
    "recency_days": "days from the last purchase (or, with none, the last transaction) to the cutoff",
    "tenure_days": "days from the first transaction to the cutoff (for a cohort: the first purchase date)",
    "active_span_days": "days between the first and the last purchase",
    "mean_days_between_orders": "active_span_days / (n_orders - 1); tenure_days when fewer than 2 orders",
    "n_orders": "purchase orders (orders with a positive gross amount) before the cutoff",
    "n_active_days": "distinct calendar days with a purchase",
    "n_active_months": "distinct calendar months with a purchase",
    "order_rate_30d": "n_orders per 30 days of tenure (tenure floored at 1 day)",
    "net_spend": "net spend before the cutoff: purchases minus returns",
    "gross_spend": "purchases before the cutoff, returns not subtracted",
    "avg_order_value": "gross_spend / n_orders (0 without orders)",
    "max_order_value": "largest purchase order (gross)",
    "std_order_value": "standard deviation of purchase-order values (population; 0 with one order)",
    "first_order_value": "gross value of the first purchase order",
    "last_order_value": "gross value of the last purchase order",
    "n_returns": "orders containing a return (a negative amount)",
    "return_amount": "returned amount, as a positive number",
    "return_share": "return_amount / gross_spend, capped at 1",
    "spend_last_30d": "net spend in the 30 days before the cutoff",
    "spend_last_90d": "net spend in the 90 days before the cutoff",
    "spend_last_180d": "net spend in the 180 days before the cutoff",
    "spend_last_365d": "net spend in the 365 days before the cutoff",
    "orders_last_30d": "purchase orders in the 30 days before the cutoff",
    "orders_last_90d": "purchase orders in the 90 days before the cutoff",
    "orders_last_180d": "purchase orders in the 180 days before the cutoff",
    "orders_last_365d": "purchase orders in the 365 days before the cutoff",
    "spend_prev_90d": "net spend in the 90 days before those: [cutoff - 180d, cutoff - 90d)",
    "orders_prev_90d": "purchase orders in [cutoff - 180d, cutoff - 90d)",
    "spend_yago_90d": "net spend in the 90 days that started one year before the cutoff: [cutoff - 365d, cutoff - 275d)",
    "weekend_order_share": "share of purchase orders placed on a Saturday or Sunday",
    "bg_frequency": "lifetimes frequency: distinct transaction days - 1 (daily periods, all transactions)",
    "bg_recency": "lifetimes recency: days from the first to the last transaction day",
    "bg_T": "lifetimes T: days from the first transaction day to the day before the cutoff",
    "bg_monetary_value": "lifetimes monetary_value: mean net spend of the repeat transaction days (0 if none)",
    "units_bought": "units purchased (sum of positive quantities)",
    "units_returned": "units returned (minus the sum of negative quantities)",
    "avg_unit_price": "gross_spend / units_bought (0 without units)",
    "avg_units_per_order": "units_bought / n_orders",
    "n_distinct_products": "distinct products ever bought before the cutoff",
    "avg_lines_per_order": "lines (products) per purchase order",
    "cutoff_month": "calendar month of the cutoff, '01'..'12' (seasonality)",
    "first_order_month": "calendar month of the first transaction, '01'..'12' (acquisition cohort)",
    "active_90d": "'1' if the customer made a purchase in the 90 days before the cutoff, else '0' (slice)",
}
MONEY_FEATURES = (
    "net_spend", "gross_spend", "avg_order_value", "max_order_value", "std_order_value", "first_order_value",
    "last_order_value", "return_amount", "spend_last_30d", "spend_last_90d", "spend_last_180d", "spend_last_365d",
    "spend_prev_90d", "spend_yago_90d", "bg_monetary_value", "avg_unit_price",
    # Heavy-tailed counts (wholesalers buy 1000x the median): log1p before the z-score, like money.
    "n_orders", "n_active_days", "n_returns", "orders_last_30d", "orders_last_90d", "orders_last_180d",
    "orders_last_365d", "orders_prev_90d", "bg_frequency", "units_bought", "units_returned", "avg_units_per_order",
    "n_distinct_products", "avg_lines_per_order",
)
CATEGORICAL_FEATURES = ("cutoff_month", "first_order_month", "active_90d")
BGNBD_FEATURES = {"frequency": "bg_frequency", "recency": "bg_recency", "T": "bg_T", "monetary_value": "bg_monetary_value"}
LAST_PERIOD_FEATURES = {f"cltv_{h}": f"spend_last_{h}d" for h in HORIZONS}



def require_columns(df: pd.DataFrame, columns: Sequence[str], source: str, what: str = "table") -> None:
    """MeanTFError naming the missing columns of `df`, or saying that it has no rows."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MeanTFError(f"{source}: missing column(s) {missing} (has {list(df.columns)})")
    if len(df) == 0:
        raise MeanTFError(f"{source}: the {what} is empty")

@dataclasses.dataclass
class Snapshots:
    """A snapshot table and its column roles. `frame` has the id columns (customer_id, cutoff as str),
    the features, and the labels."""

    frame: pd.DataFrame
    numeric_features: List[str]
    money_features: List[str]
    categorical_features: List[str]
    slice_features: List[str]
    labels: List[str]
    last_period_features: Dict[str, str]
    bgnbd_features: Dict[str, str]
    feature_docs: Dict[str, str]
    cutoffs: List[str]
    id_columns: List[str] = dataclasses.field(default_factory=lambda: list(ID_COLUMNS))

    def manifest(self, name: str, split_rule: str = "customer", split_seed: int = 0) -> Manifest:
        """A manifest for this table (splits, row counts and zero shares are filled in by write_dataset)."""
        return Manifest(
            name=name, splits={}, split_rule=split_rule, split_seed=int(split_seed), id_columns=list(self.id_columns),
            numeric_features=list(self.numeric_features), money_features=list(self.money_features),
            categorical_features=list(self.categorical_features), slice_features=list(self.slice_features),
            labels=list(self.labels), oracle_columns={}, last_period_features=dict(self.last_period_features),
            bgnbd_features=dict(self.bgnbd_features), feature_docs=dict(self.feature_docs),
        )

    def write(self, out, name: str, split_rule: str = "customer", seed: int = 0, compresslevel: int = 6) -> Manifest:
        """Split the rows (`split_rule` "customer" 7:1:2 or "time", see mean_tf.data.splits) and write the
        dataset folder `out` (gzipped TFRecords + manifest.json), atomically. Returns the manifest."""
        from mean_tf.data.manifest import write_dataset
        from mean_tf.data.splits import assign_splits

        frame = self.frame.assign(split=assign_splits(self.frame, split_rule, seed))
        return write_dataset(frame, out, self.manifest(name, split_rule, seed), compresslevel=compresslevel)

    def write_scoring(self, out, name: str, compresslevel: int = 6) -> Manifest:
        """Write a label-free table (`labels=False`) as a scoring dataset (split "score"), atomically."""
        from mean_tf.data.manifest import write_scoring_dataset

        return write_scoring_dataset(self.frame, out, self.manifest(name, split_rule="none"),
                                     compresslevel=compresslevel, source=name)

    def drop_features(self, names: Sequence[str]) -> "Snapshots":
        """The same table without some features (kept out of every list; the columns are dropped)."""
        names = set(names)
        keep = lambda xs: [x for x in xs if x not in names]  # noqa: E731
        return dataclasses.replace(
            self, frame=self.frame.drop(columns=[c for c in names if c in self.frame.columns]),
            numeric_features=keep(self.numeric_features), money_features=keep(self.money_features),
            categorical_features=keep(self.categorical_features), slice_features=keep(self.slice_features),
            last_period_features={k: v for k, v in self.last_period_features.items() if v not in names},
            bgnbd_features=self.bgnbd_features if not (set(self.bgnbd_features.values()) & names) else {},
            feature_docs={k: v for k, v in self.feature_docs.items() if k not in names},
        )


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _row(df: pd.DataFrame, pos: int) -> str:
    """'row <index label>' (or 'line <n>' for tables read from text files with a 'line' index)."""
    label = df.index[pos]
    label = label.item() if hasattr(label, "item") else label
    return f"{'line' if df.index.name == 'line' else 'row'} {label!r}"


def parse_times(series: pd.Series, col: str, source: str, time_format: Optional[str] = None) -> np.ndarray:
    """Datetimes as int64 nanoseconds (tz-aware values converted to naive UTC); MeanTFError names the
    first missing or unparseable value."""
    s = series
    if pd.api.types.is_datetime64_any_dtype(s) and time_format is None:
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert(None)
        parsed = s
    else:
        if pd.api.types.is_numeric_dtype(s) and time_format is None:
            raise MeanTFError(f"{source}: column {col!r} is numeric ({s.dtype}), not a date; "
                              f"convert it (e.g. pd.to_datetime(df[{col!r}], format='%Y%m%d')) or give time_format")
        try:
            parsed = pd.to_datetime(s.astype(str) if time_format else s, format=time_format, errors="coerce")
        except (TypeError, ValueError) as e:
            raise MeanTFError(f"{source}: column {col!r} cannot be read as dates ({e})") from None
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = series.iloc[i]
        what = "is missing" if pd.isna(raw) else f"has an unparseable date {raw!r}"
        raise MeanTFError(f"{source}: column {col!r} {what} at {_row(series.to_frame(), i)}")
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def parse_numbers(series: pd.Series, col: str, source: str, allow_negative: bool = True) -> np.ndarray:
    """Finite float64 values; MeanTFError names the first non-numeric, NaN, infinite or (if not
    allowed) negative value."""
    v = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = series.iloc[i]
        what = "is missing (NaN)" if pd.isna(raw) else f"has a non-numeric or infinite value {raw!r}"
        raise MeanTFError(f"{source}: column {col!r} {what} at {_row(series.to_frame(), i)}")
    if not allow_negative and (v < 0).any():
        i = int(np.flatnonzero(v < 0)[0])
        raise MeanTFError(f"{source}: column {col!r} has a negative value {v[i]!r} at {_row(series.to_frame(), i)}")
    return v


def parse_ids(series: pd.Series, col: str, source: str):
    """Ids factorized: (int codes, sorted distinct ids as str; integral floats written without '.0');
    MeanTFError on a missing id."""
    bad = series.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MeanTFError(f"{source}: column {col!r} is missing at {_row(series.to_frame(), i)}")
    s = series
    if pd.api.types.is_float_dtype(s) and np.all(np.mod(s.to_numpy(), 1) == 0):
        s = s.astype(np.int64)
    return _factorize_str(s)


def _factorize_str(series: pd.Series):
    """(codes, uniques) with uniques the sorted distinct values as str (values equal as str merged)."""
    codes, uniques = pd.factorize(series.to_numpy() if not isinstance(series.dtype, pd.CategoricalDtype) else series)
    names = np.asarray(pd.Index(uniques).astype(str), dtype=object)
    u, inv = np.unique(names.astype(str), return_inverse=True)
    return inv[codes], u.astype(object)


def _starts(*keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal key tuples in arrays sorted by those keys."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


DATA_END = "end"  # a cutoff: the data end (by default the day after the last transaction)


def parse_cutoffs(cutoffs: Sequence[Union[str, pd.Timestamp]]) -> List[pd.Timestamp]:
    """Sorted distinct cutoff dates; MeanTFError for an unparseable one or one with a time of day."""
    if isinstance(cutoffs, (str, pd.Timestamp)):
        cutoffs = [cutoffs]
    out = []
    for c in cutoffs:
        try:
            ts = pd.Timestamp(c)
        except (TypeError, ValueError):
            raise MeanTFError(f"cutoff {c!r} is not a date (use YYYY-MM-DD)") from None
        if ts is pd.NaT or pd.isna(ts):
            raise MeanTFError(f"cutoff {c!r} is not a date (use YYYY-MM-DD)")
        if ts.tzinfo is not None:
            ts = ts.tz_convert(None)
        if ts != ts.normalize():
            raise MeanTFError(f"cutoff {c!r} has a time of day; cutoffs are dates (midnight)")
        out.append(ts)
    if not out:
        raise MeanTFError("no cutoffs given")
    return sorted(set(out))


def monthly_cutoffs(first: str, last: str) -> List[pd.Timestamp]:
    """First day of each month from `first` to `last` (inclusive)."""
    return list(pd.date_range(first, last, freq="MS"))


# ----------------------------------------------------------------------------------------------
# The snapshot table
# ----------------------------------------------------------------------------------------------


def snapshots_from_transactions(
    df: pd.DataFrame,
    customer_col: str,
    time_col: str,
    amount_col: str,
    cutoffs: Sequence[Union[str, pd.Timestamp]],
    *,
    quantity_col: Optional[str] = None,
    product_col: Optional[str] = None,
    order_col: Optional[str] = None,
    categorical_cols: Sequence[str] = (),
    horizons: Sequence[int] = HORIZONS,
    data_end: Optional[Union[str, pd.Timestamp]] = None,
    allow_negative_amounts: bool = True,
    time_format: Optional[str] = None,
    source: str = "transactions",
    labels: bool = True,
) -> Snapshots:
    """Build the customer x cutoff snapshot table of a transaction log (one row per line or transaction).

    Required columns: `customer_col` (any id), `time_col` (datetime, or strings pandas parses, or with
    `time_format`), `amount_col` (money; negative = a return, unless `allow_negative_amounts=False`).
    Optional: `quantity_col` (units; adds unit/price features), `product_col` (adds distinct products and
    basket breadth), `order_col` (groups lines into orders; default: one order per customer and
    timestamp), `categorical_cols` (customer attributes such as country: the value on the customer's
    last transaction before the cutoff becomes a categorical feature and a slice).

    `data_end` is the first instant not covered by the data (default: the day after the last
    transaction); every cutoff + max(horizons) days must be <= data_end so that labels are complete.
    With `labels=False` (scoring today's customers) the table has the same features and no labels, and
    any cutoff up to data_end is allowed: e.g. `DATA_END` ("end"), data_end itself. Training and scoring
    tables come from this one function, so their features cannot differ.
    Bad input raises MeanTFError naming the column and row.
    """
    if not isinstance(df, pd.DataFrame):
        raise MeanTFError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    needed = [customer_col, time_col, amount_col] + [c for c in (quantity_col, product_col, order_col) if c]
    needed += list(categorical_cols)
    require_columns(df, needed, source, "transaction table")
    horizons = tuple(sorted(int(h) for h in horizons))
    if not horizons or horizons[0] <= 0:
        raise MeanTFError(f"horizons must be positive day counts, got {horizons}")
    label_names = [f"cltv_{h}" for h in horizons] if labels else []

    cust = parse_ids(df[customer_col], customer_col, source)  # (codes, sorted str uniques)
    t = parse_times(df[time_col], time_col, source, time_format)
    amount = parse_numbers(df[amount_col], amount_col, source, allow_negative=allow_negative_amounts)
    qty = parse_numbers(df[quantity_col], quantity_col, source) if quantity_col else None
    cats = {}
    for c in categorical_cols:
        s = df[c]
        bad = s.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MeanTFError(f"{source}: column {c!r} is missing at {_row(df, i)}")
        cats[c] = _factorize_str(s)

    t_min, t_max = int(t.min()), int(t.max())
    end = (pd.Timestamp(t_max).normalize() + pd.Timedelta(days=1)) if data_end is None else pd.Timestamp(data_end)
    cutoffs = [cutoffs] if isinstance(cutoffs, (str, pd.Timestamp)) else list(cutoffs)
    cuts = parse_cutoffs([end if c == DATA_END else c for c in cutoffs])
    first_day = pd.Timestamp(t_min)
    for c in cuts:
        if c.value <= t_min:
            raise MeanTFError(f"cutoff {c.date()} is outside the data: no transaction before it "
                              f"(the data start on {first_day})")
        if not labels and c > end:
            raise MeanTFError(f"cutoff {c.date()} is outside the data: it is after the data end ({end.date()}); "
                              f"features at a date need the transactions up to it")
        if labels and c + pd.Timedelta(days=horizons[-1]) > end:
            raise MeanTFError(f"cutoff {c.date()} is outside the data: its {horizons[-1]}-day label window ends "
                              f"{(c + pd.Timedelta(days=horizons[-1])).date()}, after the data end ({end.date()}); "
                              f"use a cutoff on or before {(end - pd.Timedelta(days=horizons[-1])).date()}")

    codes, uniques = cust
    okey = None if order_col is None else pd.factorize(df[order_col].to_numpy())[0]
    products = pd.factorize(df[product_col].to_numpy())[0] if product_col else None
    log = _prepare(codes, len(uniques), t, amount, qty, okey, {c: v[0] for c, v in cats.items()}, products)
    cat_values = {c: v[1] for c, v in cats.items()}
    frames = [_rows_at(log, cut, horizons if labels else (), np.asarray(uniques, dtype=object), cat_values)
              for cut in cuts]
    frame = pd.concat(frames, ignore_index=True)
    numeric = [k for k in FEATURE_DOCS if k in frame.columns and k not in CATEGORICAL_FEATURES and k not in cats]
    categorical = list(cats) + list(CATEGORICAL_FEATURES)
    docs = {k: FEATURE_DOCS[k] for k in numeric + list(CATEGORICAL_FEATURES)}
    for c in cats:
        docs[c] = f"{c} on the customer's last transaction before the cutoff"
    frame = frame[list(ID_COLUMNS) + numeric + categorical + label_names]
    return Snapshots(
        frame=frame,
        numeric_features=numeric,
        money_features=[m for m in MONEY_FEATURES if m in numeric],
        categorical_features=categorical,
        slice_features=list(cats) + ["active_90d"],
        labels=label_names,
        last_period_features={f"cltv_{h}": f"spend_last_{h}d" for h in horizons
                              if labels and f"spend_last_{h}d" in numeric},
        bgnbd_features=dict(BGNBD_FEATURES),
        feature_docs=docs,
        cutoffs=[str(c.date()) for c in cuts],
    )


@dataclasses.dataclass
class _Log:
    """A transaction log reduced once, for every cutoff: orders (sorted by customer, then time), days
    with any transaction (lifetimes' periods), first purchase day per (customer, month) and first
    purchase time per (customer, product). Customers are integer codes 0..K-1."""

    K: int
    oc: np.ndarray  # orders: customer, time (ns), net, gross (positive lines), returned, lines
    ot: np.ndarray
    onet: np.ndarray
    ogross: np.ndarray
    oret: np.ndarray
    olines: np.ndarray
    ounits: Optional[np.ndarray]  # units bought / returned (with a quantity column)
    ounits_ret: Optional[np.ndarray]
    ocat: Dict[str, np.ndarray]  # categorical codes on each order's last line
    dc: np.ndarray  # days: customer, day number, net amount, purchase day?
    dd: np.ndarray
    da: np.ndarray
    dpurch: np.ndarray
    mc: np.ndarray  # (customer, month) with a purchase: customer, first purchase day
    mfirst: np.ndarray
    pc: Optional[np.ndarray]  # (customer, product) bought: customer, first purchase time
    pfirst: Optional[np.ndarray]

    @property
    def opurch(self) -> np.ndarray:
        return self.ogross > 0


def _prepare(codes, K, t, amount, qty, okey, cat_codes, products) -> _Log:
    # orders: lines grouped by (customer, order key or timestamp), lines time-sorted within an order
    order = np.lexsort((t, t if okey is None else okey, codes))
    lc, lt, la = codes[order], t[order], amount[order]
    ostarts = _starts(lc, lt if okey is None else okey[order])
    oends = np.r_[ostarts[1:], len(lc)]
    seg = lambda x: np.add.reduceat(x, ostarts)  # noqa: E731
    cols = dict(oc=lc[ostarts], ot=lt[ostarts], onet=seg(la), ogross=seg(np.maximum(la, 0.0)),
                oret=seg(np.maximum(-la, 0.0)), olines=(oends - ostarts).astype(np.float64), ounits=None, ounits_ret=None)
    if qty is not None:
        cols["ounits"] = seg(np.maximum(qty[order], 0.0))
        cols["ounits_ret"] = seg(np.maximum(-qty[order], 0.0))
    ocat = {c: v[order][oends - 1] for c, v in cat_codes.items()}
    if okey is not None:  # orders by customer, then time
        resort = np.lexsort((cols["ot"], cols["oc"]))
        cols = {k: (v[resort] if v is not None else None) for k, v in cols.items()}
        ocat = {c: v[resort] for c, v in ocat.items()}
    # days with any transaction
    day = np.floor_divide(t, DAY_NS)
    order = np.lexsort((day, codes))
    lc, ld, la = codes[order], day[order], amount[order]
    dstarts = _starts(lc, ld)
    dc, dd = lc[dstarts], ld[dstarts]
    dpurch = np.add.reduceat(np.maximum(la, 0.0), dstarts) > 0
    # (customer, month) with a purchase
    dmonth = dd.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    pc, pm, pday = dc[dpurch], dmonth[dpurch], dd[dpurch]
    mstarts = _starts(pc, pm)
    # (customer, product) bought
    prod_c = prod_first = None
    if products is not None:
        pos = np.flatnonzero(amount > 0)
        order = np.lexsort((t[pos], products[pos], codes[pos]))
        lc, lp, lt = codes[pos][order], products[pos][order], t[pos][order]
        pstarts = _starts(lc, lp)
        prod_c, prod_first = lc[pstarts], lt[pstarts]
    return _Log(K=K, ocat=ocat, dc=dc, dd=dd, da=np.add.reduceat(la, dstarts), dpurch=dpurch, mc=pc[mstarts],
                mfirst=pday[mstarts], pc=prod_c, pfirst=prod_first, **cols)


def _group(keys: np.ndarray, ids: np.ndarray):
    """For sorted customer codes `keys`: run starts, run ends, and each run's position in `ids`."""
    starts = _starts(keys)
    ends = np.r_[starts[1:], len(keys)].astype(np.int64) if len(starts) else starts
    return starts, ends, np.searchsorted(ids, keys[starts])


def _rows_at(log: _Log, cut: pd.Timestamp, horizons, uniques: np.ndarray, cat_values) -> pd.DataFrame:
    """The snapshot rows (ids, features, labels) of every customer with a transaction before `cut`."""
    c_ns = cut.value
    cday = c_ns // DAY_NS
    opurch = log.opurch
    idx = np.flatnonzero(log.ot < c_ns)  # orders before the cutoff, still sorted by customer, time
    starts = _starts(log.oc[idx])
    ends = np.r_[starts[1:], len(idx)]
    ids = log.oc[idx][starts]
    n = len(ids)

    def S(x):  # per-customer sum over the orders before the cutoff (+ 0.0 turns -0.0 into 0.0)
        return np.add.reduceat(np.asarray(x, dtype=np.float64)[idx], starts) + 0.0

    def per_customer(values, positions, fill=0.0):
        out = np.full(n, fill)
        out[positions] = values
        return out

    # purchase orders only
    pidx = idx[opurch[idx]]
    pg = log.ogross[pidx]
    pstarts, pends, ppos = _group(log.oc[pidx], ids)
    has_p = len(pidx) > 0
    n_orders = per_customer(pends - pstarts, ppos)
    t_first_p = per_customer(log.ot[pidx][pstarts], ppos, np.nan)
    t_last_p = per_customer(log.ot[pidx][pends - 1], ppos, np.nan)
    max_ov = per_customer(np.maximum.reduceat(pg, pstarts) if has_p else [], ppos)
    ss = per_customer(np.add.reduceat(pg * pg, pstarts) if has_p else [], ppos)
    t_first = log.ot[idx][starts]
    gross = S(log.ogross)
    has = n_orders > 0
    safe_n = np.maximum(n_orders, 1)

    f: Dict[str, np.ndarray] = {}
    f["recency_days"] = (c_ns - np.where(has, t_last_p, log.ot[idx][ends - 1])) / DAY_NS
    f["tenure_days"] = (c_ns - t_first) / DAY_NS
    span = np.where(has, (t_last_p - t_first_p) / DAY_NS, 0.0)
    f["active_span_days"] = span
    f["mean_days_between_orders"] = np.where(n_orders >= 2, span / np.maximum(n_orders - 1, 1), f["tenure_days"])
    f["n_orders"] = n_orders
    f["n_active_days"] = np.bincount(log.dc[log.dpurch & (log.dd < cday)], minlength=log.K)[ids].astype(np.float64)
    f["n_active_months"] = np.bincount(log.mc[log.mfirst < cday], minlength=log.K)[ids].astype(np.float64)
    f["order_rate_30d"] = n_orders / np.maximum(f["tenure_days"], 1.0) * 30.0
    f["net_spend"] = S(log.onet)
    f["gross_spend"] = gross
    f["avg_order_value"] = gross / safe_n
    f["max_order_value"] = max_ov
    f["std_order_value"] = np.where(n_orders >= 2, np.sqrt(np.maximum(ss / safe_n - (gross / safe_n) ** 2, 0.0)), 0.0)
    f["first_order_value"] = per_customer(pg[pstarts], ppos)
    f["last_order_value"] = per_customer(pg[pends - 1], ppos)
    f["n_returns"] = S(log.oret > 0)
    ret_amt = S(log.oret)
    f["return_amount"] = ret_amt
    f["return_share"] = np.where(gross > 0, np.minimum(ret_amt / np.where(gross > 0, gross, 1.0), 1.0),
                                 (ret_amt > 0).astype(np.float64))
    for w in WINDOWS:
        f[f"spend_last_{w}d"] = S(log.onet * (log.ot >= c_ns - w * DAY_NS))
    for w in WINDOWS:
        f[f"orders_last_{w}d"] = S(opurch & (log.ot >= c_ns - w * DAY_NS))
    prev = (log.ot >= c_ns - 180 * DAY_NS) & (log.ot < c_ns - 90 * DAY_NS)
    f["spend_prev_90d"] = S(log.onet * prev)
    f["orders_prev_90d"] = S(opurch & prev)
    yago = (log.ot >= c_ns - 365 * DAY_NS) & (log.ot < c_ns - 275 * DAY_NS)
    f["spend_yago_90d"] = S(log.onet * yago)
    weekend = ((np.floor_divide(log.ot, DAY_NS) + 3) % 7) >= 5  # 1970-01-01 was a Thursday (Monday = 0)
    f["weekend_order_share"] = S(opurch & weekend) / safe_n

    # lifetimes.utils.summary_data_from_transaction_data(freq="D", observation_period_end=cutoff - 1 day)
    didx = np.flatnonzero(log.dd < cday)
    dstarts, dends, dpos = _group(log.dc[didx], ids)
    freq = per_customer(dends - dstarts - 1, dpos)
    first_d = per_customer(log.dd[didx][dstarts], dpos)
    total = per_customer(np.add.reduceat(log.da[didx], dstarts), dpos)
    first_a = per_customer(log.da[didx][dstarts], dpos)
    f["bg_frequency"] = freq
    f["bg_recency"] = per_customer(log.dd[didx][dends - 1], dpos) - first_d
    f["bg_T"] = (cday - 1) - first_d
    f["bg_monetary_value"] = np.where(freq > 0, (total - first_a) / np.maximum(freq, 1), 0.0)

    if log.ounits is not None:
        units = S(log.ounits)
        f["units_bought"] = units
        f["units_returned"] = S(log.ounits_ret)
        f["avg_unit_price"] = np.where(units > 0, gross / np.where(units > 0, units, 1.0), 0.0)
        f["avg_units_per_order"] = S(log.ounits * opurch) / safe_n
    if log.pc is not None:
        f["n_distinct_products"] = np.bincount(log.pc[log.pfirst < c_ns], minlength=log.K)[ids].astype(np.float64)
        f["avg_lines_per_order"] = S(log.olines * opurch) / safe_n

    cat_f = {c: cat_values[c][log.ocat[c][idx][ends - 1]] for c in log.ocat}
    cat_f["cutoff_month"] = np.full(n, f"{cut.month:02d}", dtype=object)
    first_month = (t_first.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64) % 12) + 1
    cat_f["first_order_month"] = np.char.zfill(first_month.astype(str), 2).astype(object)
    cat_f["active_90d"] = np.where(f["orders_last_90d"] > 0, "1", "0").astype(object)

    # labels: net spend in [cutoff, cutoff + H), clipped at 0, non-decreasing in H
    labels: Dict[str, np.ndarray] = {}
    running = np.zeros(n)
    for h in horizons:
        win = (log.ot >= c_ns) & (log.ot < c_ns + h * DAY_NS)
        net_h = np.bincount(log.oc[win], weights=log.onet[win], minlength=log.K)[ids]
        running = np.maximum(running, np.maximum(net_h, 0.0))
        labels[f"cltv_{h}"] = np.round(running, 6)

    ids_part = {"customer_id": uniques[ids], "cutoff": np.full(n, str(cut.date()), dtype=object)}
    return pd.DataFrame({**ids_part, **f, **cat_f, **labels})


assert set(BGNBD_FEATURES) == set(BGNBD_KEYS)
