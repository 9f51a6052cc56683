"""Dataset folders: `manifest.json` (write, read, validate), `read_split` (one split as a pandas DataFrame) and
`write_dataset` (a snapshot table -> folder; the records through `mean_tf.data.examples`).

The format is the one in docs/design.md, "Dataset files": a folder with `manifest.json` and gzipped
TFRecord files of `tf.train.Example` (`<split>-NNNNN-of-MMMMM.tfrecord.gz`), numeric features, labels
and oracle columns as `float_list` of length 1, categorical features and id columns as `bytes_list`
of length 1 (UTF-8).

Only `read_split` and `Manifest.feature_spec` import TensorFlow.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from mean_tf.contract import SCORE_SPLIT, SPLITS
from mean_tf.data.examples import shard_name, write_frame
from mean_tf.runtime import files as fs
from mean_tf.errors import MeanTFError

MANIFEST_FILE = "manifest.json"
FORMAT = "tfrecord_gzip"
ID_COLUMNS = ("customer_id", "cutoff")
BGNBD_KEYS = ("frequency", "recency", "T", "monetary_value")


@dataclasses.dataclass
class Manifest:
    """manifest.json in memory. `root` (the dataset folder) is not serialised."""

    name: str
    splits: Dict[str, List[str]]
    numeric_features: List[str]
    categorical_features: List[str]
    labels: List[str]
    format: str = FORMAT
    split_rule: str = "customer"
    split_seed: int = 0
    id_columns: List[str] = dataclasses.field(default_factory=lambda: list(ID_COLUMNS))
    money_features: List[str] = dataclasses.field(default_factory=list)
    slice_features: List[str] = dataclasses.field(default_factory=list)
    oracle_columns: Dict[str, str] = dataclasses.field(default_factory=dict)
    last_period_features: Dict[str, str] = dataclasses.field(default_factory=dict)
    bgnbd_features: Dict[str, str] = dataclasses.field(default_factory=dict)
    feature_docs: Dict[str, str] = dataclasses.field(default_factory=dict)
    row_counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    zero_shares: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    root: Optional[str] = None

    KEY_ORDER = (
        "name", "format", "splits", "split_rule", "split_seed", "id_columns", "numeric_features",
        "money_features", "categorical_features", "slice_features", "labels", "oracle_columns",
        "last_period_features", "bgnbd_features", "feature_docs", "row_counts", "zero_shares",
    )

    @property
    def features(self) -> List[str]:
        """Model inputs: numeric then categorical features."""
        return list(self.numeric_features) + list(self.categorical_features)

    @property
    def float_columns(self) -> List[str]:
        """Columns stored as float_list: numeric features, labels, oracle columns."""
        return list(self.numeric_features) + list(self.labels) + list(self.oracle_columns.values())

    @property
    def bytes_columns(self) -> List[str]:
        """Columns stored as bytes_list: id columns, categorical features."""
        return list(self.id_columns) + list(self.categorical_features)

    @property
    def columns(self) -> List[str]:
        return list(self.id_columns) + self.features + list(self.labels) + list(self.oracle_columns.values())

    def files(self, split: str) -> List[str]:
        """Absolute paths (or URIs) of a split's files."""
        if split not in self.splits:
            raise MeanTFError(f"dataset {self.name!r} has no split {split!r} (has {sorted(self.splits)})")
        return [os.path.join(self.root or ".", f) for f in self.splits[split]]

    def feature_spec(self, columns: Optional[Iterable[str]] = None) -> dict:
        """`tf.io.parse_example` spec for the given columns (default: all), scalar FixedLenFeatures."""
        import tensorflow as tf

        floats = set(self.float_columns)
        wanted = self.columns if columns is None else list(columns)
        unknown = [c for c in wanted if c not in self.columns]
        if unknown:
            raise MeanTFError(f"dataset {self.name!r} has no column(s) {unknown}")
        return {c: tf.io.FixedLenFeature([], tf.float32 if c in floats else tf.string) for c in wanted}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: d[k] for k in self.KEY_ORDER}

    @classmethod
    def from_dict(cls, d: Mapping, root: Optional[str] = None, source: str = "manifest") -> "Manifest":
        validate_manifest(d, source=source)
        kwargs = {k: d[k] for k in cls.KEY_ORDER if k in d}
        return cls(root=root, **kwargs)


_REQUIRED = ("name", "format", "splits", "numeric_features", "categorical_features", "labels")


