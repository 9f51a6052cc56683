"""The synthetic generator: determinism (independent of shards and workers), the label shape the paper
describes (zero-inflated, cumulative horizons, latent segments), exact oracle, and flat memory."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mean_tf.data import read_manifest, read_split, synthetic
from mean_tf.errors import MeanTFError


def _digest(folder):
    return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(folder)) if f.endswith(".tfrecord.gz")}


def test_same_seed_same_bytes_whatever_the_workers_and_rows_independent_of_shards(tmp_path):
    kw = dict(n_rows=9_000, n_features=24, seed=3)
    a = synthetic.build(tmp_path / "a", shards=3, workers=1, **kw)
    b = synthetic.build(tmp_path / "b", shards=3, workers=2, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a.to_dict() == b.to_dict() and a.row_counts == {"train": 6300, "eval": 900, "test": 1800}
    c = synthetic.build(tmp_path / "c", shards=1, workers=1, **kw)
    ta = read_split(a, "test").sort_values("customer_id").reset_index(drop=True)
    tc = read_split(c, "test").sort_values("customer_id").reset_index(drop=True)
    assert ta.equals(tc)
    d = synthetic.build(tmp_path / "d", shards=1, workers=1, **{**kw, "seed": 4})
    assert not read_split(d, "test").sort_values("customer_id").reset_index(drop=True).equals(tc)
    assert len(ta) == 1800 and ta["customer_id"].str.match(r"^s\d{10}$").all()


def test_files_and_manifest(tmp_path):
    m = synthetic.build(tmp_path / "s", n_rows=5_000, n_features=30, seed=0, workers=1)
    back = read_manifest(tmp_path / "s")
    assert back.to_dict() == m.to_dict()
    assert len(back.numeric_features) + len(back.categorical_features) == 30
    assert len(back.categorical_features) == 3 and set(back.money_features) <= set(back.numeric_features)
    assert back.oracle_columns == {f"cltv_{h}": f"oracle_cltv_{h}" for h in (30, 90, 180, 365)}
    df = read_split(back, "train")
    y = df[back.labels].to_numpy()
    assert len(df) == 3_500 and (y >= 0).all() and (np.diff(y, axis=1) >= 0).all()
    assert set(df[back.categorical_features[0]]) <= {f"v{i:03d}" for i in range(100)}
    info = json.loads((tmp_path / "s" / "build_info.json").read_text())
    assert info["n_rows"] == 5_000 and info["seed"] == 0


def test_labels_are_zero_inflated_cumulative_and_follow_latent_segments():
    gen = synthetic.Generator(synthetic.SyntheticSpec(n_rows=60_000, n_features=40, seed=0))
    blocks = [gen.block(b) for b in range(12)]
    y = np.concatenate([d["labels"] for d in blocks]).astype(np.float64)
    oracle = np.concatenate([d["oracle"] for d in blocks]).astype(np.float64)
    seg = np.concatenate([d["segment"] for d in blocks])
    zero = (y <= 0).mean(0)
    assert 0.87 < zero[0] < 0.93 and (np.diff(zero) < -0.02).all() and zero[3] > 0.6
    assert (np.diff(y, axis=1) >= 0).all()
    assert (y[seg == 0] == 0).all()  # non-payers never buy
    shares = np.bincount(seg, minlength=5) / len(seg)
    np.testing.assert_allclose(shares, synthetic.SEGMENT_SHARES, atol=0.02)
    # regimes are distinct sub-distributions: mean spend per buyer rises by regime
    per_regime = [y[(seg == s) & (y[:, 3] > 0), 3].mean() for s in range(1, 5)]
    assert all(b > 1.5 * a for a, b in zip(per_regime, per_regime[1:]))
    # long tail: the top 1 % of rows hold a large share of the 365-day value
    top = np.sort(y[:, 3])[::-1][: len(y) // 100].sum() / y[:, 3].sum()
    assert top > 0.2
    # the oracle is the expected value: unbiased on average, and it ranks better than any single feature
    np.testing.assert_allclose(oracle.mean(0), y.mean(0), rtol=0.1)
    num = np.concatenate([d["numeric"] for d in blocks]).astype(np.float64)
    corr_oracle = np.corrcoef(oracle[:, 3], y[:, 3])[0, 1]
    best_feature = np.nanmax(np.abs([np.corrcoef(num[:, j], y[:, 3])[0, 1] for j in range(num.shape[1])]))
    assert corr_oracle > best_feature + 0.05
    # membership depends on the features: the payer probability varies a lot between rows
    p_payer = 1 - np.concatenate([d["segment_probs"] for d in blocks])[:, 0]
    lo, hi = np.quantile(p_payer, [0.05, 0.95])
    assert hi - lo > 0.4, (lo, hi)


def _codes(categorical) -> np.ndarray:
    """Value indices of categorical strings "v012" -> 12, as the generator's segment model reads them."""
    return np.vectorize(lambda v: int(v[1:]), otypes=[np.int64])(np.asarray(categorical, dtype=str))


def _moved(gen, num, cat) -> tuple:
    """Per numeric and per categorical feature: mean |log change| of the 365-day oracle when that feature alone
    moves (numeric: + half its sd; categorical: the next value of its vocabulary)."""
    base = gen.expected_value(num, cat)[:, 3]
    numeric = []
    for j in range(num.shape[1]):
        moved = num.copy()
        moved[:, j] += np.float32(0.5 * num[:, j].std() + 1e-3)
        numeric.append(np.abs(np.log(gen.expected_value(moved, cat)[:, 3] / base)).mean())
    categorical = []
    for j in range(cat.shape[1]):
        moved = cat.copy()
        moved[:, j] = (moved[:, j] + 1) % int(gen.vocab[j])
        categorical.append(np.abs(np.log(gen.expected_value(num, moved)[:, 3] / base)).mean())
    return np.array(numeric), np.array(categorical)


