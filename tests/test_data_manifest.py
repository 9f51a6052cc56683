"""Dataset files: the tf.Example encoder against tfx_bsl's, the TFRecord writer, the write/read round
trip, manifest validation, atomic writes, and the table checks before writing."""
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from mean_tf.data import examples, manifest as mf
from mean_tf.data.manifest import Manifest, read_manifest, read_split, write_dataset
from mean_tf.errors import MeanTFError


def _frame(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    c30 = np.round(rng.exponential(10, rows) * (rng.random(rows) < 0.3), 2)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(rows)],
        "cutoff": "2011-01-01",
        "recency_days": rng.integers(0, 300, rows).astype(float),
        "net_spend": np.round(rng.lognormal(3, 1, rows), 2),
        "spend_last_30d": np.round(rng.lognormal(1, 1, rows), 2),
        "country": rng.choice(["United Kingdom", "Česko", "EIRE"], rows),
        "active_90d": rng.choice(["0", "1"], rows),
        "cltv_30": c30,
        "cltv_365": c30 + np.round(rng.exponential(50, rows), 2),
        "split": np.array(["train"] * 7 + ["eval"] + ["test"] * 2)[np.arange(rows) % 10],
    })


def _manifest(**kw):
    base = dict(name="toy", splits={}, numeric_features=["recency_days", "net_spend", "spend_last_30d"],
                money_features=["net_spend", "spend_last_30d"], categorical_features=["country", "active_90d"],
                slice_features=["country", "active_90d"], labels=["cltv_30", "cltv_365"],
                last_period_features={"cltv_30": "spend_last_30d"},
                feature_docs={"recency_days": "days since the last purchase"})
    base.update(kw)
    return Manifest(**base)