def validate_manifest(d: Mapping, root: Optional[Union[str, Path]] = None, source: str = "manifest") -> None:
    """Raise MeanTFError naming the key at fault; with `root`, also check that the split files exist."""
    if not isinstance(d, Mapping):
        raise MeanTFError(f"{source}: expected a JSON object, got {type(d).__name__}")
    for k in _REQUIRED:
        if k not in d:
            raise MeanTFError(f"{source}: missing key {k!r}")
    if d["format"] != FORMAT:
        raise MeanTFError(f"{source}: format {d['format']!r} is not supported (only {FORMAT!r})")

    def str_list(key, required=True):
        v = d.get(key, [] if not required else None)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise MeanTFError(f"{source}: {key!r} must be a list of column names")
        return v

    def str_map(key):
        v = d.get(key, {})
        if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
            raise MeanTFError(f"{source}: {key!r} must map names to column names")
        return v

    numeric = str_list("numeric_features")
    categorical = str_list("categorical_features")
    labels = str_list("labels")
    ids = str_list("id_columns", required=False) if "id_columns" in d else list(ID_COLUMNS)
    money = str_list("money_features", required=False)
    slices = str_list("slice_features", required=False)
    oracle = str_map("oracle_columns")
    last = str_map("last_period_features")
    bg = str_map("bgnbd_features")
    docs = str_map("feature_docs")
    scoring = isinstance(d["splits"], Mapping) and list(d["splits"]) == [SCORE_SPLIT]
    if not labels and not scoring:
        raise MeanTFError(f"{source}: 'labels' is empty (only a scoring dataset, with the one split "
                          f"{SCORE_SPLIT!r}, has no labels)")
    if labels and scoring:
        raise MeanTFError(f"{source}: a scoring dataset (split {SCORE_SPLIT!r}) has no labels, but lists {labels}")
    if not numeric and not categorical:
        raise MeanTFError(f"{source}: no features (numeric_features and categorical_features are both empty)")
    all_cols = ids + numeric + categorical + labels + list(oracle.values())
    seen = set()
    for c in all_cols:
        if c in seen:
            raise MeanTFError(f"{source}: column {c!r} is listed twice (id, feature, label and oracle columns must be distinct)")
        seen.add(c)
    for key, names, pool, pool_name in (
        ("money_features", money, numeric, "numeric_features"),
        ("slice_features", slices, numeric + categorical, "the features"),
        ("last_period_features", list(last.values()), numeric, "numeric_features"),
        ("bgnbd_features", list(bg.values()), numeric, "numeric_features"),
        ("feature_docs", list(docs), numeric + categorical, "the features"),
    ):
        bad = [x for x in names if x not in pool]
        if bad:
            raise MeanTFError(f"{source}: {key!r} names {bad}, not in {pool_name}")
    for key, m in (("oracle_columns", oracle), ("last_period_features", last)):
        bad = [k for k in m if k not in labels]
        if bad:
            raise MeanTFError(f"{source}: {key!r} has keys {bad} that are not labels")
    if bg and sorted(bg) != sorted(BGNBD_KEYS):
        raise MeanTFError(f"{source}: 'bgnbd_features' must map exactly {list(BGNBD_KEYS)} (or be empty), got {sorted(bg)}")
    splits = d["splits"]
    if not isinstance(splits, Mapping) or not splits:
        raise MeanTFError(f"{source}: 'splits' must map split names to lists of files")
    for split, files in splits.items():
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise MeanTFError(f"{source}: split {split!r} must list at least one file")
        for f in files:
            if os.path.isabs(f) or ".." in Path(f).parts:
                raise MeanTFError(f"{source}: split {split!r} file {f!r} must be relative to the manifest's folder")
            if root is not None and not fs.exists(os.path.join(str(root), f)):
                raise MeanTFError(f"{source}: split {split!r} file {f!r} does not exist")
    if not isinstance(d.get("split_rule", "customer"), str) or not d.get("split_rule", "customer"):
        raise MeanTFError(f"{source}: 'split_rule' must be a non-empty string (e.g. 'customer' or 'time')")
    if not isinstance(d.get("split_seed", 0), int):
        raise MeanTFError(f"{source}: 'split_seed' must be an integer")
    rc = d.get("row_counts", {})
    if not isinstance(rc, Mapping) or any(k not in splits or not isinstance(v, int) or v < 0 for k, v in rc.items()):
        raise MeanTFError(f"{source}: 'row_counts' must map split names to non-negative integers")
    zs = d.get("zero_shares", {})
    if not isinstance(zs, Mapping) or any(k not in splits or not isinstance(v, Mapping) for k, v in zs.items()):
        raise MeanTFError(f"{source}: 'zero_shares' must map split names to {{label: share}}")