def test_informative_count_spreads_the_signal_over_the_same_features():
    """Only the informative features move the oracle; with 54 + 6 of them no 12 carry most of it; the
    features themselves are the same whatever the count."""
    sparse = synthetic.Generator(synthetic.SyntheticSpec(n_rows=4_096, n_features=200, seed=0))
    spread = synthetic.Generator(synthetic.SyntheticSpec(n_rows=4_096, n_features=200, seed=0,
                                                         informative_numeric=54, informative_categorical=6))
    a, b = sparse.block(0), spread.block(0)
    np.testing.assert_array_equal(a["numeric"], b["numeric"])
    np.testing.assert_array_equal(a["categorical"], b["categorical"])
    assert not np.allclose(a["oracle"], b["oracle"])
    num, cat = b["numeric"][:1_000], _codes(b["categorical"][:1_000])
    for gen, n_num, n_cat in ((sparse, 12, 2), (spread, 54, 6)):
        numeric, categorical = _moved(gen, num, cat)
        assert np.flatnonzero(numeric > 1e-6).tolist() == list(range(n_num))
        assert np.flatnonzero(categorical > 1e-6).tolist() == list(range(n_cat))
        top12 = np.sort(numeric)[::-1][:12].sum() / numeric.sum()
        assert (top12 < 0.5) if gen is spread else top12 == 1.0, top12


def test_oracle_stays_the_expected_value_of_the_written_features_with_spread_signal(tmp_path, capsys):
    """The oracle column is E[cltv | x] of the features as written (recomputed from the files), unbiased on
    average, and it ranks better than any single feature; the counts reach the build info and the docs."""
    from mean_tf import cli
    from mean_tf.evaluation import metrics

    out = tmp_path / "spread"
    assert cli.main(["data", "synthetic", "--out", str(out), "--rows", "3000", "--features", "200",
                     "--informative-numeric", "54", "--informative-categorical", "6", "--workers", "1"]) == 0
    info = json.loads((out / "build_info.json").read_text())
    assert (info["informative_numeric"], info["informative_categorical"]) == (54, 6)
    assert len(info["informative_features"]) == 60
    m = read_manifest(out)
    assert sum("(informative)" in doc for doc in m.feature_docs.values()) == 60
    gen = synthetic.Generator(synthetic.SyntheticSpec(n_rows=3_000, n_features=200, seed=0, informative_numeric=54,
                                                      informative_categorical=6))
    test = read_split(m, "test")
    expected = gen.expected_value(test[m.numeric_features].to_numpy(np.float32), _codes(test[m.categorical_features]))
    np.testing.assert_allclose(test[list(m.oracle_columns.values())].to_numpy(float), expected, rtol=2e-6)

    big = synthetic.Generator(synthetic.SyntheticSpec(n_rows=80_000, n_features=200, seed=0, informative_numeric=54,
                                                      informative_categorical=6))
    rows = [big.block(b) for b in range(20)]
    y = np.concatenate([d["labels"] for d in rows]).astype(np.float64)
    oracle = np.concatenate([d["oracle"] for d in rows]).astype(np.float64)
    num = np.concatenate([d["numeric"] for d in rows]).astype(np.float64)
    np.testing.assert_allclose(oracle.mean(0), y.mean(0), rtol=0.1)
    best_feature = max(abs(metrics.normalized_gini(y[:, 3], num[:, j])) for j in range(num.shape[1]))
    assert metrics.normalized_gini(y[:, 3], oracle[:, 3]) > best_feature + 0.1

    capsys.readouterr()
    assert cli.main(["data", "synthetic", "--out", str(tmp_path / "bad"), "--rows", "100", "--features", "20",
                     "--informative-numeric", "30"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--informative-numeric must be an integer in [0, 18] (the numeric features of --features 20), got 30")
    assert not (tmp_path / "bad").exists()


def test_bad_arguments():
    with pytest.raises(MeanTFError, match="--rows must be an integer >= 10"):
        synthetic.SyntheticSpec(n_rows=5).check()
    with pytest.raises(MeanTFError, match="--categorical-share"):
        synthetic.SyntheticSpec(n_rows=100, categorical_share=1.5).check()
    with pytest.raises(MeanTFError, match="--features"):
        synthetic.SyntheticSpec(n_rows=100, n_features=1).check()


PEAK_SCRIPT = textwrap.dedent("""
    import resource, sys
    from mean_tf.data import synthetic
    synthetic.build(sys.argv[1], n_rows=int(sys.argv[2]), n_features=10, seed=0, workers=1)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_memory_stays_flat_from_100k_to_1m_rows(tmp_path):
    """Peak RSS of a fresh process (ru_maxrss, one worker, 10 features): 1M rows within 1.5x of 100k rows."""
    peaks = {}
    for rows in (100_000, 1_000_000):
        out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / f"s{rows}"), str(rows)],
                             capture_output=True, text=True, check=True, timeout=300)
        peaks[rows] = int(out.stdout.split()[-1])
    assert read_manifest(tmp_path / "s1000000").row_counts["train"] == 700_000
    print(f"peak RSS (KB) by rows: {peaks}")
    assert peaks[1_000_000] < 1.5 * peaks[100_000], peaks