def test_encoder_output_equals_tfx_bsl_examples_and_the_writer_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    floats = rng.normal(size=(5, 3)).astype(np.float32)
    names = ["a", "long_feature_name_" * 8, "z"]  # a key over 127 bytes needs a 2-byte varint
    var = np.array([v.encode() for v in ["x", "", "Ünïcode", "y" * 300, "q"]], dtype=object)
    fixed = np.array([b"v01", b"v02", b"v03", b"v04", b"v05"], dtype="S3")
    records = examples.ExampleEncoder(names, ["var", "fixed"]).encode(floats, [var, fixed])
    offsets = pa.array(np.arange(6, dtype=np.int64))
    columns = [pa.array(floats[:, j]) for j in range(3)] + [pa.array(var, pa.binary()), pa.array(fixed, pa.binary())]
    lists = [pa.LargeListArray.from_arrays(offsets, c) for c in columns]  # tf.Example features are lists
    batch = pa.RecordBatch.from_arrays(lists, names + ["var", "fixed"])
    library = example_coder.RecordBatchToExamplesEncoder().encode(batch)
    assert [tf.train.Example.FromString(r) for r in records] == [tf.train.Example.FromString(r) for r in library]
    fixed_only = examples.ExampleEncoder(names, ["fixed"]).encode(floats, [fixed])
    assert isinstance(fixed_only, np.ndarray)  # all fixed width: one NumPy matrix
    ex = tf.train.Example.FromString(fixed_only[3].tobytes()).features.feature
    assert ex["z"].float_list.value[0] == floats[3, 2] and ex["fixed"].bytes_list.value[0] == b"v04"
    sizes = []
    for level in (0, 9):
        path = tmp_path / f"level{level}.tfrecord.gz"
        with examples.TFRecordGzipWriter(path, compresslevel=level) as w:
            w.write(records)
            w.write(fixed_only)
        assert w.rows == 10
        back = [r.numpy() for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
        assert back == records + [row.tobytes() for row in fixed_only]
        sizes.append(path.stat().st_size)
    assert sizes[0] > sum(len(r) for r in back) > sizes[1]  # level 0 stores, level 9 compresses


def test_write_then_read_round_trip(tmp_path):
    frame = _frame()
    m = write_dataset(frame, tmp_path / "ds", _manifest())
    assert sorted(os.listdir(tmp_path / "ds")) == ["eval-00000-of-00001.tfrecord.gz", "manifest.json",
                                                   "test-00000-of-00001.tfrecord.gz", "train-00000-of-00001.tfrecord.gz"]
    back = read_manifest(tmp_path / "ds")
    assert back.to_dict() == m.to_dict() and back.row_counts == {"train": 28, "eval": 4, "test": 8}
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["format"] == "tfrecord_gzip"
    for split in ("train", "eval", "test"):
        want = frame[frame["split"] == split].reset_index(drop=True)
        got = read_split(back, split)
        assert list(got.columns) == back.columns
        for c in back.bytes_columns:
            assert got[c].tolist() == want[c].tolist()
        for c in back.float_columns:
            np.testing.assert_allclose(got[c].to_numpy(), want[c].to_numpy(np.float32), rtol=0, atol=0)
        assert back.zero_shares[split]["cltv_30"] == pytest.approx((want["cltv_30"] == 0).mean(), abs=1e-4)
    few = read_split(str(tmp_path / "ds"), "train", columns=["cltv_365", "country"], max_rows=5)
    assert list(few.columns) == ["cltv_365", "country"] and len(few) == 5


@pytest.mark.parametrize("change, message", [
    (dict(money_features=["country"]), "'money_features' names \\['country'\\], not in numeric_features"),
    (dict(slice_features=["nope"]), "'slice_features' names \\['nope'\\]"),
    (dict(labels=[]), "'labels' is empty"),
    (dict(numeric_features=["recency_days", "cltv_30"]), "'cltv_30' is listed twice"),
    (dict(last_period_features={"cltv_99": "net_spend"}), "keys \\['cltv_99'\\] that are not labels"),
    (dict(bgnbd_features={"frequency": "net_spend"}), "'bgnbd_features' must map exactly"),
    (dict(format="csv"), "format 'csv' is not supported"),
    (dict(split_rule=""), "'split_rule' must be a non-empty string"),
])
def test_manifest_validation_names_the_key(tmp_path, change, message):
    write_dataset(_frame(), tmp_path / "ds", _manifest())
    d = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    d.update(change)
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(MeanTFError, match=message):
        read_manifest(tmp_path / "ds")


def test_manifest_reports_missing_files_and_keys(tmp_path):
    write_dataset(_frame(), tmp_path / "ds", _manifest())
    os.remove(tmp_path / "ds" / "eval-00000-of-00001.tfrecord.gz")
    with pytest.raises(MeanTFError, match="split 'eval' file 'eval-00000-of-00001.tfrecord.gz' does not exist"):
        read_manifest(tmp_path / "ds")
    (tmp_path / "ds" / "manifest.json").write_text("{}")
    with pytest.raises(MeanTFError, match="missing key 'name'"):
        read_manifest(tmp_path / "ds")
    with pytest.raises(MeanTFError, match="no dataset manifest"):
        read_manifest(tmp_path / "nowhere")


def test_writes_are_atomic(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    write_dataset(_frame(seed=0), out, _manifest())
    before = read_split(read_manifest(out), "test")
    # a failure half-way leaves the earlier dataset untouched and no temporary folder behind
    calls = {"n": 0}
    real = mf.write_frame

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kw)

    monkeypatch.setattr(mf, "write_frame", failing)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(_frame(seed=1), out, _manifest())
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    pd.testing.assert_frame_equal(read_split(read_manifest(out), "test"), before)
    # a dataset folder is replaced
    write_dataset(_frame(seed=1), out, _manifest())
    assert not read_split(read_manifest(out), "test").equals(before)
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    # any other non-empty folder is refused
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(MeanTFError, match="is not empty and holds no dataset"):
        write_dataset(_frame(), other, _manifest())
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.assign(cltv_365=f["cltv_30"] * 0.5), "label 'cltv_365' < 'cltv_30' at row"),
    (lambda f: f.assign(cltv_30=-f["cltv_365"]), "label 'cltv_30' is negative"),
    (lambda f: f.assign(net_spend=np.where(f.index == 3, np.nan, f["net_spend"])), "'net_spend' has a non-finite value \\(nan\\) at row 3"),
    (lambda f: f.drop(columns=["country"]), "missing column\\(s\\) \\['country'\\]"),
    (lambda f: f.assign(split="holdout"), "unknown split name\\(s\\) \\['holdout'\\]"),
])
def test_table_checks_before_writing(tmp_path, mutate, message):
    with pytest.raises(MeanTFError, match=message):
        write_dataset(mutate(_frame()), tmp_path / "ds", _manifest())
    assert not (tmp_path / "ds").exists()
