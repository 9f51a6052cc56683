"""`mean-tf data ...`: the three builders through the CLI, and bad input as one `error:` line, exit code 2."""
import numpy as np

from mean_tf.cli import main
from mean_tf.data import read_manifest, read_split


def test_online_retail_out_of_time_split(tmp_path):
    out = tmp_path / "retail"
    assert main(["data", "online-retail", "--out", str(out), "--cutoffs", "2010-11-01,2010-12-01", "--split", "time"]) == 0
    m = read_manifest(out)
    assert m.name == "online_retail_ii" and m.split_rule == "time"
    assert m.row_counts["test"] == 4336
    test = read_split(m, "test", columns=["cutoff", "cltv_30", "country", "active_90d"])
    assert set(test["cutoff"]) == {"2010-12-01"} and set(test["active_90d"]) == {"0", "1"}
    assert set(read_split(m, "train", columns=["cutoff"])["cutoff"]) == {"2010-11-01"}
    assert m.zero_shares["test"]["cltv_30"] == np.round((test["cltv_30"] == 0).mean(), 4)
    assert m.bgnbd_features["T"] == "bg_T" and m.last_period_features["cltv_90"] == "spend_last_90d"
    assert {"country", "active_90d"} <= set(m.slice_features)
    assert set(m.feature_docs) == set(m.numeric_features + m.categorical_features)


def test_cdnow_default(tmp_path):
    out = tmp_path / "cdnow"
    assert main(["data", "cdnow", "--out", str(out)]) == 0
    m = read_manifest(out)
    assert sum(m.row_counts.values()) == 23570 and m.split_rule == "customer"
    ids = {s: set(read_split(m, s, columns=["customer_id"])["customer_id"]) for s in m.splits}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["eval"]) and not (ids["eval"] & ids["test"])
    assert abs(len(ids["train"]) / 23570 - 0.7) < 0.001


def test_synthetic_small(tmp_path):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), "--rows", "3000", "--features", "12", "--workers", "1"]) == 0
    m = read_manifest(out)
    assert m.row_counts == {"train": 2100, "eval": 300, "test": 600} and m.oracle_columns


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert main(["data", "cdnow", "--out", str(tmp_path / "a"), "--cutoffs", "1998-01-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cutoff 1998-01-01 is outside the data") and err.count("\n") == 1
    assert main(["data", "synthetic", "--out", str(tmp_path / "b"), "--rows", "5"]) == 2
    assert "--rows must be an integer >= 10" in capsys.readouterr().err
    assert main(["data", "online-retail", "--out", str(tmp_path / "c"), "--input", str(tmp_path / "none.parquet")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["data", "cdnow", "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing half-written
