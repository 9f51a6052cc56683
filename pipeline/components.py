"""Custom TFX components of the mean-tf pipeline (Python-function components, importable in the image).

- `ValidationGate`: stops the pipeline before Transform when ExampleValidator found anomalies, with a
  message naming each split, feature and problem; otherwise passes the schema on (Transform reads
  the gate's output, so nothing downstream runs on data that failed validation).
- `BundledSchema`: the curated schema of a bundled dataset, read from the installed mean_tf package
  (so the same pipeline runs locally and in the Kubeflow/Vertex image);
- `CurateSchema`: SchemaGen's inferred schema plus the project's rules (pipeline.schema);
- `EvaluationSchema`: the validated schema restricted to what the Evaluator reads (label and slice
  features): TFMA then decodes those columns only; the model reads the serialized examples.
"""

import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Schema

from pipeline import schema as schemas

SCHEMA_FILE = "schema.pbtxt"
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's file per split


class DataValidationError(RuntimeError):
    """ExampleValidator found anomalies: the message names split, feature and problem."""


def anomaly_lines(anomalies_artifact) -> list:
    """'split <s>: feature <f>: <short description> (<description>)' for every anomaly of every split."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    lines = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as f:  # artifact URIs are gs:// on Vertex
            anomalies.ParseFromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"split {split!r}: feature {feature!r}: {info.short_description} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"split {split!r}: dataset: {info.short_description} ({info.description})")
    return lines


def _schema_path(artifact) -> str:
    files = [f for f in tf.io.gfile.listdir(artifact.uri) if f.endswith(".pbtxt")]
    if len(files) != 1:
        raise ValueError(f"expected one .pbtxt schema in {artifact.uri}, found {files}")
    return os.path.join(artifact.uri, files[0])


@component
def ValidationGate(anomalies: InputArtifact[ExampleAnomalies], schema: InputArtifact[Schema],
                   validated_schema: OutputArtifact[Schema]) -> None:
    """Raise DataValidationError listing every anomaly; else copy the schema to `validated_schema`."""
    lines = anomaly_lines(anomalies)
    if lines:
        raise DataValidationError("data validation failed, training stopped: " + "; ".join(lines))
    schemas.write_schema(schemas.read_schema(_schema_path(schema)), os.path.join(validated_schema.uri, SCHEMA_FILE))


@component
def BundledSchema(dataset_name: Parameter[str], schema: OutputArtifact[Schema]) -> None:
    """Copy mean_tf/schemas/<dataset_name>.pbtxt to the `schema` artifact."""
    path = schemas.bundled_schema_file(dataset_name)
    if path is None:
        raise ValueError(f"mean_tf has no curated schema for dataset {dataset_name!r}")
    schemas.write_schema(schemas.read_schema(path), os.path.join(schema.uri, SCHEMA_FILE))


@component
def CurateSchema(schema: InputArtifact[Schema], curated_schema: OutputArtifact[Schema], labels: Parameter[str],
                 id_columns: Parameter[str]) -> None:
    """Apply pipeline.schema.curate_inferred_schema; `labels`, `id_columns`: comma-separated names."""
    names = [[x for x in text.split(",") if x] for text in (labels, id_columns)]
    curated = schemas.curate_inferred_schema(schemas.read_schema(_schema_path(schema)), *names)
    schemas.write_schema(curated, os.path.join(curated_schema.uri, SCHEMA_FILE))


@component
def EvaluationSchema(schema: InputArtifact[Schema], evaluation_schema: OutputArtifact[Schema],
                     features: Parameter[str]) -> None:
    """`schema` restricted to `features` (comma-separated names), for the Evaluator's decoder."""
    names = [x for x in features.split(",") if x]
    schemas.write_schema(schemas.project_schema(schemas.read_schema(_schema_path(schema)), names),
                         os.path.join(evaluation_schema.uri, SCHEMA_FILE))
