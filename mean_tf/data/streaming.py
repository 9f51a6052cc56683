"""Large public files in and out, with memory bounded by a batch: delimited text (plain or gzip) read in
Arrow record batches (`batches`), and a dataset folder written chunk by chunk (`ChunkedDatasetWriter`, the
format of `manifest.write_dataset`). Bad input is a MeanTFError naming the file; `Progress` reports rows read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence

import numpy as np

from mean_tf.contract import SPLITS
from mean_tf.data import examples, manifest as mf
from mean_tf.errors import MeanTFError

BATCH_BYTES = 16 << 20  # text bytes parsed per batch
Progress = Callable[[int, int, int], None]  # (rows read, input bytes read, input bytes in all)


def check_input(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MeanTFError(f"{what} {p} not found")
    if p.stat().st_size == 0:
        raise MeanTFError(f"{p}: the file is empty")
    return p


def is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def first_line(path) -> str:
    """The first line of the (decompressed) file, without its line end."""
    try:
        with (gzip.open if is_gzip(path) else open)(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as e:
        raise MeanTFError(f"{path}: cannot read ({e})") from None


def batches(path, column_types: Mapping, *, delimiter: str = ",", column_names: Optional[Sequence[str]] = None,
            include_columns: Sequence[str] = (), nulls: bool = False, batch_bytes: int = BATCH_BYTES,
            progress: Optional[Progress] = None) -> Iterator:
    """Arrow record batches of a delimited text file without quoted line breaks (gzip detected by its magic bytes).

    The text is cut at line ends into pieces of about `batch_bytes` and each piece parsed on its own, so at
    most one piece is held (Arrow's own streaming reader reads ahead without bound), on this thread (Arrow's
    thread pool sometimes aborts the process at exit: "terminate called without an active exception"). `column_names`: the file
    has no header line and these are its columns; otherwise the first line names them. `nulls`: empty (and
    NA-like) strings read as null. Parse, conversion and decompression errors (a truncated gzip, a line with
    too few fields, a non-number) are MeanTFError naming the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw = pa.OSFile(str(path))
    total = raw.size()
    stream = pa.CompressedInputStream(raw, "gzip") if is_gzip(path) else raw
    names = list(column_names) if column_names else None
    parse = pacsv.ParseOptions(delimiter=delimiter)
    convert = pacsv.ConvertOptions(column_types=dict(column_types), include_columns=list(include_columns),
                                   strings_can_be_null=nulls, quoted_strings_can_be_null=nulls)
    rows, carry = 0, b""
    try:
        while True:
            block = stream.read(batch_bytes)
            text = carry + block
            cut = len(text) if not block else text.rfind(b"\n") + 1
            piece, carry = text[:cut], text[cut:]
            if names is None and piece:  # the header line
                end = piece.find(b"\n") + 1 or len(piece)
                names = piece[:end].decode("utf-8", "replace").rstrip("\r\n").split(delimiter)
                piece = piece[end:]
            if piece.strip():
                table = pacsv.read_csv(pa.py_buffer(piece), parse_options=parse, convert_options=convert,
                                       read_options=pacsv.ReadOptions(column_names=names, use_threads=False))
                for batch in table.to_batches():
                    rows += batch.num_rows
                    yield batch
            if progress:
                progress(rows, raw.tell(), total)
            if not block:
                break
    except (pa.ArrowException, OSError, EOFError, zlib.error) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise MeanTFError(f"{path}: cannot read after {rows:,} rows ({reason})") from None
    finally:
        raw.close()


class ChunkedDatasetWriter:
    """Writes a dataset folder chunk by chunk: the files and manifest of `manifest.write_dataset`, for a table
    too large for memory. Each chunk (a DataFrame with the manifest's columns and `split`) is checked like a
    whole table (`manifest.check_table`) and appended to its split's file; leaving the `with` block writes
    manifest.json (row counts, zero shares) and renames the folder into place, or removes it on an error.
    """

    def __init__(self, out, manifest: mf.Manifest, source: str, extra_files: Optional[Dict[str, str]] = None,
                 compresslevel: int = 6):
        self.manifest = dataclasses.replace(manifest, splits={s: [examples.shard_name(s, 0, 1)] for s in SPLITS})
        self.out, self.source, self.extra_files = out, source, dict(extra_files or {})
        self.compresslevel = compresslevel
        self.rows = {s: 0 for s in SPLITS}
        self.zeros = {s: np.zeros(len(manifest.labels), dtype=np.int64) for s in SPLITS}
        self.payers_in_train = np.zeros(len(manifest.labels), dtype=np.int64)

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(mf.atomic_output_dir(self.out))
        self.folder = tmp
        self.encoder = examples.ExampleEncoder(self.manifest.float_columns, self.manifest.bytes_columns)
        self.writers = {s: self._stack.enter_context(examples.TFRecordGzipWriter(tmp / examples.shard_name(s, 0, 1),
                                                                           self.compresslevel))
                        for s in SPLITS}
        return self

    def write(self, frame) -> None:
        m = self.manifest
        mf.check_table(frame, m, self.source)
        split = frame["split"].to_numpy()
        for s in SPLITS:
            part = frame[split == s]
            if not len(part):
                continue
            labels = part[m.labels].to_numpy(dtype=np.float64)
            self.zeros[s] += (labels <= 0).sum(axis=0)
            if s == "train":
                self.payers_in_train += (labels > 0).sum(axis=0)
            floats = part[m.float_columns].to_numpy(dtype=np.float32)
            self.writers[s].write(self.encoder.encode(floats, [examples.bytes_column(part[c]) for c in m.bytes_columns]))
            self.rows[s] += len(part)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._stack.__exit__(*sys.exc_info())  # removes the folder and raises the error again
                raise
        return self._stack.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        m = self.manifest
        if not sum(self.rows.values()):
            raise MeanTFError(f"{self.source}: no rows to write")
        for label, payers in zip(m.labels, self.payers_in_train):
            if not payers:
                raise MeanTFError(f"{self.source}: train split: label {label!r} is 0 in all {self.rows['train']} rows: "
                                  f"nothing to learn")
        for w in self.writers.values():
            w.close()
        shares = {s: {label: round(float(z / self.rows[s]), 4) if self.rows[s] else 0.0
                      for label, z in zip(m.labels, self.zeros[s])} for s in SPLITS}
        self.manifest = dataclasses.replace(m, row_counts=dict(self.rows), zero_shares=shares)
        mf.write_manifest(self.manifest, self.folder)
        for name, text in self.extra_files.items():
            (self.folder / name).write_text(text, encoding="utf-8")

    @property
    def result(self) -> mf.Manifest:
        """The written manifest, rooted at the output folder (after the `with` block)."""
        return dataclasses.replace(self.manifest, root=str(Path(self.out).absolute()))


def build_info(**info) -> Dict[str, str]:
    """`extra_files` entry build_info.json, as the other builders write it."""
    return {"build_info.json": json.dumps(info, indent=2) + "\n"}
