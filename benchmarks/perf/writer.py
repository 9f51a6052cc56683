"""Benchmark 6: the dataset writer's tf.Example encoding. The hand encoder (`mean_tf.data.examples.ExampleEncoder`)
against tfx_bsl's `RecordBatchToExamplesEncoder`, both framed and gzipped by the same `TFRecordGzipWriter` at
level 1 (the synthetic generator's), on the same synthetic blocks written `passes` times."""
from __future__ import annotations

import os
import time
from typing import Dict, List

import numpy as np

from mean_tf.data import examples, synthetic


def _tfx_bsl_encode(float_columns: List[str], bytes_columns: List[str]):
    """floats [n, f], bytes columns -> serialized tf.Examples through tfx_bsl (each feature a one-value list)."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    encoder = example_coder.RecordBatchToExamplesEncoder()

    def encode(floats: np.ndarray, columns: List[np.ndarray]) -> List[bytes]:
        offsets = pa.array(np.arange(len(floats) + 1, dtype=np.int64))
        values = [pa.array(floats[:, j]) for j in range(floats.shape[1])] + [pa.array(c, pa.binary()) for c in columns]
        lists = [pa.LargeListArray.from_arrays(offsets, v) for v in values]
        return encoder.encode(pa.RecordBatch.from_arrays(lists, float_columns + bytes_columns))
    return encode


def writer_rates(work_dir: str, rows: int, features: int, passes: int = 1, seed: int = 0) -> Dict:
    """Rows per second, CPU seconds and file size of each encoder writing the same `rows x passes` rows, and
    whether both files parse to the same values (`Manifest.feature_spec`, first 1,000 records)."""
    import tensorflow as tf

    gen = synthetic.Generator(synthetic.SyntheticSpec(rows, features, 0.1, seed))
    m = gen.manifest()
    blocks = [synthetic.encoder_columns(gen.block(b)) for b in range(-(-rows // synthetic.BLOCK_ROWS))]
    encoders = {"hand (mean_tf.data.examples)": examples.ExampleEncoder(m.float_columns, m.bytes_columns).encode,
                "tfx_bsl RecordBatchToExamplesEncoder": _tfx_bsl_encode(m.float_columns, m.bytes_columns)}
    out, parsed = {}, []
    for i, (name, encode) in enumerate(encoders.items()):
        path = os.path.join(work_dir, f"writer-{i}.tfrecord.gz")
        wall, cpu = time.perf_counter(), time.process_time()
        with examples.TFRecordGzipWriter(path, compresslevel=1) as w:
            for _ in range(passes):
                for floats, columns in blocks:
                    w.write(encode(floats, columns))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = {"rows": w.rows, "seconds": wall, "rows_per_s": w.rows / wall, "cpu_seconds": cpu,
                     "megabytes": os.path.getsize(path) / 1e6}
        records = tf.data.TFRecordDataset(path, compression_type="GZIP").take(1000).batch(1000)
        parsed.append({k: v.numpy() for k, v in tf.io.parse_example(next(iter(records)), m.feature_spec()).items()})
        os.remove(path)
    same = all(np.array_equal(parsed[0][k], parsed[1][k]) for k in parsed[0])
    return {"rows": rows * passes, "features": features, "passes": passes, "encoders": out, "same_values": same}
