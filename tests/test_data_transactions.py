"""snapshots_from_transactions: no leakage, label windows and monotonicity, hand-checked features, BG/NBD
inputs equal to lifetimes', the splits, the Online Retail II / CDNOW shapes, and bad input."""
import numpy as np
import pandas as pd
import pytest

from mean_tf.data import cdnow, online_retail
from mean_tf.data.splits import assign_splits, customer_split
from mean_tf.data.transactions import snapshots_from_transactions
from mean_tf.errors import MeanTFError

LABELS = ["cltv_30", "cltv_90", "cltv_180", "cltv_365"]


@pytest.fixture(scope="module")
def retail_lines():
    return online_retail.load_lines()


@pytest.fixture(scope="module")
def retail(retail_lines):
    return online_retail.build_snapshots(retail_lines)


def _log(rows):
    return pd.DataFrame(rows, columns=["cust", "time", "amount"]).assign(time=lambda d: pd.to_datetime(d["time"]))


# ---------------------------------------------------------------------------------------------- leakage


def test_features_do_not_change_when_future_lines_move(retail_lines):
    cutoff = pd.Timestamp("2010-09-01")
    some = retail_lines[retail_lines["customer_id"].isin(retail_lines["customer_id"].unique()[:400])]
    base = online_retail.build_snapshots(some, [cutoff])
    future = some["invoice_date"] >= cutoff
    moved = some.copy()
    # future lines: other amounts, other days (still after the cutoff), other products and countries
    moved.loc[future, "quantity"] = moved.loc[future, "quantity"] * 3 + 1
    moved.loc[future, "invoice_date"] = moved.loc[future, "invoice_date"] + pd.Timedelta(days=17)
    moved["description"] = moved["description"].astype(str)
    moved.loc[future, "description"] = "NEW PRODUCT"
    moved["country"] = moved["country"].astype(str)
    moved.loc[future, "country"] = "Atlantis"
    # plus a brand-new customer who only buys after the cutoff
    extra = moved[future].head(3).assign(customer_id=99999)
    moved = online_retail.prepare_lines(pd.concat([moved, extra], ignore_index=True))
    again = online_retail.build_snapshots(moved, [cutoff])
    features = base.numeric_features + base.categorical_features
    assert list(again.frame["customer_id"]) == list(base.frame["customer_id"])  # same rows: no 99999
    pd.testing.assert_frame_equal(again.frame[features], base.frame[features])
    assert not np.allclose(again.frame["cltv_365"], base.frame["cltv_365"])  # the labels did see the change


def test_label_window_starts_at_the_cutoff_and_features_end_before_it():
    log = _log([
        ("a", "2020-01-05 10:00", 10.0),
        ("a", "2020-01-31 23:59:59", 1.0),   # last instant before the cutoff: a feature
        ("a", "2020-02-01 00:00", 100.0),    # the cutoff instant: first label day
        ("a", "2020-03-01 23:00", 100.0),    # the 30th label day (2020 is a leap year): in cltv_30
        ("a", "2020-03-02 00:00", 1000.0),   # cutoff + 30 days: the first instant outside cltv_30
        ("a", "2021-02-01 00:00", 5.0),      # cutoff + 366 days: in no label
        ("b", "2021-03-01 00:00", 1.0),      # data end
    ])
    s = snapshots_from_transactions(log, "cust", "time", "amount", ["2020-02-01"])
    row = s.frame.set_index("customer_id").loc["a"]
    assert row["net_spend"] == 11.0 and row["spend_last_30d"] == 11.0
    assert row["cltv_30"] == 200.0 and row["cltv_90"] == 1200.0 and row["cltv_365"] == 1200.0
    assert list(s.frame["customer_id"]) == ["a"]  # b has no history before the cutoff


