"""A copying ImportExampleGen executor: each split's files are copied as they are, without Beam.

TFX's ImportExampleGen reads every record, passes each split through `beam.Reshuffle()` and writes it
again, gzipped. On Beam's DirectRunner the Reshuffle is a GroupByKey held in the runner's memory, so
ExampleGen's peak memory grows with the data (docs/performance.md, section 4: about 70 KB per 720-feature
row, out of memory on a 24 GiB machine before 1M rows), and the decode / re-encode costs about 2 ms per
720-feature row on 2 cores. mean-tf's datasets are already what ExampleGen would write: one or more gzipped
TFRecord files of serialized tf.Examples per split (`mean_tf.data.manifest`), and the Trainer shuffles
records itself (`training.SHUFFLE_BUFFER`). So this executor copies the files of each split into the
Examples artifact (`tf.io.gfile`: local disks, GCS), in constant memory and at disk speed; the driver
(spans, fingerprints) and the artifact properties are ImportExampleGen's. `create_pipeline(shuffle_examples=True)`
restores TFX's executor. `CopyingImportExampleGen` is ImportExampleGen with this executor.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.components.example_gen import utils
from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from mean_tf.errors import MeanTFError

KEYS = standard_component_specs
GZIP_MAGIC = b"\x1f\x8b"
FILE_FORMAT = "tfrecords_gzip"  # what TFX's ExampleGen writes and the downstream components read


class Executor(base_beam_executor.BaseBeamExecutor):
    """Copies each input split's gzipped TFRecord files into the output Examples artifact.

    A Beam executor by type only (ImportExampleGen is a Beam component): it builds no Beam pipeline.
    """

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = proto_utils.json_to_proto(exec_properties[KEYS.INPUT_CONFIG_KEY], example_gen_pb2.Input())
        output_config = proto_utils.json_to_proto(exec_properties[KEYS.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
        if output_config.HasField("split_config"):
            raise MeanTFError("ExampleGen copies the dataset's own splits: output_config.split_config is not "
                              "supported (use shuffle_examples=True for TFX's re-splitting ExampleGen)")
        payload = exec_properties.get(KEYS.OUTPUT_DATA_FORMAT_KEY) or example_gen_pb2.FORMAT_TF_EXAMPLE
        if payload != example_gen_pb2.FORMAT_TF_EXAMPLE:
            raise MeanTFError(f"ExampleGen copies tf.Example files only, not payload format "
                              f"{example_gen_pb2.PayloadFormat.Name(payload)}")
        artifact = artifact_utils.get_single_instance(output_dict[KEYS.EXAMPLES_KEY])
        artifact.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        for split in input_config.splits:
            copy_split(os.path.join(exec_properties[KEYS.INPUT_BASE_KEY], split.pattern),
                       artifact_utils.get_split_uri([artifact], split.name))
        examples_utils.set_payload_format(artifact, payload)
        examples_utils.set_file_format(artifact, FILE_FORMAT)


def copy_split(pattern: str, out_dir: str) -> List[str]:
    """Copy the files matching `pattern` to `out_dir` as data_tfrecord-NNNNN-of-MMMMM.gz; returns their paths."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise MeanTFError(f"ExampleGen: no file matches {pattern}")
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(len(GZIP_MAGIC))
        if head and head != GZIP_MAGIC:
            raise MeanTFError(f"ExampleGen: {path} is not a gzipped TFRecord file (rebuild the dataset with "
                              "`mean-tf data ...`, or use shuffle_examples=True)")
    tf.io.gfile.makedirs(out_dir)
    copies = [os.path.join(out_dir, f"data_tfrecord-{i:05d}-of-{len(files):05d}.gz") for i in range(len(files))]
    for path, copy in zip(files, copies):
        tf.io.gfile.copy(path, copy, overwrite=True)
    return copies


class CopyingImportExampleGen(ImportExampleGen):
    """ImportExampleGen whose executor copies each split's files (no Beam, no Reshuffle)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
