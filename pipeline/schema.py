"""Schemas of the data validation step.

Bundled datasets have a curated schema checked in as `mean_tf/schemas/<dataset name>.pbtxt` (written
by `python -m pipeline.schema --data DIR --out FILE` from a manifest and its data); user data gets
the schema SchemaGen infers, curated by `curate_inferred_schema` (labels >= 0, id columns without
domains, room for new categorical values).

Curated rules: every manifest column is required, one value per example (shape [1]); labels and
numeric features that are never negative in the data have `min: 0`, `*_share` features lie in
[0, 1]; categorical features with at most `CLOSED_DOMAIN_MAX` values (months, flags) have an exact
domain, larger ones (country) a domain that new values may take up to `OPEN_DOMAIN_NEW_SHARE` of.
"""
from __future__ import annotations

import argparse
import os
from typing import Iterable, Optional, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2

CLOSED_DOMAIN_MAX = 12
OPEN_DOMAIN_NEW_SHARE = 0.1


def bundled_schema_file(dataset_name: str) -> Optional[str]:
    """The curated schema of a bundled dataset in the installed mean_tf package, or None for user data."""
    import mean_tf

    path = os.path.join(os.path.dirname(os.path.abspath(mean_tf.__file__)), "schemas", f"{dataset_name}.pbtxt")
    return path if os.path.isfile(path) else None


def _feature(schema: schema_pb2.Schema, name: str, kind) -> schema_pb2.Feature:
    feature = schema.feature.add(name=name, type=kind)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add(size=1)
    return feature


def curated_schema(manifest, frames: Sequence) -> schema_pb2.Schema:
    """The curated schema of a dataset, domains taken from its split DataFrames (see the module docstring)."""
    import pandas as pd

    data = pd.concat(list(frames), ignore_index=True)
    schema = schema_pb2.Schema()
    for name in manifest.id_columns:
        _feature(schema, name, schema_pb2.BYTES)
    for name in list(manifest.numeric_features) + list(manifest.labels):
        feature = _feature(schema, name, schema_pb2.FLOAT)
        if name in manifest.labels or data[name].min() >= 0:
            feature.float_domain.min = 0.0
        if name.endswith("_share"):
            feature.float_domain.max = 1.0
    for name in manifest.categorical_features:
        feature = _feature(schema, name, schema_pb2.BYTES)
        values = sorted(data[name].astype(str).unique())
        feature.string_domain.name = name
        feature.string_domain.value.extend(values)
        if len(values) > CLOSED_DOMAIN_MAX:
            feature.distribution_constraints.min_domain_mass = 1.0 - OPEN_DOMAIN_NEW_SHARE
    return schema


def curate_inferred_schema(schema: schema_pb2.Schema, labels: Iterable[str],
                           id_columns: Iterable[str]) -> schema_pb2.Schema:
    """SchemaGen's inferred schema with the project's rules: labels >= 0, ids free, open categorical domains."""
    curated = schema_pb2.Schema()
    curated.CopyFrom(schema)
    labels, id_columns = set(labels), set(id_columns)
    missing = labels - {f.name for f in curated.feature}
    if missing:
        from mean_tf.errors import MeanTFError

        raise MeanTFError(f"label {sorted(missing)[0]!r} is not in the data (not in the inferred schema)")
    for feature in curated.feature:
        if feature.name in labels:
            feature.float_domain.min = 0.0
        elif feature.name in id_columns:
            feature.ClearField("domain")
            feature.ClearField("string_domain")
        elif feature.HasField("domain") or feature.HasField("string_domain"):
            feature.distribution_constraints.min_domain_mass = 1.0 - OPEN_DOMAIN_NEW_SHARE
    # Inferred string domains live at the top level and are referenced by name; keep them as inferred.
    return curated


def project_schema(schema: schema_pb2.Schema, names: Iterable[str]) -> schema_pb2.Schema:
    """`schema` with only the features `names` (in their order), e.g. what the Evaluator decodes."""
    by_name = {feature.name: feature for feature in schema.feature}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"schema has no feature {missing[0]!r}")
    projected = schema_pb2.Schema()
    projected.CopyFrom(schema)
    del projected.feature[:]
    projected.feature.extend(by_name[name] for name in names)
    return projected


def write_schema(schema: schema_pb2.Schema, path: str) -> None:
    import tensorflow as tf
    from google.protobuf import text_format

    with tf.io.gfile.GFile(path, "w") as f:  # artifact URIs are gs:// on Vertex
        f.write(text_format.MessageToString(schema))


def read_schema(path: str) -> schema_pb2.Schema:
    import tensorflow as tf
    from google.protobuf import text_format

    with tf.io.gfile.GFile(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="write the curated schema of a dataset folder")
    parser.add_argument("--data", required=True, help="dataset folder (manifest.json)")
    parser.add_argument("--out", required=True, help="schema .pbtxt to write")
    args = parser.parse_args(argv)
    import mean_tf  # noqa: F401
    from mean_tf.data.manifest import read_manifest, read_split

    manifest = read_manifest(args.data)
    write_schema(curated_schema(manifest, [read_split(manifest, s) for s in manifest.splits]), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