def test_labels_are_clipped_and_monotone_even_with_returns():
    log = _log([
        ("a", "2020-01-10", 50.0),
        ("a", "2020-02-10", 80.0),    # cltv_30 = 80
        ("a", "2020-03-20", -200.0),  # a return: net spend by day 90 is -120
        ("a", "2020-09-20", 300.0),   # by day 365: +180
        ("b", "2021-06-01", 1.0),
    ])
    s = snapshots_from_transactions(log, "cust", "time", "amount", ["2020-02-01"])
    r = s.frame.iloc[0]
    assert [r[c] for c in LABELS] == [80.0, 80.0, 80.0, 180.0]


def test_labels_are_non_negative_and_monotone_on_real_data(retail):
    y = retail.frame[LABELS].to_numpy()
    assert (y >= 0).all()
    assert (np.diff(y, axis=1) >= 0).all()


# ---------------------------------------------------------------------------------------------- features


def test_hand_computed_features():
    df = pd.DataFrame({
        "cust": ["a", "a", "a", "a", "b"],
        "time": pd.to_datetime(["2020-01-04 09:00", "2020-01-04 09:00", "2020-03-01 12:00", "2020-03-15 08:00",
                                "2020-03-30 10:00"]),
        "qty": [2, 1, 5, -1, 1],
        "price": [10.0, 4.0, 2.0, 10.0, 7.0],
        "product": ["x", "y", "x", "x", "z"],
        "country": ["UK", "UK", "FR", "FR", "DE"],
    }).assign(amount=lambda d: d.qty * d.price)
    extra = pd.DataFrame({"cust": ["b"], "time": pd.to_datetime(["2021-06-01"]), "qty": [1], "price": [1.0],
                          "product": ["z"], "country": ["DE"], "amount": [1.0]})
    s = snapshots_from_transactions(pd.concat([df, extra]), "cust", "time", "amount", ["2020-04-01"],
                                    quantity_col="qty", product_col="product", categorical_cols=["country"])
    a = s.frame.set_index("customer_id").loc["a"]
    # orders: 2020-01-04 (24.0, Saturday), 2020-03-01 (10.0, Sunday), 2020-03-15 (return of -10)
    assert a["n_orders"] == 2 and a["n_returns"] == 1 and a["return_amount"] == 10.0
    assert a["gross_spend"] == 34.0 and a["net_spend"] == 24.0
    assert a["avg_order_value"] == 17.0 and a["max_order_value"] == 24.0 and a["first_order_value"] == 24.0
    assert a["last_order_value"] == 10.0 and a["std_order_value"] == pytest.approx(7.0)
    assert a["recency_days"] == pytest.approx(30.5)  # last purchase 2020-03-01 12:00
    assert a["tenure_days"] == pytest.approx(87 + 15 / 24)
    assert a["active_span_days"] == pytest.approx(57 + 3 / 24)
    assert a["weekend_order_share"] == 1.0
    assert a["spend_last_30d"] == -10.0 and a["spend_last_90d"] == 24.0 and a["orders_last_30d"] == 0
    assert a["units_bought"] == 8 and a["units_returned"] == 1 and a["avg_unit_price"] == pytest.approx(34 / 8)
    assert a["n_distinct_products"] == 2 and a["avg_lines_per_order"] == 1.5
    assert a["n_active_days"] == 2 and a["n_active_months"] == 2
    assert a["country"] == "FR" and a["cutoff_month"] == "04" and a["first_order_month"] == "01"
    assert a["active_90d"] == "1"
    assert a["return_share"] == pytest.approx(10 / 34)
    assert set(s.money_features) <= set(s.numeric_features)
    assert set(s.feature_docs) == set(s.numeric_features + s.categorical_features)


def test_bgnbd_features_equal_lifetimes_summary(retail_lines):
    from lifetimes.utils import summary_data_from_transaction_data

    cutoff = pd.Timestamp("2010-10-01")
    some = retail_lines[retail_lines["customer_id"].isin(retail_lines["customer_id"].unique()[::10])]
    s = online_retail.build_snapshots(some, [cutoff]).frame.set_index("customer_id")
    before = some[some["invoice_date"] < cutoff].assign(customer_id=lambda d: d["customer_id"].astype(str))
    ref = summary_data_from_transaction_data(before, "customer_id", "invoice_date", "amount",
                                             observation_period_end=cutoff - pd.Timedelta(days=1), freq="D")
    ref = ref.loc[s.index]
    for ours, theirs in [("bg_frequency", "frequency"), ("bg_recency", "recency"), ("bg_T", "T"),
                         ("bg_monetary_value", "monetary_value")]:
        np.testing.assert_allclose(s[ours].to_numpy(), ref[theirs].to_numpy(), rtol=1e-9, atol=1e-6, err_msg=ours)


