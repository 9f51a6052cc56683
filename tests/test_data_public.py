"""The public-benchmark builders (`mean-tf data kaggle-shoppers`, `mean-tf data criteo-ssc`) on fixture files in
the exact formats: manifest, labels against hand-computed values and an independent pandas reading of the
published preprocessing, splits (the notebook's sklearn split), streaming memory, and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import public_fixtures as pf
from mean_tf.cli import main
from mean_tf.data import read_manifest, read_split
from mean_tf.data.splits import hashed_split


@pytest.fixture(scope="module")
def kaggle_file(tmp_path_factory):
    rows = pf.kaggle_rows(300)
    return rows, pf.write_kaggle(tmp_path_factory.mktemp("kaggle") / "transactions.csv.gz", rows)


@pytest.fixture(scope="module")
def criteo_file(tmp_path_factory):
    rows = pf.criteo_rows(3000)
    return rows, pf.write_criteo(tmp_path_factory.mktemp("criteo") / "CriteoSearchData.gz", rows)


def _all_splits(m, columns=None):
    return pd.concat([read_split(m, s, columns=columns).assign(split=s) for s in m.splits], ignore_index=True)


def _published(rows: pd.DataFrame, company: str) -> pd.DataFrame:
    """The customer table as google/lifetime_value's preprocessing describes it, read with pandas from the
    whole file: purchase rows of the company, first-day spend, attributes of the largest first-day row,
    spend in the 365 days after the first day; one row per shopper, sorted by id."""
    df = rows[(rows["company"].astype(str) == company) & (rows["purchaseamount"] > 0)].copy()
    df["date"] = pd.to_datetime(df["date"])
    df["start"] = df.groupby("id")["date"].transform("min")
    first = df[df["date"] == df["start"]]
    out = first.groupby("id")["purchaseamount"].sum().rename("calibration").to_frame()
    window = df[(df["date"] > df["start"]) & (df["date"] <= df["start"] + pd.Timedelta(days=365))]
    out["cltv_365"] = window.groupby("id")["purchaseamount"].sum().reindex(out.index).fillna(0.0)
    attrs = first.replace({"productmeasure": {"": np.nan}}).sort_values("purchaseamount", ascending=False,
                                                                         kind="mergesort")
    out = out.join(attrs.groupby("id")[["chain", "dept", "category", "brand", "productmeasure"]].first())
    return out.fillna({"productmeasure": "UNKNOWN"}).sort_index()


def test_kaggle_published_protocol(kaggle_file, tmp_path, capsys, monkeypatch):
    rows, path = kaggle_file
    out = tmp_path / "kaggle"
    monkeypatch.setattr("mean_tf.commands.data.PROGRESS_EVERY_S", 0.0)
    assert main(["data", "kaggle-shoppers", "--input", path, "--out", str(out)]) == 0
    assert f"pass 2/2: {len(rows):,} rows read (100% of the file)" in capsys.readouterr().err
    m = read_manifest(out)
    assert (m.name, m.labels, m.numeric_features) == ("kaggle_shoppers", ["cltv_365"], ["log_calibration_value"])
    assert m.categorical_features == ["chain", "dept", "category", "brand", "productmeasure"]
    table = _all_splits(m).set_index("customer_id")
    reference = _published(rows, pf.COMPANY)
    assert sorted(table.index) == sorted(reference.index.astype(str))
    assert "1002" not in table.index  # returns and a zero row only: no purchase, no shopper
    ref = reference.set_axis(reference.index.astype(str)).loc[table.index]
    np.testing.assert_allclose(table["cltv_365"], ref["cltv_365"], rtol=1e-6)
    np.testing.assert_allclose(table["log_calibration_value"], np.log(ref["calibration"]), rtol=1e-6)
    untied = table.index != "1001"  # 1001's two largest rows tie; pandas' order among them is unspecified
    for c in ("chain", "dept", "category", "brand", "productmeasure"):
        assert list(table.loc[untied, c]) == [str(v) for v in ref.loc[untied, c]], c
    for customer, want in pf.KAGGLE_EXPECTED.items():
        got = table.loc[customer]
        assert got["cutoff"] == want["cutoff"]
        assert got["log_calibration_value"] == pytest.approx(np.log(want["calibration"]), rel=1e-6)
        assert got["cltv_365"] == pytest.approx(want["cltv_365"])
        assert [got[c] for c in ("chain", "dept", "category", "brand", "productmeasure")] == \
            [want[c] for c in ("chain", "dept", "category", "brand", "productmeasure")]

    # test = the notebook's eval set: sklearn's train_test_split(test_size=0.2, random_state=123), ids sorted
    from sklearn.model_selection import train_test_split

    ids = sorted(int(i) for i in table.index)
    _, notebook_test = train_test_split(np.array(ids), test_size=0.2, random_state=123)
    assert set(table.index[table["split"] == "test"]) == {str(i) for i in notebook_test}
    rest = len(ids) - len(notebook_test)
    train = int(np.round(0.875 * rest))  # splits.customer_split's exact 7:1 of the rest
    assert m.row_counts == {"train": train, "eval": rest - train, "test": len(notebook_test)}


def test_kaggle_horizons_two_companies_and_progress(kaggle_file, tmp_path):
    from mean_tf.data import kaggle_shoppers

    rows, _ = kaggle_file
    plain = pf.write_kaggle(tmp_path / "transactions.csv", rows)
    seen = []
    m = kaggle_shoppers.build(tmp_path / "kh", plain, [pf.COMPANY, pf.OTHER_COMPANIES[0]], protocol="horizons",
                              batch_bytes=4096, progress=lambda *a: seen.append(a))
    assert m.labels == ["cltv_30", "cltv_90", "cltv_180", "cltv_365"]
    assert {"company", "first_order_month"} <= set(m.categorical_features) and "units_bought" in m.numeric_features
    assert len(m.numeric_features) > 1 and m.slice_features == ["company"]
    table = _all_splits(m).set_index("customer_id")
    for customer, want in pf.KAGGLE_EXPECTED.items():
        got = table.loc[f"{pf.COMPANY}:{customer}"]
        assert [got[label] for label in m.labels] == pytest.approx([want[label] for label in m.labels])
    # the last-period column is the first day's spend (the notebook's baseline ranks by it)
    assert set(m.last_period_features) == set(m.labels)
    np.testing.assert_allclose(np.log(table[m.last_period_features["cltv_365"]]), table["log_calibration_value"],
                               rtol=1e-5)
    # 1001 also bought at the other company: a row of its own there
    assert f"{pf.OTHER_COMPANIES[0]}:1001" in table.index
    assert set(table["company"]) == {pf.COMPANY, pf.OTHER_COMPANIES[0]}
    # each company split on its own, as the notebook would
    from sklearn.model_selection import train_test_split

    for company, part in table.groupby("company"):
        ids = sorted(int(i.split(":")[1]) for i in part.index)
        _, test = train_test_split(np.array(ids), test_size=0.2, random_state=123)
        assert set(part.index[part["split"] == "test"]) == {f"{company}:{i}" for i in test}
    # progress: rows read grow in each pass and end at the file's row count
    for stage in ("pass 1/2", "pass 2/2"):
        counts = [a[0] for a in seen if a[3] == stage]
        assert len(counts) > 3 and counts == sorted(counts) and counts[-1] == len(rows)
        assert [a[1] for a in seen if a[3] == stage][-1] == os.path.getsize(plain)


def test_criteo_labels_features_and_split(criteo_file, tmp_path):
    rows, path = criteo_file
    out = tmp_path / "criteo"
    assert main(["data", "criteo-ssc", "--input", path, "--out", str(out), "--seed", "3"]) == 0
    m = read_manifest(out)
    assert m.labels == ["conversion_value"] and m.numeric_features == ["nb_clicks_1week", "product_price"]
    assert len(m.categorical_features) == 15 and not {"user_id", "product_title", "Sale"} & set(m.features)
    table = _all_splits(m).set_index("customer_id")
    assert len(table) == len(rows) == sum(m.row_counts.values())
    for row, (cutoff, label) in pf.CRITEO_EXPECTED.items():
        assert (table.loc[row, "cutoff"], table.loc[row, "conversion_value"]) == (cutoff, pytest.approx(label))
    order = table.sort_index(key=lambda s: s.astype(int))
    want = np.where(rows["Sale"] == 1, rows["SalesAmountInEuro"].clip(lower=0), 0.0)
    np.testing.assert_allclose(order["conversion_value"], want, rtol=1e-6)
    np.testing.assert_allclose(order["product_price"], rows["product_price"], rtol=1e-6)
    assert list(order["product_brand"]) == list(rows["product_brand"].astype(str))
    assert list(order["split"]) == list(hashed_split(np.arange(1, len(rows) + 1), 3))
    shares = {s: n / len(rows) for s, n in m.row_counts.items()}
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["eval"] - 0.1) < 0.02 and abs(shares["test"] - 0.2) < 0.03
    info = json.loads((out / "build_info.json").read_text())
    assert info["sale_rows_without_amount_labelled_0"] == int(((rows["Sale"] == 1) & (rows["SalesAmountInEuro"] < 0)).sum())
    # the same file with a header line gives the same dataset
    header = pf.write_criteo(tmp_path / "with_header.tsv", rows, header=True)
    assert main(["data", "criteo-ssc", "--input", header, "--out", str(tmp_path / "h"), "--seed", "3"]) == 0
    again = _all_splits(read_manifest(tmp_path / "h")).set_index("customer_id").loc[table.index]
    pd.testing.assert_frame_equal(again, table)


def _one_error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_error_line_and_writes_nothing(kaggle_file, criteo_file, tmp_path, capsys):
    rows, kaggle = kaggle_file
    crows, criteo = criteo_file
    out = tmp_path / "out"
    no_amount = pf.write_kaggle(tmp_path / "no_amount.csv", rows.drop(columns=["purchaseamount"]))
    assert "missing column(s) ['purchaseamount']" in _one_error_line(
        capsys, ["data", "kaggle-shoppers", "--input", no_amount, "--out", str(out)])
    data = open(kaggle, "rb").read()
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) * 2 // 3])
    assert "cannot read" in _one_error_line(
        capsys, ["data", "kaggle-shoppers", "--input", str(tmp_path / "cut.csv.gz"), "--out", str(out)])
    assert "unknown company 999" in _one_error_line(
        capsys, ["data", "kaggle-shoppers", "--input", kaggle, "--company", f"{pf.COMPANY},999", "--out", str(out)])
    no_sale = pf.write_criteo(tmp_path / "no_sale.tsv", crows.drop(columns=["SalesAmountInEuro"]), header=True)
    assert "missing column(s) ['SalesAmountInEuro']" in _one_error_line(
        capsys, ["data", "criteo-ssc", "--input", no_sale, "--out", str(out)])
    short = pf.write_criteo(tmp_path / "short.tsv", crows.drop(columns=["user_id"]))
    assert "line 1 has 22 tab-separated fields" in _one_error_line(
        capsys, ["data", "criteo-ssc", "--input", short, "--out", str(out)])
    data = open(criteo, "rb").read()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    assert "cannot read after" in _one_error_line(
        capsys, ["data", "criteo-ssc", "--input", str(tmp_path / "cut.gz"), "--out", str(out)])
    bad_sale = crows.astype({"Sale": object})
    bad_sale.loc[5, "Sale"] = 7
    assert "'Sale' is 7 at row 6" in _one_error_line(capsys, [
        "data", "criteo-ssc", "--input", pf.write_criteo(tmp_path / "bad.tsv", bad_sale), "--out", str(out)])
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


MEMORY_PROBE = """
import json, resource, sys
from mean_tf.data import criteo_ssc, kaggle_shoppers, manifest


