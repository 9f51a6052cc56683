"""Small files in the exact formats of the two public benchmarks (no real data): Kaggle Acquire Valued
Shoppers' transactions.csv and Criteo-SSC's CriteoSearchData. A few hand-made rows whose outcome the tests
compute by hand come first; random rows follow."""
import gzip

import numpy as np
import pandas as pd

KAGGLE_COLUMNS = ["id", "chain", "dept", "category", "company", "brand", "date", "productsize", "productmeasure",
                  "purchasequantity", "purchaseamount"]
COMPANY = "103600030"
OTHER_COMPANIES = ("107127979", "1089520383")

# (id, chain, dept, category, company, brand, date, productsize, productmeasure, purchasequantity, purchaseamount)
KAGGLE_HAND_ROWS = [
    # 1001: a return before the first purchase; first day 2012-03-02 with two rows of the largest amount (7.50):
    # the earlier one (chain 21) has no productmeasure, so productmeasure comes from the next one (CT).
    (1001, 20, 1, 101, COMPANY, 5001, "2012-03-01", 12, "OZ", -1, -5.00),
    (1001, 20, 1, 101, COMPANY, 5001, "2012-03-02", 12, "OZ", 1, 3.00),
    (1001, 21, 2, 202, COMPANY, 5002, "2012-03-02", 1, "", 2, 7.50),
    (1001, 22, 3, 303, COMPANY, 5003, "2012-03-02", 16, "CT", 1, 7.50),
    (1001, 22, 3, 303, OTHER_COMPANIES[0], 6001, "2012-03-02", 16, "CT", 1, 99.00),  # another company
    (1001, 20, 1, 101, COMPANY, 5001, "2012-03-03", 12, "OZ", 1, 10.00),    # day 1 after the first day
    (1001, 20, 1, 101, COMPANY, 5001, "2012-04-01", 12, "OZ", -1, -2.00),   # a return inside the window
    (1001, 20, 1, 101, COMPANY, 5001, "2012-05-31", 12, "OZ", 1, 1.25),     # day 90
    (1001, 20, 1, 101, COMPANY, 5001, "2013-03-02", 12, "OZ", 1, 4.00),     # day 365: in cltv_365
    (1001, 20, 1, 101, COMPANY, 5001, "2013-03-03", 12, "OZ", 1, 100.00),   # day 366: in no label
    # 1002: returns and a zero row only: not a shopper
    (1002, 20, 1, 101, COMPANY, 5001, "2012-03-05", 12, "OZ", -1, -3.00),
    (1002, 20, 1, 101, COMPANY, 5001, "2012-03-06", 12, "OZ", 0, 0.00),
    # 1003: one purchase, nothing after it
    (1003, 30, 4, 404, COMPANY, 5004, "2012-05-10", 32, "LB", 1, 20.00),
    # 1004: first day 2012-06-01 (two rows), then 31 days later (cltv_90, not cltv_30)
    (1004, 31, 5, 505, COMPANY, 5005, "2012-06-01", 6, "RL", 1, 2.00),
    (1004, 32, 6, 606, COMPANY, 5006, "2012-06-01", 8, "OZ", 3, 6.00),
    (1004, 32, 6, 606, COMPANY, 5006, "2012-07-02", 8, "OZ", 1, 8.00),
]
# What the tests expect of them (computed by hand from the rows above).
KAGGLE_EXPECTED = {
    "1001": dict(cutoff="2012-03-03", calibration=18.0, chain="21", dept="2", category="202", brand="5002",
                 productmeasure="CT", cltv_30=10.0, cltv_90=11.25, cltv_180=11.25, cltv_365=15.25),
    "1003": dict(cutoff="2012-05-11", calibration=20.0, chain="30", dept="4", category="404", brand="5004",
                 productmeasure="LB", cltv_30=0.0, cltv_90=0.0, cltv_180=0.0, cltv_365=0.0),
    "1004": dict(cutoff="2012-06-02", calibration=8.0, chain="32", dept="6", category="606", brand="5006",
                 productmeasure="OZ", cltv_30=0.0, cltv_90=8.0, cltv_180=8.0, cltv_365=8.0),
}


