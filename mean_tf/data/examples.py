"""The `tf.train.Example` encoder and the gzipped-TFRecord writer every dataset builder uses.

The encoder serialises `tf.train.Example` records itself (NumPy byte templates in the protobuf wire
format TensorFlow parses) and `tf.io.TFRecordWriter` frames and gzips them. tfx_bsl's
`RecordBatchToExamplesEncoder` is measured against it by `python -m benchmarks.perf writer` (docs/performance.md,
section 6) and kept out while it is more than 2x slower at 720 features; it also writes the features in a
hash order that changes from call to call, so its files would not be reproducible byte for byte.
Only the writer imports TensorFlow.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes_entry(key_part: bytes, value: bytes) -> bytes:
    """The `Features.feature` map entry (field 1, with its tag and length) for a one-value bytes_list."""
    blist = b"\x0a" + _varint(len(value)) + value  # BytesList.value (field 1)
    feature = b"\x0a" + _varint(len(blist)) + blist  # Feature.bytes_list (field 1)
    entry = key_part + b"\x12" + _varint(len(feature)) + feature  # map entry: key (1), value (2)
    return b"\x0a" + _varint(len(entry)) + entry


def _key_part(name: str) -> bytes:
    key = name.encode("utf-8")
    return b"\x0a" + _varint(len(key)) + key


class ExampleEncoder:
    """Serialises rows as `tf.train.Example` with one-value float features and one-value bytes features.

    Float features (in the order given) form a fixed byte template with a 4-byte hole per value, filled
    through strided NumPy views; a bytes column whose values all have the same length joins the template
    too, so a table of only fixed-width strings (the synthetic generator's) is encoded without a per-row
    Python step.
    """

    def __init__(self, float_columns: Sequence[str], bytes_columns: Sequence[str]):
        self.float_columns = list(float_columns)
        self.bytes_columns = list(bytes_columns)
        parts = []
        for name in self.float_columns:
            entry = _key_part(name) + b"\x12\x08\x12\x06\x0a\x04"  # value (2) -> Feature.float_list (2) -> FloatList.value (1, packed)
            parts.append(b"\x0a" + _varint(len(entry) + 4) + entry)  # the 4 value bytes follow
        self._float_width = sum(len(p) + 4 for p in parts)
        # Runs of equally long float entries (same key length), each filled through one strided view:
        # (first column, end column, byte start, entry length, key prefixes as a NumPy void array)
        self._float_runs = []
        start_col, start_byte = 0, 0
        for j in range(1, len(parts) + 1):
            if j == len(parts) or len(parts[j]) != len(parts[start_col]):
                e = len(parts[start_col]) + 4
                prefixes = np.frombuffer(b"".join(parts[start_col:j]), dtype=f"V{e - 4}")
                self._float_runs.append((start_col, j, start_byte, e, prefixes))
                start_byte += (j - start_col) * e
                start_col = j
        self._key_parts = [_key_part(n) for n in self.bytes_columns]

    def encode(self, floats: np.ndarray, bytes_values: Sequence[Sequence[bytes]]) -> np.ndarray | List[bytes]:
        """Encode n rows. `floats`: [n, F] array (cast to float32); `bytes_values`: one sequence of n bytes
        per bytes column. Returns a uint8 matrix [n, L] when every row has the same length, else a list
        of n `bytes`."""
        floats = np.asarray(floats, dtype="<f4")
        n = floats.shape[0] if self.float_columns else (len(bytes_values[0]) if bytes_values else 0)
        if self.float_columns and floats.shape != (n, len(self.float_columns)):
            raise ValueError(f"floats has shape {floats.shape}, expected ({n}, {len(self.float_columns)})")
        # Fixed part: float template, then fixed-width bytes columns.
        fixed_cols, var_cols = [], []
        for j, values in enumerate(bytes_values):
            arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
            if arr.dtype.kind == "S" and arr.dtype.itemsize > 0 and _all_full_width(arr):
                fixed_cols.append((j, arr))
            else:
                var_cols.append((j, arr))
        width_f = self._float_width
        fixed_parts = []  # (template bytes, hole offset in part, width, array)
        for j, arr in fixed_cols:
            w = arr.dtype.itemsize
            head = _bytes_entry(self._key_parts[j], b"\x00" * w)
            fixed_parts.append((np.frombuffer(head, dtype=np.uint8), len(head) - w, w, arr))
        width = width_f + sum(p[0].size for p in fixed_parts)
        body = np.empty((n, width), dtype=np.uint8)
        for c0, c1, b0, e, prefixes in self._float_runs:
            # the run as a [n, k] structured array (key prefix, float value) laid over `body`
            dt = np.dtype([("p", f"V{e - 4}"), ("v", "<f4")])
            view = np.ndarray(shape=(n, c1 - c0), dtype=dt, buffer=body, offset=b0, strides=(width, e))
            view["p"] = prefixes
            view["v"] = floats[:, c0:c1]
        pos = width_f
        for tmpl, hole, w, arr in fixed_parts:
            dt = np.dtype([("p", f"V{hole}"), ("v", f"S{w}")])  # the value ends the entry
            view = np.ndarray(shape=(n,), dtype=dt, buffer=body, offset=pos, strides=(width,))
            view["p"] = tmpl[:hole].copy().view(f"V{hole}")[0]
            view["v"] = arr
            pos += tmpl.size
        if not var_cols:
            head = b"\x0a" + _varint(width)
            out = np.empty((n, len(head) + width), dtype=np.uint8)
            out[:, :len(head)] = np.frombuffer(head, dtype=np.uint8)
            out[:, len(head):] = body
            return out
        var_entries = []
        for j, arr in var_cols:
            kp = self._key_parts[j]
            var_entries.append([_bytes_entry(kp, _as_bytes(v)) for v in arr])
        records = []
        for i in range(n):
            tail = b"".join(col[i] for col in var_entries)
            features = body[i].tobytes() + tail
            records.append(b"\x0a" + _varint(len(features)) + features)
        return records


def _all_full_width(arr: np.ndarray) -> bool:
    """True if no value of a NumPy 'S' array is shorter than its itemsize (NumPy strips trailing NULs)."""
    if arr.size == 0:
        return True
    last = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)[arr.dtype.itemsize - 1::arr.dtype.itemsize]
    return bool(last.all())


def _as_bytes(v) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, np.bytes_):
        return bytes(v)
    return str(v).encode("utf-8")


_BUFFER_BYTES = 1 << 20


class TFRecordGzipWriter:
    """Writes encoded records to one gzipped TFRecord file with `tf.io.TFRecordWriter`; `rows` counts them.

    zlib's default memory level (8; TensorFlow's 9 is slower) and 1 MiB buffers give the same compressed
    bytes as Python's gzip module; at 720 features 30 % faster at level 1 (the synthetic generator's),
    15 % slower at level 6.
    """

    def __init__(self, path: Union[str, Path], compresslevel: int = 6):
        import tensorflow as tf

        self.path = Path(path)
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=compresslevel, mem_level=8,
                                        input_buffer_size=_BUFFER_BYTES, output_buffer_size=_BUFFER_BYTES)
        self._writer = tf.io.TFRecordWriter(str(self.path), options)
        self.rows = 0

    def write(self, records: Union[np.ndarray, List[bytes]]) -> None:
        """Append records: a uint8 matrix (one record per row) or a list of bytes."""
        for record in records:
            self._writer.write(record.tobytes() if isinstance(record, np.ndarray) else record)
        self.rows += len(records)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord.gz"


def write_frame(frame, path, float_columns: Sequence[str], bytes_columns: Sequence[str],
                compresslevel: int = 6, chunk_rows: int = 50_000) -> int:
    """Write a DataFrame's rows to one gzipped TFRecord file; returns the row count."""
    encoder = ExampleEncoder(float_columns, bytes_columns)
    with TFRecordGzipWriter(path, compresslevel) as w:
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start:start + chunk_rows]
            floats = part[list(float_columns)].to_numpy(dtype=np.float32) if float_columns else np.zeros((len(part), 0), np.float32)
            bvals = [bytes_column(part[c]) for c in bytes_columns]
            w.write(encoder.encode(floats, bvals))
        return w.rows


def bytes_column(series) -> np.ndarray:
    """A column as UTF-8 bytes: a NumPy 'S' array when that is lossless, else an object array of bytes."""
    values = series.astype(str).to_numpy(dtype=object)
    encoded = np.array([v.encode("utf-8") for v in values], dtype=object)
    if len(encoded) and all(len(v) for v in encoded):
        arr = encoded.astype("S")
        if _all_full_width(arr):
            return arr
    return encoded