# ---------------------------------------------------------------------------------------------- known shapes


def test_online_retail_shape_at_2010_12_01(retail):
    f = retail.frame
    last = f[f["cutoff"] == "2010-12-01"]
    assert len(last) == 4336
    zero = (last[LABELS] <= 0).mean().to_numpy()
    np.testing.assert_allclose(zero, [0.81, 0.68, 0.53, 0.37], atol=0.01)
    assert sorted(f["cutoff"].unique()) == [f"2010-{m:02d}-01" for m in range(1, 13)]
    assert 30 <= len(retail.numeric_features) + len(retail.categorical_features) <= 60
    assert not f[retail.numeric_features].isna().any().any()


def test_cdnow_shape():
    s = cdnow.build_snapshots(cdnow.load_transactions())
    f = s.frame
    assert len(f) == 23570 and f["customer_id"].nunique() == 23570
    assert f["tenure_days"].max() <= 90 and (f["n_orders"] > 0).mean() > 0.99  # 70 bought only $0 items
    zero = (f[LABELS] <= 0).mean().to_numpy()
    np.testing.assert_allclose(zero, [0.880, 0.773, 0.690, 0.596], atol=0.01)  # measured once, a regression pin
    assert "cutoff_month" not in f.columns  # constant with one cutoff: dropped


# ---------------------------------------------------------------------------------------------- splits


def test_customer_split_keeps_customers_together_and_cuts_7_1_2(retail):
    f = retail.frame
    split = assign_splits(f, "customer", seed=0)
    per_customer = pd.Series(split).groupby(f["customer_id"].to_numpy()).nunique()
    assert (per_customer == 1).all()
    customers = pd.Series(split).groupby(f["customer_id"].to_numpy()).first().value_counts()
    n = f["customer_id"].nunique()
    assert customers["train"] == round(0.7 * n) and customers["eval"] == round(0.8 * n) - round(0.7 * n)
    assert (assign_splits(f, "customer", seed=0) == split).all()
    assert (assign_splits(f, "customer", seed=1) != split).any()
    # a customer's split depends on the seed and the set of customers, not on row order
    shuffled = f.sample(frac=1.0, random_state=3)
    assert (assign_splits(shuffled, "customer", seed=0) == pd.Series(split, index=f.index).loc[shuffled.index]).all()


def test_time_split_tests_on_the_last_cutoff(retail):
    f = retail.frame
    split = assign_splits(f, "time", seed=0)
    assert (split[f["cutoff"] == "2010-12-01"] == "test").all()
    early = split[f["cutoff"] != "2010-12-01"]
    assert set(early) == {"train", "eval"}
    early_customers = f.loc[f["cutoff"] != "2010-12-01", "customer_id"].to_numpy()
    assert (pd.Series(early).groupby(early_customers).nunique() == 1).all()
    with pytest.raises(MeanTFError, match="at least 2 cutoffs"):
        assign_splits(f[f["cutoff"] == "2010-12-01"], "time")


def test_customer_split_is_exact_on_small_sets():
    s = customer_split([f"c{i}" for i in range(10)], seed=5)
    assert sorted(pd.Series(s).value_counts().items()) == [("eval", 1), ("test", 2), ("train", 7)]


# ---------------------------------------------------------------------------------------------- bad input

GOOD = [("a", "2020-01-10", 5.0), ("a", "2020-06-10", 5.0), ("b", "2021-03-01", 1.0)]