def read_manifest(path: Union[str, Path], check_files: bool = True) -> Manifest:
    """Read and validate a manifest (the dataset folder or its manifest.json; a local path or a URI)."""
    p = str(path)
    if not p.endswith(MANIFEST_FILE) or fs.isdir(p):
        p = os.path.join(p, MANIFEST_FILE)
    if not fs.exists(p) or fs.isdir(p):
        raise MeanTFError(f"no dataset manifest at {p}")
    try:
        with fs.open_file(p) as f:
            d = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise MeanTFError(f"{p}: not valid JSON ({e})") from None
    folder = os.path.dirname(p)
    validate_manifest(d, root=folder if check_files else None, source=p)
    return Manifest.from_dict(d, root=folder if fs.is_uri(folder) else str(Path(folder).resolve()), source=p)


def write_manifest(manifest: Manifest, folder: Union[str, Path]) -> Path:
    d = manifest.to_dict()
    validate_manifest(d, root=folder, source=f"{folder}/{MANIFEST_FILE}")
    p = Path(folder) / MANIFEST_FILE
    p.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
    return p


def read_split(manifest: Union[Manifest, str, Path], split: str, columns: Optional[Sequence[str]] = None,
               batch_size: int = 4096, max_rows: Optional[int] = None):
    """Load one split into a pandas DataFrame (id and categorical columns as str, the rest float32).

    Reads the gzipped TFRecords with tf.data and batched `tf.io.parse_example`, files in manifest order.
    `columns` restricts what is parsed (default: every column); `max_rows` stops early.
    """
    import pandas as pd
    import tensorflow as tf

    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    files = m.files(split)
    missing = [f for f in files if not fs.exists(f)]
    if missing:
        raise MeanTFError(f"dataset {m.name!r}: split {split!r} file {missing[0]} does not exist")
    spec = m.feature_spec(columns)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if max_rows is not None:
        ds = ds.take(max_rows)
    ds = ds.batch(batch_size).map(lambda s: tf.io.parse_example(s, spec), num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True).prefetch(2)
    parts: Dict[str, list] = {c: [] for c in spec}
    try:
        for batch in ds.as_numpy_iterator():
            for c, v in batch.items():
                parts[c].append(v)
    except tf.errors.OpError as e:
        raise MeanTFError(f"dataset {m.name!r}: cannot read split {split!r}: {e.message.splitlines()[0]}") from None
    data = {}
    for c, spec_c in spec.items():
        if parts[c]:
            v = np.concatenate(parts[c])
        else:
            v = np.zeros(0, dtype=np.float32 if spec_c.dtype == tf.float32 else object)
        if spec_c.dtype == tf.string:
            v = _decode(v)
        data[c] = v
    return pd.DataFrame(data, columns=list(spec))


def _decode(v: np.ndarray) -> np.ndarray:
    if v.size == 0:
        return v.astype(object)
    try:
        return v.astype("S").astype("U").astype(object)  # fast path for ASCII
    except UnicodeDecodeError:
        return np.array([b.decode("utf-8") for b in v], dtype=object)


