"""Bad input through `mean_tf.cli.main`: one `error:` line naming the file, column or value, exit code 2,
no traceback unless --debug, and nothing half-written. Covers the transaction builder (`data online-retail`),
a user's feature table (`data table`), `train` (manifest and config) and a failure while writing.
"""
import json
import os

import numpy as np
import pandas as pd
import pytest

from mean_tf.cli import main
from mean_tf.data import manifest as mf
from mean_tf.errors import MeanTFError

RETAIL_COLUMNS = ["customer_id", "invoice_date", "description", "quantity", "unit_price", "country"]


def retail_lines(rows=300, seed=0) -> pd.DataFrame:
    """Online Retail II-shaped lines over 2010-01-01 .. 2011-12-01 (a 2010-06-01 cutoff has a full year after it)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": rng.integers(1, 40, rows).astype("int32"),
        "invoice_date": pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D"),
        "description": rng.choice(["mug", "lamp", "card"], rows),
        "quantity": rng.integers(1, 6, rows).astype("int32"),
        "unit_price": rng.uniform(1, 5, rows).astype("float32"),
        "country": rng.choice(["United Kingdom", "France"], rows),
    })


def feature_table(rows=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c30 = np.round(rng.exponential(10, rows) * (rng.random(rows) < 0.4), 2)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(rows)], "cutoff": "2011-01-01",
        "recency_days": rng.integers(0, 300, rows).astype(float), "net_spend": np.round(rng.lognormal(3, 1, rows), 2),
        "country": rng.choice(["UK", "FR"], rows),
        "cltv_30": c30, "cltv_365": c30 + np.round(rng.exponential(50, rows), 2),
    })


def _edit(frame, **cells):
    """A copy with single cells changed: column=(row, value); columns become object when needed."""
    out = frame.copy()
    for column, (row, value) in cells.items():
        if isinstance(value, str) and out[column].dtype != object:
            out[column] = out[column].astype(object)
        out.loc[row, column] = value
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small valid dataset folder (for `train` inputs that are bad elsewhere)."""
    root = tmp_path_factory.mktemp("dataset")
    path = root / "table.csv"
    feature_table().to_csv(path, index=False)
    assert main(["data", "table", "--input", str(path), "--out", str(root / "ds"), "--categorical", "country"]) == 0
    return root / "ds"


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _assert_one_error_line(code, err, *expected):
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"


# --- the transaction builder: `mean-tf data online-retail --input FILE` -------------------------------------
RETAIL_CASES = {
    "missing column": (lambda f: f.drop(columns=["country"]), ["missing column(s) ['country']"]),
    "text in a numeric column": (lambda f: _edit(f.astype({"quantity": str}), quantity=(3, "three")),
                                 ["column 'quantity'", "'three'", "row 3"]),
    "NaN in a numeric column": (lambda f: _edit(f.astype({"unit_price": float}), unit_price=(5, np.nan)),
                                ["column 'unit_price' is missing (NaN)", "row 5"]),
    "infinite value": (lambda f: _edit(f.astype({"unit_price": float}), unit_price=(6, np.inf)),
                       ["column 'unit_price'", "inf", "row 6"]),
    "negative money": (lambda f: _edit(f.astype({"unit_price": float}), unit_price=(7, -2.5)),
                       ["column 'unit_price' has a negative value -2.5", "row 7"]),
    "unparseable date": (lambda f: _edit(f.astype({"invoice_date": str}), invoice_date=(8, "31/02/2010")),
                         ["column 'invoice_date' has an unparseable date '31/02/2010'", "row 8"]),
    "no rows": (lambda f: f.iloc[:0], ["the table is empty"]),
}


@pytest.mark.parametrize("case", sorted(RETAIL_CASES))
def test_transaction_file_errors(case, tmp_path, capsys):
    mutate, expected = RETAIL_CASES[case]
    path = tmp_path / "lines.parquet"
    mutate(retail_lines()).to_parquet(path)
    code, err = _run(["data", "online-retail", "--input", str(path), "--out", str(tmp_path / "out"),
                      "--cutoffs", "2010-06-01"], capsys)
    _assert_one_error_line(code, err, str(path), *expected)
    assert sorted(os.listdir(tmp_path)) == ["lines.parquet"]  # nothing half-written