def _snap(df, **kw):
    kw.setdefault("cutoffs", ["2020-02-01"])
    return snapshots_from_transactions(df, "cust", "time", "amount", **kw)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns=["amount"]), r"missing column\(s\) \['amount'\]"),
    (lambda d: d.iloc[0:0], "empty"),
    (lambda d: d.assign(amount=[5.0, np.nan, 1.0]), r"'amount' is missing \(NaN\) at row 1"),
    (lambda d: d.assign(amount=[5.0, "lots", 1.0]), r"'amount' has a non-numeric .*'lots'.* at row 1"),
    (lambda d: d.assign(time=["2020-01-10", "2020-13-45", "2021-03-01"]), r"'time' has an unparseable date '2020-13-45' at row 1"),
    (lambda d: d.assign(time=["2020-01-10", None, "2021-03-01"]), r"'time' is missing at row 1"),
    (lambda d: d.assign(cust=["a", None, "b"]), r"'cust' is missing at row 1"),
])
def test_bad_transactions_name_the_column_and_row(mutate, message):
    df = pd.DataFrame(GOOD, columns=["cust", "time", "amount"])
    with pytest.raises(MeanTFError, match=message):
        _snap(mutate(df))


def test_negative_amounts_rejected_where_not_allowed():
    df = pd.DataFrame(GOOD, columns=["cust", "time", "amount"]).assign(amount=[5.0, -2.0, 1.0])
    _snap(df)  # returns are fine by default
    with pytest.raises(MeanTFError, match=r"'amount' has a negative value -2.0 at row 1"):
        _snap(df, allow_negative_amounts=False)


@pytest.mark.parametrize("cutoff, message", [
    ("2019-12-01", "outside the data: no transaction before it"),
    ("2020-06-01", "outside the data: its 365-day label window ends 2021-06-01, after the data end"),
    ("2020-02-01 12:00", "time of day"),
    ("not a date", "is not a date"),
])
def test_bad_cutoffs(cutoff, message):
    df = pd.DataFrame(GOOD, columns=["cust", "time", "amount"])
    with pytest.raises(MeanTFError, match=message):
        _snap(df, cutoffs=[cutoff])


def test_online_retail_rejects_negative_prices(retail_lines):
    bad = retail_lines.head(50).copy()
    bad.loc[bad.index[7], "unit_price"] = -1.0
    with pytest.raises(MeanTFError, match=r"'unit_price' has a negative value -1.0 at row 7"):
        online_retail.prepare_lines(bad)
    with pytest.raises(MeanTFError, match=r"missing column\(s\) \['country'\]"):
        online_retail.prepare_lines(retail_lines.head(5).drop(columns=["country"]))


def test_cdnow_names_the_bad_line(tmp_path):
    p = tmp_path / "cdnow.txt"
    p.write_text(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n"
                 " 00002 19971345  1   12.00\n")
    with pytest.raises(MeanTFError, match=r"unparseable date '19971345' at line 3"):
        cdnow.load_transactions(p)
    p.write_text(" 00001 19970101  1   11.77\n 00002 19970102  1   -12.00\n")
    with pytest.raises(MeanTFError, match=r"'dollar_value' has a negative value -12.0 at line 2"):
        cdnow.load_transactions(p)
    with pytest.raises(MeanTFError, match="not found"):
        cdnow.load_transactions(tmp_path / "missing.txt")


def test_readme_example_own_transaction_log(tmp_path):
    """The README's "Your own data" recipe: a CSV log -> snapshots -> dataset folder."""
    rng = np.random.default_rng(0)
    n = 400
    tx = pd.DataFrame({"user": rng.integers(0, 60, n).astype(str),
                       "ts": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 800, n), unit="D"),
                       "amount": np.round(rng.lognormal(3, 1, n), 2)})
    tx.to_csv(tmp_path / "my_transactions.csv", index=False)
    tx = pd.read_csv(tmp_path / "my_transactions.csv", parse_dates=["ts"])
    snaps = snapshots_from_transactions(tx, customer_col="user", time_col="ts", amount_col="amount",
                                        cutoffs=["2024-01-01", "2024-02-01"])
    m = snaps.write(tmp_path / "my_data", name="my_data")
    from mean_tf.data import read_manifest

    back = read_manifest(tmp_path / "my_data" / "manifest.json")
    assert back.to_dict() == m.to_dict() and sum(back.row_counts.values()) == len(snaps.frame)
    assert "quantity" not in " ".join(back.numeric_features) and "units_bought" not in back.numeric_features
    assert back.labels == LABELS and back.slice_features == ["active_90d"]