class Sink:
    # Stands in for the TFRecord writer (TensorFlow's, fixed-size buffers in C++): keeps no record, and keeps
    # TensorFlow's import out of the measured process.
    def __init__(self, path, compresslevel=6):
        open(path, "wb").close()

    def write(self, records):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


manifest.TFRecordGzipWriter = Sink
which, path, out = sys.argv[1:]
if which == "kaggle":
    kaggle_shoppers.read_shoppers(path, batch_bytes=1 << 18)
else:
    criteo_ssc.build(out, path, batch_bytes=1 << 18)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def _peak_rss(which, path, out) -> int:
    """Peak resident memory of a builder run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, which, str(path), str(out)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("which", ["kaggle", "criteo"])
def test_streaming_memory_stays_flat_as_the_file_grows(which, tmp_path):
    # Both files span many batches (of 256 KiB), so that only the number of batches differs.
    if which == "kaggle":  # 6x more rows, all after the shoppers' first days (half of another company)
        small = pf.write_kaggle(tmp_path / "small.csv", pf.kaggle_rows(2000, extra_rows=50_000))
        big = pf.write_kaggle(tmp_path / "big.csv", pf.kaggle_rows(2000, extra_rows=300_000))
    else:  # 5x more clicks
        small = pf.write_criteo(tmp_path / "small.tsv", pf.criteo_rows(5_000))
        big = pf.write_criteo(tmp_path / "big.tsv", pf.criteo_rows(25_000))
    grown = os.path.getsize(big) - os.path.getsize(small)
    assert grown > 10e6
    a, b = _peak_rss(which, small, tmp_path / "a"), _peak_rss(which, big, tmp_path / "b")
    # A builder holding the rows would hold at least their text size again (Arrow) or several times it (pandas).
    assert b - a < 0.2 * grown, (a, b, grown)