# ----------------------------------------------------------------------------------------------
# Writing a dataset folder
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output_dir(out: Union[str, Path], dataset: bool = True, last: str = MANIFEST_FILE) -> Iterator[Path]:
    """Yield a temporary folder next to `out`; on success it replaces `out` by rename, on error it is removed.

    With `dataset` (default), `out` may be missing, an empty folder or an earlier dataset (a folder with
    manifest.json); any other non-empty folder is refused, so that a typo cannot wipe unrelated files.
    `dataset=False` is for folders the code owns (e.g. a Transform cache): any earlier content is replaced.
    A URI `out` (gs://...): the temporary folder is local and `files.upload_dir` replaces `out` by it, the
    file `last` (default: manifest.json) last.
    """
    if fs.is_uri(out):
        if dataset:
            check_output_dir(out)
        with fs.scratch_dir(str(out)) as tmp:
            yield Path(tmp)
            fs.upload_dir(tmp, str(out), last=last)
        return
    out = Path(out).absolute()
    if dataset:
        check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_dir(out: Union[str, Path]) -> None:
    if fs.is_uri(out):
        import tensorflow as tf

        entries = {e.rstrip("/") for e in tf.io.gfile.listdir(str(out))} if fs.isdir(out) else set()
        if entries and not entries & {MANIFEST_FILE, fs.UPLOADING_MARKER}:
            raise MeanTFError(f"output folder {out} is not empty and holds no dataset (no {MANIFEST_FILE}); "
                              f"refusing to replace it: choose a new or empty folder")
        return
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise MeanTFError(f"output folder {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
            raise MeanTFError(f"output folder {out} is not empty and holds no dataset (no {MANIFEST_FILE}); "
                              f"refusing to replace it: choose a new or empty folder")


# Largest |value| a numeric feature or label may have: its square (variance analyzers) stays far inside
# float32 (3.4e38), and no real spend or count comes near it. `check_table(max_abs=...)` changes it.
MAX_ABS_VALUE = 1e15


def read_parquet(path: Union[str, Path]):
    """A parquet file as a DataFrame, read by pyarrow from its path.

    Not `pandas.read_parquet`: on a corrupt file it leaves an Arrow thread behind that aborts the process at
    exit ("terminate called without an active exception", exit 134) about half the time.
    """
    import pyarrow.parquet as pq

    return pq.read_table(str(path)).to_pandas()


def verify_split_files(manifest: Manifest) -> None:
    """Read every split file of the dataset end to end (gzip and TFRecord framing) and compare the record
    counts with the manifest's `row_counts`; MeanTFError naming the file and the record offset otherwise.

    A gzip TFRecord cut short otherwise reads as fewer records, silently.
    """
    import gzip
    import struct
    import zlib

    for split in manifest.splits:
        total = 0
        for path in manifest.files(split):
            count, offset = 0, 0
            try:
                if fs.is_uri(path) and not fs.exists(path):
                    raise FileNotFoundError(path)
                with fs.open_file(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    while True:
                        header = f.read(12)
                        if not header:
                            break
                        if len(header) < 12:
                            raise EOFError("a record header is cut short")
                        (length,) = struct.unpack("<Q", header[:8])
                        body = f.read(length + 4)
                        if len(body) < length + 4:
                            raise EOFError("a record is cut short")
                        count += 1
                        offset += 12 + length + 4
            except FileNotFoundError:
                raise MeanTFError(f"dataset {manifest.name!r}: split {split!r} file {path} does not exist") from None
            except (EOFError, OSError, zlib.error) as e:
                raise MeanTFError(f"{path}: corrupt or truncated after record {count} (uncompressed byte offset "
                                  f"{offset}): {e}; rebuild the dataset") from None
            total += count
        expected = manifest.row_counts.get(split)
        if expected is not None and total != expected:
            raise MeanTFError(f"dataset {manifest.name!r}: split {split!r} has {total} records in its files but the "
                              f"manifest says {expected} (a file was cut short or replaced); rebuild the dataset")


def zero_shares(frame, labels: Sequence[str]) -> Dict[str, float]:
    return {lab: (round(float((frame[lab].to_numpy() <= 0).mean()), 4) if len(frame) else 0.0) for lab in labels}


def require_features(dataset: Manifest, features: Sequence[str], of: str) -> None:
    """MeanTFError naming the first few of `features` (those `of` needs) that `dataset` lacks."""
    missing = [f for f in features if f not in dataset.features]
    if missing:
        raise MeanTFError(f"dataset {dataset.name!r} lacks feature(s) {missing[:5]} of {of}; build it with the "
                          f"same builder and options")


def check_table(frame, manifest: Manifest, source: str = "table", max_abs: float = MAX_ABS_VALUE) -> None:
    """Check a snapshot table against its manifest before writing: columns present, numeric columns
    finite and at most `max_abs` in magnitude, labels >= 0 and monotone in the manifest's label order, no missing ids or categories, no
    duplicate (id columns) row. Rows are named by index label: "line N" when the index is named "line"."""
    import pandas as pd

    def _where(frame, i):
        return f"{'line' if frame.index.name == 'line' else 'row'} {frame.index[i]}"

    missing = [c for c in manifest.columns if c not in frame.columns]
    if missing:
        raise MeanTFError(f"{source}: missing column(s) {missing}")

    for c in manifest.float_columns:
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raw = frame[c].iloc[i]
            what = (f"a non-numeric value {raw!r}" if isinstance(raw, (str, bytes))
                    else f"a non-finite value ({raw})")
            raise MeanTFError(f"{source}: column {c!r} has {what} at {_where(frame, i)}")
        huge = np.abs(v) > max_abs
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            raise MeanTFError(f"{source}: column {c!r} has {v[i]:g} at {_where(frame, i)}, beyond the bound "
                              f"|x| <= {max_abs:g} (mean_tf.data.manifest.MAX_ABS_VALUE)")
    for c in manifest.bytes_columns:
        bad = frame[c].isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MeanTFError(f"{source}: column {c!r} is missing at {_where(frame, i)}")
    ids = [c for c in manifest.id_columns if c in frame.columns]
    if ids:
        dup = frame.duplicated(subset=ids).to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            key = ", ".join(f"{c}={frame[c].iloc[i]!r}" for c in ids)
            raise MeanTFError(f"{source}: duplicate row for ({key}) at {_where(frame, i)}: "
                              f"each ({', '.join(ids)}) must appear once")
    prev = None
    for lab in manifest.labels:
        v = frame[lab].to_numpy(dtype=np.float64)
        if (v < 0).any():
            i = int(np.flatnonzero(v < 0)[0])
            raise MeanTFError(f"{source}: label {lab!r} is negative ({v[i]}) at {_where(frame, i)}")
        if prev is not None and (v < prev[1]).any():
            i = int(np.flatnonzero(v < prev[1])[0])
            raise MeanTFError(f"{source}: label {lab!r} < {prev[0]!r} at {_where(frame, i)} "
                              f"(labels must be cumulative in the horizon)")
        prev = (lab, v)


def check_labels_have_payers(frame, labels: Sequence[str], source: str = "table") -> None:
    """Refuse a label that is 0 in every row: a model has no payer to learn from (and no value buckets)."""
    for lab in labels:
        if len(frame) and not (frame[lab].to_numpy(dtype=np.float64) > 0).any():
            raise MeanTFError(f"{source}: label {lab!r} is 0 in all {len(frame)} rows: no customer spent anything "
                              f"in the label window, so there is nothing to learn (check the label column, or the cutoffs)")


def write_scoring_dataset(frame, out: Union[str, Path], manifest: Manifest, compresslevel: int = 6,
                          source: str = "table") -> Manifest:
    """Write a label-free table (features at a scoring date) as a scoring dataset: the one split
    `SCORE_SPLIT`, checked like a training table, atomically. Returns the written manifest."""
    if manifest.labels:
        raise MeanTFError(f"{source}: a scoring dataset has no labels, got {manifest.labels}")
    if not len(frame):
        raise MeanTFError(f"{source}: no rows to write")
    m = dataclasses.replace(manifest, splits={SCORE_SPLIT: [shard_name(SCORE_SPLIT, 0, 1)]}, zero_shares={})
    check_table(frame, m, source)
    with atomic_output_dir(out) as tmp:
        rows = write_frame(frame, tmp / shard_name(SCORE_SPLIT, 0, 1), m.float_columns, m.bytes_columns,
                           compresslevel=compresslevel)
        m = dataclasses.replace(m, row_counts={SCORE_SPLIT: rows})
        write_manifest(m, tmp)
    return dataclasses.replace(m, root=fs.absolute(out))


def write_dataset(frame, out: Union[str, Path], manifest: Manifest, split_column: str = "split",
                  compresslevel: int = 6, extra_files: Optional[Mapping[str, str]] = None,
                  source: str = "table") -> Manifest:
    """Write a snapshot table as a dataset folder, atomically.

    `frame` holds every column of `manifest.columns` plus `split_column` (the split name of each row);
    `manifest` gives the name, feature lists, labels and split rule/seed (its `splits`, `row_counts`
    and `zero_shares` are filled in here). One file per split. `extra_files` maps file names to text
    written next to the manifest (e.g. build_info.json). `source` names the table in error messages.
    Returns the written manifest.
    """
    if split_column not in frame.columns:
        raise MeanTFError(f"{source}: missing split column {split_column!r}")
    others = sorted(set(frame[split_column].astype(str)) - set(SPLITS))
    if others:
        raise MeanTFError(f"{source}: unknown split name(s) {others} in column {split_column!r} (use {list(SPLITS)})")
    if not len(frame):
        raise MeanTFError(f"{source}: no rows to write")
    # All three splits are written, an empty one as an empty file, so downstream code can rely on them.
    splits = list(SPLITS)
    m = dataclasses.replace(manifest, splits={s: [shard_name(s, 0, 1)] for s in splits})
    check_table(frame, m, source)
    check_labels_have_payers(frame[frame[split_column] == "train"], m.labels, f"{source}: train split")
    with atomic_output_dir(out) as tmp:
        rows, zeros = {}, {}
        for s in splits:
            part = frame[frame[split_column] == s]
            rows[s] = write_frame(part, tmp / shard_name(s, 0, 1), m.float_columns, m.bytes_columns,
                                  compresslevel=compresslevel)
            zeros[s] = zero_shares(part, m.labels)
        m = dataclasses.replace(m, row_counts=rows, zero_shares=zeros)
        write_manifest(m, tmp)
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text, encoding="utf-8")
    return dataclasses.replace(m, root=fs.absolute(out))