@pytest.mark.parametrize("cutoffs, expected", [
    ("2011-06-01", "cutoff 2011-06-01 is outside the data: its 365-day label window ends 2012-05-31"),
    ("2009-06-01", "cutoff 2009-06-01 is outside the data: no transaction before it"),
    ("2010-13-01", "cutoff '2010-13-01' is not a date"),
])
def test_cutoff_outside_the_data_or_not_a_date(cutoffs, expected, tmp_path, capsys):
    path = tmp_path / "lines.parquet"
    retail_lines().to_parquet(path)
    code, err = _run(["data", "online-retail", "--input", str(path), "--out", str(tmp_path / "out"),
                      "--cutoffs", cutoffs], capsys)
    _assert_one_error_line(code, err, expected)
    assert not (tmp_path / "out").exists()


def test_empty_files_are_named(tmp_path, capsys):
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "empty.txt").write_text("")
    code, err = _run(["data", "online-retail", "--input", str(tmp_path / "empty.parquet"),
                      "--out", str(tmp_path / "a")], capsys)
    _assert_one_error_line(code, err, f"{tmp_path / 'empty.parquet'}: the file is empty")
    code, err = _run(["data", "cdnow", "--input", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "b")], capsys)
    _assert_one_error_line(code, err, f"{tmp_path / 'empty.txt'}: the file is empty")
    assert sorted(os.listdir(tmp_path)) == ["empty.parquet", "empty.txt"]


