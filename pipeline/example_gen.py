"""A streaming ImportExampleGen executor: each split is written as it is read, without TFX's Reshuffle.

TFX's ImportExampleGen passes every split through `beam.Reshuffle()` before writing it. On Beam's
DirectRunner a Reshuffle is a GroupByKey held in the runner's memory, so ExampleGen's peak memory grows
with the data (docs/performance.md, section 4: about 66 KB per 720-feature row, out of memory on a 24 GiB
machine before 1M rows); on Dataflow it is a full shuffle of the dataset. mean-tf's datasets are already
split files of serialized tf.Examples and the Trainer shuffles records itself (`training.SHUFFLE_BUFFER`),
so this executor fuses read and write into one streaming stage. Everything else (split names, payload and
file format properties) is the stock executor's. `create_pipeline(shuffle_examples=True)` restores TFX's.
`StreamingImportExampleGen` is ImportExampleGen with this executor (same inputs, outputs and parameters).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import apache_beam as beam
from tfx import types
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

KEYS = standard_component_specs


class Executor(import_executor.Executor):
    """ImportExampleGen's executor with the Reshuffle left out (constant memory on any Beam runner)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = proto_utils.json_to_proto(exec_properties[KEYS.INPUT_CONFIG_KEY], example_gen_pb2.Input())
        output_config = proto_utils.json_to_proto(exec_properties[KEYS.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
        examples = output_dict[KEYS.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        artifact.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        with self._make_beam_pipeline() as pipeline:
            for split, records in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                _ = (records
                     | f"Serialize[{split}]" >> beam.ParDo(write_split.MaybeSerialize())
                     | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                         os.path.join(artifact_utils.get_split_uri(examples, split), write_split.DEFAULT_FILE_NAME),
                         file_name_suffix=".gz"))
        payload_format = exec_properties.get(KEYS.OUTPUT_DATA_FORMAT_KEY)
        if payload_format:
            examples_utils.set_payload_format(artifact, payload_format)
        file_format = exec_properties.get(KEYS.OUTPUT_FILE_FORMAT_KEY)
        if file_format:
            examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))


class StreamingImportExampleGen(ImportExampleGen):
    """ImportExampleGen whose executor streams each split (no Reshuffle)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