# ---------------------------------------------------------------------------------------------- scoring


def test_scoring_features_equal_training_features_at_the_same_date(retail_lines):
    """One feature code path: features at a date are the same with labels (training) and without (scoring)."""
    train = online_retail.build_snapshots(retail_lines, ["2010-12-01"]).frame
    score = snapshots_from_transactions(
        retail_lines, "customer_id", "invoice_date", "amount", ["2010-12-01"], quantity_col="quantity",
        product_col="description", categorical_cols=("country",), labels=False)
    assert score.labels == [] and score.last_period_features == {}
    assert not [c for c in score.frame.columns if c.startswith("cltv_")]
    pd.testing.assert_frame_equal(score.frame, train[score.frame.columns])


def test_scoring_allows_a_date_without_a_label_window_but_not_after_the_data():
    tx = _log([("a", "2024-01-05", 10.0), ("b", "2024-12-30", 5.0), ("a", "2024-12-31", 3.0)])
    with pytest.raises(MeanTFError, match="label window ends 2025-12-31"):
        snapshots_from_transactions(tx, "cust", "time", "amount", ["2024-12-31"])
    today = snapshots_from_transactions(tx, "cust", "time", "amount", ["2025-01-01"], labels=False).frame
    assert list(today["customer_id"]) == ["a", "b"] and list(today["net_spend"]) == [13.0, 5.0]
    at_end = snapshots_from_transactions(tx, "cust", "time", "amount", "end", labels=False).frame
    pd.testing.assert_frame_equal(at_end, today)  # "end": the day after the last transaction
    with pytest.raises(MeanTFError, match="after the data end"):
        snapshots_from_transactions(tx, "cust", "time", "amount", ["2025-01-02"], labels=False)


def test_data_transactions_cli_writes_training_and_scoring_datasets(tmp_path, capsys):
    from mean_tf.cli import main
    from mean_tf.data import read_manifest, read_split

    rng = np.random.default_rng(0)
    n = 3000
    tx = pd.DataFrame({"user": rng.integers(0, 300, n).astype(str),
                       "ts": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
                              ).strftime("%Y-%m-%d"),
                       "amount": np.round(rng.lognormal(3, 1, n), 2),
                       "region": rng.choice(["north", "south"], n)})
    tx.to_csv(tmp_path / "tx.csv", index=False)
    common = ["data", "transactions", "--input", str(tmp_path / "tx.csv"), "--customer", "user", "--time", "ts",
              "--amount", "amount", "--categorical", "region"]
    assert main(common + ["--cutoffs", "2023-01-01,2023-06-01", "--out", str(tmp_path / "train")]) == 0
    train = read_manifest(tmp_path / "train")
    assert train.labels == LABELS and "region" in train.categorical_features
    assert main(common + ["--score-date", "end", "--out", str(tmp_path / "score")]) == 0
    score = read_manifest(tmp_path / "score")
    assert list(score.splits) == ["score"] and score.labels == [] and score.features == train.features
    frame = read_split(score, "score")
    assert set(frame["cutoff"]) == {str((pd.Timestamp(tx["ts"].max()) + pd.Timedelta(days=1)).date())}
    assert score.row_counts["score"] == len(frame) == tx["user"].nunique()
    # bad input: one line, exit 2, nothing written
    capsys.readouterr()
    assert main(common[:-2] + ["--score-date", "end", "--out", str(tmp_path / "bad"), "--amount", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and not (tmp_path / "bad").exists()
    assert main(common + ["--out", str(tmp_path / "bad")]) == 2
    assert "either --cutoffs" in capsys.readouterr().err