def kaggle_rows(customers: int = 300, extra_rows: int = 0, seed: int = 0) -> pd.DataFrame:
    """The hand rows, then random customers (ids from 2000) of COMPANY and the other companies: 1 to 4
    first-day rows each and later baskets, with returns, zero rows and missing productmeasure. `extra_rows`
    adds rows after each customer's first day (half of them of other companies): the file grows, the first
    days stay."""
    rng = np.random.default_rng(seed)
    hand = pd.DataFrame(KAGGLE_HAND_ROWS, columns=KAGGLE_COLUMNS)
    ids = 2000 + np.arange(customers)
    company = rng.choice([COMPANY, *OTHER_COMPANIES], size=customers, p=[0.6, 0.2, 0.2])
    start = np.datetime64("2012-03-02") + rng.integers(0, 120, size=customers)
    first_n = rng.integers(1, 5, size=customers)
    later_n = rng.integers(0, 12, size=customers)
    cust = np.r_[np.repeat(np.arange(customers), first_n), np.repeat(np.arange(customers), later_n)]
    offset = np.r_[np.zeros(first_n.sum(), dtype=np.int64), rng.integers(1, 480, size=later_n.sum())]
    if extra_rows:
        cust = np.r_[cust, rng.integers(0, customers, size=extra_rows)]
        offset = np.r_[offset, rng.integers(1, 480, size=extra_rows)]
    n = len(cust)
    comp = company[cust]
    if extra_rows:
        moved = np.flatnonzero(offset[len(offset) - extra_rows:] > 0)[::2] + len(offset) - extra_rows
        comp = comp.copy()
        comp[moved] = OTHER_COMPANIES[1]
    amount = np.round(0.5 + rng.permutation(n) * 0.01, 2)  # distinct amounts: no ties to break
    returned = (offset > 0) & (rng.random(n) < 0.05)
    amount = np.where(returned, -amount, amount)
    amount = np.where((offset > 0) & (rng.random(n) < 0.01), 0.0, amount)
    measure = rng.choice(["OZ", "CT", "LB", "RL", ""], size=n, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    rows = pd.DataFrame({
        "id": ids[cust], "chain": rng.integers(1, 40, n), "dept": rng.integers(1, 20, n),
        "category": rng.integers(100, 140, n), "company": comp, "brand": rng.integers(5000, 5060, n),
        "date": (start[cust] + offset).astype(str), "productsize": rng.choice([1, 6, 12, 16, 32], n),
        "productmeasure": measure, "purchasequantity": np.where(returned, -1, rng.integers(1, 4, n)),
        "purchaseamount": amount,
    })
    return pd.concat([hand, rows], ignore_index=True)


def write_kaggle(path, rows: pd.DataFrame) -> str:
    """transactions.csv as Kaggle ships it: a header line, comma-separated; gzipped if `path` ends in .gz."""
    rows.to_csv(path, index=False, compression="gzip" if str(path).endswith(".gz") else None,
                float_format="%.2f")
    return str(path)


CRITEO_COLUMNS = ["Sale", "SalesAmountInEuro", "Time_delay_for_conversion", "click_timestamp", "nb_clicks_1week",
                  "product_price", "product_age_group", "device_type", "audience_id", "product_gender",
                  "product_brand", *(f"product_category{i}" for i in range(1, 8)), "product_country", "product_id",
                  "product_title", "partner_id", "user_id"]
_HEX = "7E56C27BFF0305E788DA55A029EC4988"
# line 1: a sale; line 2: no sale; line 3: a sale without an amount (labelled 0)
CRITEO_HAND_ROWS = [
    [1, 25.5, 3600, 1596439470, 12, 19.99] + [_HEX] * 14 + ["A1 B2 C3", "P1", "U1"],
    [0, -1, -1, 1596525870, -1, 0.0] + ["-1"] * 14 + ["-1", "P2", "U2"],
    [1, -1, 10, 1596612270, 3, 5.5] + [_HEX] * 14 + ["A1", "P1", "U3"],
]
CRITEO_EXPECTED = {"1": ("2020-08-03", 25.5), "2": ("2020-08-04", 0.0), "3": ("2020-08-05", 0.0)}


def criteo_rows(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """The hand rows, then random clicks: about 7 % sales with log-normal amounts, values drawn from small
    pools of 32-digit hex strings with '-1' for missing."""
    rng = np.random.default_rng(seed)
    n = rows - len(CRITEO_HAND_ROWS)

    def pool(size):
        return np.array(["-1"] + ["".join(rng.choice(list("0123456789ABCDEF"), 32)) for _ in range(size)])

    sale = (rng.random(n) < 0.07).astype(int)
    amount = np.where(sale == 1, np.round(np.exp(rng.normal(3.0, 1.0, n)), 2), -1.0)
    data = {
        "Sale": sale, "SalesAmountInEuro": amount,
        "Time_delay_for_conversion": np.where(sale == 1, rng.integers(0, 2_592_000, n), -1),
        "click_timestamp": 1_596_439_470 + np.sort(rng.integers(0, 90 * 86_400, n)),
        "nb_clicks_1week": np.where(rng.random(n) < 0.2, -1, rng.integers(0, 500, n)),
        "product_price": np.where(rng.random(n) < 0.1, -1.0, np.round(rng.gamma(2.0, 40.0, n), 2)),
    }
    for c in CRITEO_COLUMNS[6:]:
        values = pool(400 if c in ("product_id", "user_id", "product_title") else 12)
        data[c] = rng.choice(values, n)
    frame = pd.DataFrame(data)[CRITEO_COLUMNS]
    return pd.concat([pd.DataFrame(CRITEO_HAND_ROWS, columns=CRITEO_COLUMNS), frame], ignore_index=True)


def write_criteo(path, rows: pd.DataFrame, header: bool = False) -> str:
    """CriteoSearchData: tab-separated, no header line (unless `header`); gzipped if `path` ends in .gz."""
    text = rows.to_csv(sep="\t", index=False, header=header)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        f.write(text)
    return str(path)