def test_extra_column_is_a_one_line_warning_and_the_build_goes_on(tmp_path, capsys):
    path = tmp_path / "lines.parquet"
    retail_lines().assign(discount=0.1).to_parquet(path)
    code, err = _run(["data", "online-retail", "--input", str(path), "--out", str(tmp_path / "out"),
                      "--cutoffs", "2010-06-01"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "unexpected column(s) ['discount']" in warnings[0] and str(path) in warnings[0]
    assert mf.read_manifest(tmp_path / "out").row_counts["train"] > 0


# --- a user's feature table: `mean-tf data table --input FILE.csv` -------------------------------------------
TABLE_CASES = {
    "missing column": (lambda f: f.drop(columns=["net_spend"]), ["missing column(s) ['net_spend']"]),
    "missing id column": (lambda f: f.drop(columns=["cutoff"]), ["missing column(s) ['cutoff']"]),
    "text in a numeric column": (lambda f: _edit(f, net_spend=(4, "12,50 EUR")),
                                 ["column 'net_spend' has a non-numeric value '12,50 EUR' at line 6"]),
    "NaN feature": (lambda f: _edit(f, recency_days=(5, np.nan)),
                    ["column 'recency_days' has a non-finite value (nan) at line 7"]),
    "infinite feature": (lambda f: _edit(f, net_spend=(6, np.inf)),
                         ["column 'net_spend' has a non-finite value (inf) at line 8"]),
    "absurd magnitude": (lambda f: _edit(f, net_spend=(3, 1e30)),
                         ["column 'net_spend' has 1e+30 at line 5, beyond the bound |x| <= 1e+15"]),
    "negative label": (lambda f: _edit(f, cltv_30=(7, -3.0)), ["label 'cltv_30' is negative (-3.0) at line 9"]),
    "all-zero label": (lambda f: f.assign(cltv_30=0.0),
                       ["train split: label 'cltv_30' is 0 in all", "nothing to learn"]),
    "duplicate customer and cutoff": (lambda f: _edit(f, customer_id=(8, "c3")),
                                      ["duplicate row for (customer_id='c3', cutoff='2011-01-01') at line 10"]),
    "unparseable cutoff date": (lambda f: _edit(f, cutoff=(9, "2011-02-30")),
                                ["column 'cutoff' has an unparseable date '2011-02-30' at line 11"]),
    "header only": (lambda f: f.iloc[:0], ["the table has no rows"]),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_feature_table_errors(case, tmp_path, capsys):
    mutate, expected = TABLE_CASES[case]
    path = tmp_path / "features.csv"
    mutate(feature_table()).to_csv(path, index=False)
    code, err = _run(["data", "table", "--input", str(path), "--out", str(tmp_path / "out"),
                      "--categorical", "country", "--numeric", "recency_days,net_spend"], capsys)
    _assert_one_error_line(code, err, str(path), *expected)
    assert sorted(os.listdir(tmp_path)) == ["features.csv"]


def test_a_truncated_parquet_exits_2_every_time(tmp_path):
    """pandas.read_parquet left an Arrow thread that aborted the process at exit (134) about half the time."""
    import subprocess
    import sys

    path = tmp_path / "features.parquet"
    feature_table(rows=2000).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code = ("import sys; from mean_tf.cli import main; "
            f"sys.exit(main(['data', 'table', '--input', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]))")
    for _ in range(8):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        assert run.returncode == 2 and "terminate called" not in run.stderr, run.stderr[-500:]
        assert len(errors) == 1 and f"{path}: cannot read" in errors[0]
    assert not (tmp_path / "out").exists()


def test_feature_table_empty_file_and_unexpected_column(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    code, err = _run(["data", "table", "--input", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "a")], capsys)
    _assert_one_error_line(code, err, f"{tmp_path / 'empty.csv'}: the file is empty")

    path = tmp_path / "features.csv"
    feature_table().assign(notes="vip").to_csv(path, index=False)
    code, err = _run(["data", "table", "--input", str(path), "--out", str(tmp_path / "b"), "--categorical", "country",
                      "--numeric", "recency_days,net_spend"], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        f"warning: {path}: ignoring unexpected column(s) ['notes'] (not an id, label, split or listed feature)"]
    m = mf.read_manifest(tmp_path / "b")
    assert m.numeric_features == ["recency_days", "net_spend"] and m.labels == ["cltv_30", "cltv_365"]


# --- `mean-tf train`: the manifest and the config ------------------------------------------------------------
def test_manifest_pointing_to_missing_files(dataset, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((dataset / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))  # the split files were not copied
    code, err = _run(["train", "--model", "mean", "--data", str(broken / "manifest.json"),
                      "--work", str(tmp_path / "work"), "--json", str(tmp_path / "m.json")], capsys)
    _assert_one_error_line(code, err, str(broken / "manifest.json"), "split 'train' file",
                           "train-00000-of-00001.tfrecord.gz' does not exist")
    code, err = _run(["train", "--model", "mean", "--data", str(tmp_path / "nowhere")], capsys)
    _assert_one_error_line(code, err, f"no dataset manifest at {tmp_path / 'nowhere'}")
    assert sorted(os.listdir(tmp_path)) == ["broken"]


def _damaged_copy(dataset, folder, how):
    """A copy of the dataset whose train file is cut to half its bytes, or holds only its first 5 records."""
    import shutil

    import tensorflow as tf

    shutil.copytree(dataset, folder)
    train = folder / "train-00000-of-00001.tfrecord.gz"
    if how == "truncated":
        data = train.read_bytes()
        train.write_bytes(data[: len(data) // 2])
    else:
        records = [r.numpy() for r in tf.data.TFRecordDataset(str(train), compression_type="GZIP").take(5)]
        with tf.io.TFRecordWriter(str(train), options="GZIP") as writer:
            for record in records:
                writer.write(record)
    return train


@pytest.mark.parametrize("command", ["train", "pipeline"])
def test_a_split_file_cut_short_is_named_before_anything_runs(command, dataset, tmp_path, capsys):
    train = _damaged_copy(dataset, tmp_path / "cut", "truncated")
    argv = (["train", "--model", "mean", "--data", str(tmp_path / "cut"), "--work", str(tmp_path / "work")]
            if command == "train" else ["pipeline", "run", "--data", str(tmp_path / "cut"),
                                        "--out", str(tmp_path / "out")])
    code, err = _run(argv, capsys)
    _assert_one_error_line(code, err, f"{train}: corrupt or truncated after record", "rebuild the dataset")
    assert sorted(os.listdir(tmp_path)) == ["cut"]  # no work folder, no pipeline output, no metadata.sqlite


def test_a_split_file_with_fewer_records_than_the_manifest_is_refused(dataset, tmp_path, capsys):
    _damaged_copy(dataset, tmp_path / "short", "fewer")
    expected = mf.read_manifest(tmp_path / "short").row_counts["train"]
    code, err = _run(["train", "--model", "mean", "--data", str(tmp_path / "short"), "--work",
                      str(tmp_path / "work")], capsys)
    _assert_one_error_line(code, err, f"split 'train' has 5 records in its files but the manifest says {expected}")


@pytest.mark.parametrize("argv, expected", [
    (["train", "--model", "mean", "--data", "{dir}/nowhere"], "no dataset manifest"),
    (["train", "--model", "mean", "--data", "{dataset}", "--set", "n_experts=3"], "unknown key 'n_experts'"),
    (["pipeline", "run", "--data", "{dir}/nowhere", "--out", "{dir}/out"], "no dataset manifest"),
    (["pipeline", "run", "--data", "{dataset}", "--out", "{dir}/out", "--set", "tau=0"], "tau=0 must be > 0"),
    (["pipeline", "compile", "--data", "{dir}/nowhere", "--pipeline-root", "gs://b/r", "--serving-dir", "gs://b/s",
      "--image", "gcr.io/p/mean-tf:1", "--data-root", "gs://b/d"], "no dataset manifest"),
    (["data", "table", "--input", "{dir}/none.csv", "--out", "{dir}/o"], "not found"),
])
def test_bad_arguments_fail_in_seconds_before_tensorflow_loads(argv, expected, dataset, tmp_path):
    import subprocess
    import sys
    import time

    argv = [a.format(dir=tmp_path, dataset=dataset) for a in argv]
    code = f"import sys; from mean_tf.cli import main; sys.exit(main({argv!r}))"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert run.returncode == 2 and expected in run.stderr, run.stderr[-300:]
    assert elapsed < 3.0, f"{argv}: {elapsed:.1f} s"


@pytest.mark.parametrize("argv, expected", [
    (["--set", "num_distributions=1"], "config: num_distributions=1 must be at least 2"),
    (["--set", "tau=0"], "config: tau=0 must be > 0"),
    (["--set", "huber_delta=-1"], "config: huber_delta=-1 must be > 0"),
    (["--set", "learning_rate=0"], "config: learning_rate=0 must be > 0"),
    (["--set", "tau=warm"], "config: tau='warm' must be a finite number"),
    (["--set", "shared_units=64"], "config: shared_units=64 must be a list of numbers"),
    (["--set", "use_kl=yes"], "config: use_kl='yes' must be true or false"),
    (["--set", "n_experts=3"], "config: unknown key 'n_experts'"),
    (["--config", "{dir}/unknown.json"], "config: unknown key 'dropout_rate'"),
    (["--config", "{dir}/range.yaml"], "config: tau=-2.0 must be > 0"),
    (["--config", "{dir}/broken.json"], "config: {dir}/broken.json is not valid JSON"),
    (["--config", "{dir}/none.json"], "config: cannot read {dir}/none.json: No such file or directory"),
])
def test_config_errors(argv, expected, dataset, tmp_path, capsys):
    (tmp_path / "unknown.json").write_text(json.dumps({"tau": 2.0, "dropout_rate": 0.1}))
    (tmp_path / "range.yaml").write_text("num_distributions: 4\ntau: -2.0\n")
    (tmp_path / "broken.json").write_text("{tau: 2")
    before = sorted(os.listdir(tmp_path))
    argv = [a.format(dir=tmp_path) for a in argv]
    code, err = _run(["train", "--model", "mean", "--data", str(dataset), "--work", str(tmp_path / "work"), *argv],
                     capsys)
    _assert_one_error_line(code, err, expected.format(dir=tmp_path))
    assert sorted(os.listdir(tmp_path)) == before


# --- --debug, and a failure while writing -------------------------------------------------------------------
def test_debug_shows_the_exception_instead(tmp_path):
    with pytest.raises(MeanTFError, match="no dataset manifest"):
        main(["--debug", "train", "--model", "mean", "--data", str(tmp_path)])


def test_a_write_that_fails_midway_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    path = tmp_path / "features.csv"
    feature_table().to_csv(path, index=False)
    out = tmp_path / "out"
    real_write_frame = mf.write_frame
    calls = []

    def failing_write_frame(frame, target, *args, **kwargs):
        calls.append(target)
        if len(calls) == 2:  # the train file is written, then the disk "fills up"
            raise OSError(28, "No space left on device", str(target))
        return real_write_frame(frame, target, *args, **kwargs)

    monkeypatch.setattr(mf, "write_frame", failing_write_frame)
    code, err = _run(["data", "table", "--input", str(path), "--out", str(out), "--categorical", "country"], capsys)
    _assert_one_error_line(code, err, "No space left on device", "eval-00000-of-00001.tfrecord.gz")
    assert os.path.exists(calls[0]) is False and sorted(os.listdir(tmp_path)) == ["features.csv"]
