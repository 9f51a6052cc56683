"""A synthetic CLTV data set at the MEAN paper's scale (22M rows x 720 features), with a known truth.

Generative story, per row (one customer, one snapshot):

1. Features. A 16-dimensional latent profile z ~ N(0, I). Each numeric feature is a noisy projection
   u = z . w_j + noise (uniform, variance 1) of two latent factors, shaped into one of five kinds: `gauss` (dense, rounded to
   1/64), `count` (zero-inflated integers, floor(expm1(max(0, a + b u)))), `money` (zero-inflated
   lognormal amounts, in cents), `flag` (0/1) and `ratio` (in (0, 1), 1/256 steps). Each categorical
   feature buckets another projection into a vocabulary of 2..100 values ("v000", "v001", ...).
   Features are therefore correlated with each other, as in real behavioural data.
2. Segments. The first `informative_numeric` (default 12) numeric and `informative_categorical` (default 2)
   categorical features are *informative*: from them a small random tanh network gives the probabilities
   p_s(x) of five latent segments, s = 0 non-payers and s = 1..4 spending regimes (rare small buyers ...
   frequent big spenders): the mixture of sub-distributions that MEAN assumes, with membership non-linear
   in the features. The network's weights are scaled by the number of inputs, so more informative
   features spread the same signal over more columns; the features themselves do not depend on how many
   are informative.
3. Labels. A payer in regime s buys as a Poisson process with rate lambda_s(x) (per day) and spends a
   lognormal(mu_s(x), sigma_s) amount per purchase; cltv_H is the spend in the first H days, so the four
   horizons are cumulative (monotone per row). About 90 % of rows have cltv_30 = 0 (fewer at longer
   horizons); positive values are long-tailed and multi-modal.
4. Oracle. E[cltv_H | x] = sum_s p_s(x) lambda_s(x) H exp(mu_s(x) + sigma_s^2 / 2) is exact and is
   written as `oracle_cltv_H`, so every results table can carry an "oracle" row.

Streaming: rows are made in blocks of BLOCK_ROWS from a generator seeded by (seed, block index), so a row
depends only on the seed and its index (not on shards or workers), and memory stays flat whatever
n_rows is: one block per worker is in memory at a time. Shards (contiguous block ranges) are written by
a pool of worker processes, each shard as train/eval/test files; row r goes to train if r % 10 < 7,
eval if r % 10 == 7, test otherwise (rows are i.i.d., one customer each, so this is a customer split).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from mean_tf.contract import HORIZONS, LABELS
from mean_tf import contract
from mean_tf.data import examples, manifest as mf
from mean_tf.errors import MeanTFError
from mean_tf.runtime.files import absolute

NAME = "synthetic"
BLOCK_ROWS = 4096
ORACLE = {lab: f"oracle_{lab}" for lab in LABELS}
CUTOFF = b"2024-01-01"
LATENT = 16
KINDS = ("gauss", "count", "money", "flag", "ratio")
KIND_P = (0.25, 0.30, 0.20, 0.10, 0.15)
INFORMATIVE_KINDS = ("money", "count", "gauss", "count", "money", "ratio", "flag", "gauss", "count", "money",
                     "gauss", "ratio")
VOCAB_SIZES = (2, 3, 4, 6, 8, 12, 20, 50, 100)
# Spending regimes 1..4 (segment 0 never buys): purchase rate per day, log-spend per purchase and its sd.
RATES = np.array([1 / 400, 1 / 120, 1 / 40, 1 / 10])
MU = np.array([3.0, 3.6, 4.4, 5.4])
SIGMA = np.array([0.5, 0.6, 0.7, 0.9])
INFORMATIVE_CATEGORICAL = 2
# Target mean segment shares (non-payers, regimes 1..4): ~90 % zeros at 30 days, ~75 % at 365.
SEGMENT_SHARES = np.array([0.70, 0.12, 0.09, 0.06, 0.03])
# ~128 MB of serialized rows per shard (before gzip): enough files that the Beam workers reading a split in
# parallel (a gzip file is read by one worker) finish together; docs/performance.md, section 4.
TARGET_BYTES_PER_SHARD = 128 * 2**20


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    n_rows: int
    n_features: int = 720
    categorical_share: float = 0.1
    seed: int = 0
    # None: the default (12 numeric, 2 categorical, at most what there is); a number must fit the features.
    informative_numeric: Optional[int] = None
    informative_categorical: Optional[int] = None

    @property
    def n_categorical(self) -> int:
        return min(self.n_features - 1, int(round(self.n_features * self.categorical_share)))

    @property
    def n_numeric(self) -> int:
        return self.n_features - self.n_categorical

    @property
    def n_informative_numeric(self) -> int:
        default = min(len(INFORMATIVE_KINDS), self.n_numeric)
        return default if self.informative_numeric is None else self.informative_numeric

    @property
    def n_informative_categorical(self) -> int:
        default = min(INFORMATIVE_CATEGORICAL, self.n_categorical)
        return default if self.informative_categorical is None else self.informative_categorical

    def check(self) -> None:
        if not isinstance(self.n_rows, int) or self.n_rows < 10:
            raise MeanTFError(f"--rows must be an integer >= 10, got {self.n_rows!r}")
        if not isinstance(self.n_features, int) or self.n_features < 2:
            raise MeanTFError(f"--features must be an integer >= 2, got {self.n_features!r}")
        if self.n_features > 100_000:
            raise MeanTFError(f"--features {self.n_features} is too many (at most 100000)")
        if not 0.0 <= self.categorical_share < 1.0:
            raise MeanTFError(f"--categorical-share must be in [0, 1), got {self.categorical_share!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise MeanTFError(f"--seed must be a non-negative integer, got {self.seed!r}")
        for flag, value, available, kind in (
                ("--informative-numeric", self.informative_numeric, self.n_numeric, "numeric"),
                ("--informative-categorical", self.informative_categorical, self.n_categorical, "categorical")):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= available):
                raise MeanTFError(f"{flag} must be an integer in [0, {available}] (the {kind} features of "
                                  f"--features {self.n_features}), got {value!r}")


class Generator:
    """All parameters of the generative story, drawn from the seed; `block(b)` makes rows of block b."""

    def __init__(self, spec: SyntheticSpec):
        spec.check()
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 1])  # parameters; rows use (seed, 100, block)
        nn, nc = spec.n_numeric, spec.n_categorical
        width = max(3, len(str(max(nn, nc) - 1)))
        self.numeric_names = [f"num_{j:0{width}d}" for j in range(nn)]
        self.categorical_names = [f"cat_{j:0{width}d}" for j in range(nc)]
        self.n_inf_num = spec.n_informative_numeric
        self.n_inf_cat = spec.n_informative_categorical
        self._draw_numeric(rng)
        self._draw_categorical(rng)
        self._draw_segment_model(rng)
        self._calibrate()

    @staticmethod
    def _loadings(rng, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """Each feature projects two random latent factors; noise sd in [0.3, 0.8], total variance 1."""
        W = np.zeros((LATENT, n))
        for j in range(n):
            W[rng.choice(LATENT, size=2, replace=False), j] = rng.normal(size=2)
        noise = rng.uniform(0.3, 0.8, size=n)
        W *= np.sqrt(1 - noise ** 2) / np.maximum(np.linalg.norm(W, axis=0), 1e-9)
        return W, noise

    def _draw_numeric(self, rng) -> None:
        nn = self.spec.n_numeric
        fixed = min(len(INFORMATIVE_KINDS), nn)  # the same kinds whatever the informative count
        self.kinds = np.array(list(INFORMATIVE_KINDS[:fixed]) + list(rng.choice(KINDS, size=nn - fixed, p=KIND_P)))
        self.W, self.noise = self._loadings(rng, nn)
        self.a = rng.uniform(-1.0, 0.5, size=nn)  # count offset, flag threshold, ratio shift
        self.b = rng.uniform(0.8, 1.5, size=nn)  # count slope, gauss scale
        self.loc = rng.normal(0, 2, size=nn)  # gauss location
        self.money_mu = rng.uniform(2.0, 5.0, size=nn)
        self.money_thr = rng.uniform(-0.5, 1.0, size=nn)
        self.money_sigma = rng.uniform(0.5, 1.2, size=nn)
        # columns grouped by kind, for the fast path of `_features`
        self._kind_perm = np.concatenate([np.flatnonzero(self.kinds == k) for k in KINDS]).astype(np.int64)
        self._kind_inv = np.argsort(self._kind_perm)
        counts = np.cumsum([0] + [int((self.kinds == k).sum()) for k in KINDS])
        self._kind_slices = {k: (int(counts[i]), int(counts[i + 1])) for i, k in enumerate(KINDS)}

    def _draw_categorical(self, rng) -> None:
        """Bucket sigmoid(1.7 u) into V values with random widths; random value labels."""
        nc = self.spec.n_categorical
        self.Wc, self.noise_c = self._loadings(rng, nc)
        self.vocab = rng.choice(VOCAB_SIZES, size=nc)
        vmax = int(self.vocab.max()) if nc else 1
        self.cat_edges = np.full((nc, vmax), 2.0)
        self.cat_perm = np.zeros((nc, vmax), dtype=np.int64)
        for j in range(nc):
            v = int(self.vocab[j])
            self.cat_edges[j, : v - 1] = np.cumsum(rng.dirichlet(np.full(v, 2.0)))[:-1]
            self.cat_perm[j, :v] = rng.permutation(v)
        self.value_strings = np.array([f"v{i:03d}".encode() for i in range(vmax)], dtype="S4")

    def _draw_segment_model(self, rng) -> None:
        """A random tanh network from the informative features to 5 segment logits, category effects,
        and the per-row modulation of each regime's rate and log-spend."""
        d = self.n_inf_num
        self.A1 = rng.normal(0, 1.5 / math.sqrt(max(d, 1)), size=(d, 16))
        self.b1 = rng.normal(0, 0.5, size=16)
        self.A2 = rng.normal(0, 1.2, size=(16, 5))
        emb_sd = 0.7 * math.sqrt(INFORMATIVE_CATEGORICAL / max(self.n_inf_cat, INFORMATIVE_CATEGORICAL))
        self.emb = [rng.normal(0, emb_sd, size=(int(self.vocab[j]), 5)) for j in range(self.n_inf_cat)]
        self.a_rate = rng.normal(0, 1.0 / math.sqrt(max(d, 1)), size=d)
        self.a_mu = rng.normal(0, 1.0 / math.sqrt(max(d, 1)), size=d)

    def _calibrate(self) -> None:
        """On a sample of its own stream: standardise the informative inputs, then fit the segment biases
        so that the mean segment shares are SEGMENT_SHARES."""
        n, root12 = 20_000, np.float32(math.sqrt(12.0))
        z = np.random.default_rng([self.spec.seed, 2]).normal(size=(n, LATENT))
        rng = np.random.default_rng([self.spec.seed, 3])
        eps = (rng.random(size=(n, self.n_inf_num), dtype=np.float32) - 0.5) * root12
        eps_cat = (rng.random(size=(n, self.n_inf_cat), dtype=np.float32) - 0.5) * root12
        num, cat = self._informative_features(z, eps, eps_cat)
        xi = self._informative(num)
        self.x_mean, self.x_std = xi.mean(0), np.maximum(xi.std(0), 1e-6)
        self.bias = np.log(SEGMENT_SHARES)
        for _ in range(30):
            self.bias += np.log(SEGMENT_SHARES / self._segment_probs(num, cat).mean(0))

    # ---- pieces
    def _shape(self, kind: str, v: np.ndarray, idx: np.ndarray) -> None:
        """Turn projections v [n, k] (float32) of numeric features `idx` of one kind into values, in place."""
        f32 = np.float32
        a, b = self.a[idx].astype(f32), self.b[idx].astype(f32)
        if kind == "gauss":
            v *= b
            v += self.loc[idx].astype(f32)
            v *= f32(64.0)
            np.round(v, out=v)
            v /= f32(64.0)
        elif kind == "count":
            v *= b
            v += a
            np.maximum(v, f32(0.0), out=v)
            np.expm1(v, out=v)
            np.floor(v, out=v)
        elif kind == "money":
            off = v <= self.money_thr[idx].astype(f32)
            v *= self.money_sigma[idx].astype(f32)
            v += self.money_mu[idx].astype(f32)
            np.exp(v, out=v)
            np.round(v, 2, out=v)
            v[off] = 0.0
        elif kind == "flag":
            v[...] = v > a
        else:  # ratio
            v *= f32(-1.5)
            v -= a
            np.exp(v, out=v)
            v += f32(1.0)
            np.divide(f32(256.0), v, out=v)
            np.round(v, out=v)
            v /= f32(256.0)

    def _categorical(self, z: np.ndarray, eps_cat: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Codes of categorical features `cols`; eps_cat [n, len(cols)] their noise."""
        cat = np.empty((len(z), len(cols)), dtype=np.int64)
        if len(cols):
            uc = z @ self.Wc[:, cols] + self.noise_c[cols] * eps_cat.astype(np.float64)
            q = 1.0 / (1.0 + np.exp(-1.7 * uc))  # in (0, 1)
            for i, j in enumerate(cols):
                v = int(self.vocab[j])
                cat[:, i] = self.cat_perm[j, np.searchsorted(self.cat_edges[j, : v - 1], q[:, i])]
        return cat

    def _features(self, z: np.ndarray, eps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Numeric [n, nn] float32 and categorical codes [n, nc]. Computed with the columns grouped by
        kind (contiguous slices are much faster than fancy indexing), then put back in feature order."""
        perm = self._kind_perm
        u = z.astype(np.float32) @ self.W[:, perm].astype(np.float32)
        u += self.noise[perm].astype(np.float32) * eps[:, perm]
        for kind, (lo, hi) in self._kind_slices.items():
            if hi > lo:
                self._shape(kind, u[:, lo:hi], perm[lo:hi])
        nn = self.spec.n_numeric
        return u[:, self._kind_inv], self._categorical(z, eps[:, nn:], np.arange(self.spec.n_categorical))

    def _informative_features(self, z: np.ndarray, eps: np.ndarray, eps_cat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Only the informative columns (same values as `_features` up to float rounding): for calibration."""
        idx = np.arange(self.n_inf_num)
        u = z.astype(np.float32) @ self.W[:, idx].astype(np.float32)
        u += self.noise[idx].astype(np.float32) * eps[:, idx]
        for kind in KINDS:
            cols = np.flatnonzero(self.kinds[idx] == kind)
            if len(cols):
                v = u[:, cols]
                self._shape(kind, v, idx[cols])
                u[:, cols] = v
        return u, self._categorical(z, eps_cat, np.arange(self.n_inf_cat))

    def _informative(self, num: np.ndarray) -> np.ndarray:
        x = num[:, : self.n_inf_num].copy()
        logs = np.isin(self.kinds[: self.n_inf_num], ("count", "money"))
        x[:, logs] = np.log1p(x[:, logs])
        return x

    def _segment_probs(self, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        x = (self._informative(num) - self.x_mean) / self.x_std
        h = np.tanh(x @ self.A1 + self.b1)
        logits = h @ self.A2 + self.bias
        if x.shape[1] >= 2:  # an explicit interaction: big spenders need both of two signals
            logits[:, 4] += 0.8 * np.tanh(x[:, 0]) * np.tanh(x[:, 1])
        for j in range(self.n_inf_cat):
            logits += self.emb[j][cat[:, j]]
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def _regime_params(self, num: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Per-row purchase rates [n, 4] and log-spend means [n, 4] of the four regimes."""
        x = (self._informative(num) - self.x_mean) / self.x_std
        r = np.tanh(x @ self.a_rate)
        m = np.tanh(x @ self.a_mu)
        rates = RATES[None, :] * np.exp(0.3 * r)[:, None]
        mus = MU[None, :] + 0.4 * m[:, None]
        return rates, mus

    @staticmethod
    def _expected_value(p: np.ndarray, rates: np.ndarray, mus: np.ndarray) -> np.ndarray:
        """E[cltv_H | x] [n, 4]: segment probabilities x purchase rate x H x mean lognormal spend."""
        per_day = (p[:, 1:] * rates * np.exp(mus + SIGMA[None, :] ** 2 / 2)).sum(1)
        return per_day[:, None] * np.asarray(HORIZONS, dtype=np.float64)[None, :]

    def expected_value(self, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        """The oracle of rows with numeric values `num` [n, nn] and categorical codes `cat` [n, nc] (the
        features as written): E[cltv_H | x], [n, 4]."""
        return self._expected_value(self._segment_probs(num, cat), *self._regime_params(num))

    # ---- one block
    def block(self, b: int) -> Dict[str, np.ndarray]:
        """Rows [b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, n_rows)): numeric [m, nn] float32,
        categorical [m, nc] as S4 strings, labels/oracle [m, 4] float32, customer ids, row indices, and the
        latent truth (not written to the files): segment [m] and segment_probs [m, 5]."""
        start = b * BLOCK_ROWS
        m = min(BLOCK_ROWS, self.spec.n_rows - start)
        rng = np.random.default_rng([self.spec.seed, 100, b])
        nn, nc = self.spec.n_numeric, self.spec.n_categorical
        z = rng.normal(size=(m, LATENT))
        eps = rng.random(size=(m, nn + nc), dtype=np.float32)  # uniform noise, variance 1 (3x cheaper than normal)
        eps -= 0.5
        eps *= np.float32(math.sqrt(12.0))
        num, cat = self._features(z, eps)
        p = self._segment_probs(num, cat)
        rates, mus = self._regime_params(num)
        oracle = self._expected_value(p, rates, mus)
        # segment draw and purchases per horizon interval
        seg = (rng.random(m)[:, None] > np.cumsum(p, 1)[:, :-1]).sum(1)
        payer = np.flatnonzero(seg > 0)
        widths = np.diff((0,) + HORIZONS).astype(np.float64)
        spend = np.zeros((m, len(HORIZONS)))
        if len(payer):
            s = seg[payer] - 1
            lam = rates[payer, s]
            counts = rng.poisson(lam[:, None] * widths[None, :])  # [P, 4]
            flat = counts.ravel()
            total = int(flat.sum())
            if total:
                cell = np.repeat(np.arange(flat.size), flat)
                row = cell // len(HORIZONS)
                amounts = np.exp(mus[payer[row], s[row]] + SIGMA[s[row]] * rng.standard_normal(total))
                sums = np.bincount(cell, weights=amounts, minlength=flat.size).reshape(counts.shape)
                spend[payer] = sums
        labels = np.round(np.cumsum(spend, 1), 2)
        rows = np.arange(start, start + m)
        ids = np.char.add(b"s", np.char.zfill(rows.astype("S10"), 10))
        cat_s = self.value_strings[cat] if nc else np.zeros((m, 0), dtype="S4")
        return {"rows": rows, "customer_id": ids, "numeric": num.astype(np.float32), "categorical": cat_s,
                "labels": labels.astype(np.float32), "oracle": oracle.astype(np.float32), "segment": seg,
                "segment_probs": p.astype(np.float32)}

    # ---- metadata
    def feature_docs(self) -> Dict[str, str]:
        docs = {}
        kind_doc = {"gauss": "dense gaussian-like value (1/64 steps)", "count": "zero-inflated count",
                    "money": "zero-inflated lognormal amount", "flag": "0/1 flag", "ratio": "share in (0, 1)"}
        for j, name in enumerate(self.numeric_names):
            docs[name] = f"synthetic {kind_doc[self.kinds[j]]}" + (" (informative)" if j < self.n_inf_num else "")
        for j, name in enumerate(self.categorical_names):
            docs[name] = f"synthetic categorical, {int(self.vocab[j])} values" + (" (informative)" if j < self.n_inf_cat else "")
        return docs

    def manifest(self) -> mf.Manifest:
        money = [self.numeric_names[j] for j in np.flatnonzero(self.kinds == "money")]
        return mf.Manifest(
            name=NAME, splits={}, split_rule="customer", split_seed=self.spec.seed, id_columns=list(mf.ID_COLUMNS),
            numeric_features=list(self.numeric_names), money_features=money,
            categorical_features=list(self.categorical_names),
            slice_features=self.categorical_names[:1], labels=list(LABELS), oracle_columns=dict(ORACLE),
            last_period_features={}, bgnbd_features={}, feature_docs=self.feature_docs(),
        )


def split_of_rows(rows: np.ndarray) -> np.ndarray:
    """0 train (r % 10 < 7), 1 eval (== 7), 2 test (8, 9)."""
    r = rows % 10
    return np.where(r < 7, 0, np.where(r == 7, 1, 2))


def default_shards(n_rows: int, n_features: int) -> int:
    """About 128 MB of serialized rows per shard (~22 bytes per feature value): 1M x 720 -> 120 shards."""
    row_bytes = 22 * (n_features + 8) + 60
    blocks = math.ceil(n_rows / BLOCK_ROWS)
    return int(max(1, min(blocks, math.ceil(n_rows * row_bytes / TARGET_BYTES_PER_SHARD))))


_GEN_CACHE: Dict[SyntheticSpec, Generator] = {}


def _generator(spec: SyntheticSpec) -> Generator:
    if spec not in _GEN_CACHE:
        _GEN_CACHE.clear()
        _GEN_CACHE[spec] = Generator(spec)
    return _GEN_CACHE[spec]


def encoder_columns(block: Dict[str, np.ndarray]):
    """(floats [m, f], bytes columns) of a `Generator.block`, in the manifest's float_columns / bytes_columns
    order: what `mean_tf.data.examples.ExampleEncoder.encode` takes."""
    floats = np.concatenate([block["numeric"], block["labels"], block["oracle"]], axis=1)
    cutoff = np.full(len(block["rows"]), CUTOFF, dtype="S10")
    categorical = [block["categorical"][:, j] for j in range(block["categorical"].shape[1])]
    return floats, [block["customer_id"], cutoff] + categorical


def write_shard(spec: SyntheticSpec, shard: int, n_shards: int, folder: str, compresslevel: int = 1) -> dict:
    """Write one shard's train/eval/test files; returns row counts and zero counts per split."""
    gen = _generator(spec)
    n_blocks = math.ceil(spec.n_rows / BLOCK_ROWS)
    b0, b1 = shard * n_blocks // n_shards, (shard + 1) * n_blocks // n_shards
    m = gen.manifest()
    encoder = examples.ExampleEncoder(m.float_columns, m.bytes_columns)
    writers = [examples.TFRecordGzipWriter(Path(folder) / examples.shard_name(s, shard, n_shards), compresslevel) for s in contract.SPLITS]
    zeros = np.zeros((3, len(LABELS)), dtype=np.int64)
    sums = np.zeros((3, 2 * len(LABELS)))
    try:
        for b in range(b0, b1):
            d = gen.block(b)
            floats, columns = encoder_columns(d)
            which = split_of_rows(d["rows"])
            for s in range(3):
                sel = np.flatnonzero(which == s)
                if not len(sel):
                    continue
                writers[s].write(encoder.encode(floats[sel], [c[sel] for c in columns]))
                zeros[s] += (d["labels"][sel] <= 0).sum(0)
                sums[s] += np.concatenate([d["labels"][sel], d["oracle"][sel]], axis=1).sum(0, dtype=np.float64)
    finally:
        for w in writers:
            w.close()
    return {"rows": [w.rows for w in writers], "zeros": zeros.tolist(), "sums": sums.tolist()}


def _write_shard_args(args):
    return write_shard(*args)


def build(out: Union[str, Path], n_rows: int, n_features: int = 720, seed: int = 0, categorical_share: float = 0.1,
          shards: Optional[int] = None, workers: Optional[int] = None, compresslevel: int = 1,
          progress=None, informative_numeric: Optional[int] = None,
          informative_categorical: Optional[int] = None) -> mf.Manifest:
    """Generate the data set into `out` (atomically); returns its manifest.

    `shards`: file sets per split (default `default_shards`); `workers`: processes (default: CPU count,
    at most `shards`; 1 = in this process); `compresslevel`: gzip level (1 = fastest; TensorFlow reads
    any). `progress(done_shards, n_shards)` is called as shards finish. `informative_numeric` /
    `informative_categorical`: how many features carry the signal (default 12 and 2).
    """
    t0 = time.time()
    spec = SyntheticSpec(int(n_rows), int(n_features), float(categorical_share), int(seed),
                         informative_numeric, informative_categorical)
    spec.check()
    mf.check_output_dir(out)
    n_blocks = math.ceil(spec.n_rows / BLOCK_ROWS)
    n_shards = default_shards(spec.n_rows, spec.n_features) if shards is None else int(shards)
    if n_shards < 1:
        raise MeanTFError(f"--shards must be >= 1, got {shards}")
    n_shards = min(n_shards, n_blocks)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), n_shards))
    if not 0 <= compresslevel <= 9:
        raise MeanTFError(f"--compresslevel must be 0..9, got {compresslevel}")
    gen = _generator(spec)
    m = gen.manifest()
    with mf.atomic_output_dir(out) as tmp:
        jobs = [(spec, s, n_shards, str(tmp), compresslevel) for s in range(n_shards)]
        results = []
        if workers == 1:
            for i, j in enumerate(jobs):
                results.append(write_shard(*j))
                if progress:
                    progress(i + 1, n_shards)
        else:
            import multiprocessing as mp
            import sys

            # fork is cheap and needs no `if __name__ == "__main__"` guard in the caller's script, but is
            # unsafe once TensorFlow (threads) is loaded: then spawn.
            method = "spawn" if "tensorflow" in sys.modules else "fork"
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
                for i, r in enumerate(pool.map(_write_shard_args, jobs)):
                    results.append(r)
                    if progress:
                        progress(i + 1, n_shards)
        rows = np.sum([r["rows"] for r in results], axis=0)
        zeros = np.sum([r["zeros"] for r in results], axis=0)
        sums = np.sum([r["sums"] for r in results], axis=0)
        splits = {s: [examples.shard_name(s, k, n_shards) for k in range(n_shards)] for s in contract.SPLITS}
        m = dataclasses.replace(
            m, splits=splits, row_counts={s: int(rows[i]) for i, s in enumerate(contract.SPLITS)},
            zero_shares={s: {lab: round(float(zeros[i, k] / max(rows[i], 1)), 4) for k, lab in enumerate(LABELS)}
                         for i, s in enumerate(contract.SPLITS)},
        )
        mf.write_manifest(m, tmp)
        info = {
            "builder": "mean-tf data synthetic", "n_rows": spec.n_rows, "n_features": spec.n_features,
            "n_numeric": spec.n_numeric, "n_categorical": spec.n_categorical, "seed": spec.seed,
            "categorical_share": spec.categorical_share, "block_rows": BLOCK_ROWS, "shards": n_shards,
            "workers": workers, "compresslevel": compresslevel, "seconds": round(time.time() - t0, 2),
            "informative_numeric": gen.n_inf_num, "informative_categorical": gen.n_inf_cat,
            "informative_features": gen.numeric_names[: gen.n_inf_num] + gen.categorical_names[: gen.n_inf_cat],
            "segment_shares_target": SEGMENT_SHARES.tolist(), "regime_rates_per_day": RATES.tolist(),
            "regime_log_spend_mu": MU.tolist(), "regime_log_spend_sigma": SIGMA.tolist(),
            "mean_label": {s: {lab: float(sums[i, k] / max(rows[i], 1)) for k, lab in enumerate(LABELS)} for i, s in enumerate(contract.SPLITS)},
            "mean_oracle": {s: {lab: float(sums[i, 4 + k] / max(rows[i], 1)) for k, lab in enumerate(LABELS)} for i, s in enumerate(contract.SPLITS)},
        }
        (tmp / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    m = dataclasses.replace(m, root=absolute(out))
    return m
