"""A Pusher that pushes a model once: TFX's filesystem Pusher, skipping a model already served.

A cached rerun that changes nothing reuses the Trainer's model, but the latest-blessed-model resolver now
hands that same model to the Evaluator as its baseline, so the Evaluator and the Pusher run again and TFX's
Pusher copies the identical model into a new version folder. `OncePusher` compares the blessed model's
files with every version already in the push destination and, when one is identical, pushes nothing and
records that version on its `pushed_model` artifact (`already_served`), which the run summary prints.
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional

import tensorflow as tf
from absl import logging
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from pipeline.configs import ALREADY_SERVED



def fingerprint(model_dir: str) -> str:
    """SHA-256 of every file under `model_dir`: relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for root, _, files in sorted(tf.io.gfile.walk(model_dir)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, model_dir).encode())
            with tf.io.gfile.GFile(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def served_copy(model_dir: str, base_directory: str) -> Optional[str]:
    """The version folder under `base_directory` whose files equal the model's, or None."""
    if not tf.io.gfile.isdir(base_directory):
        return None
    wanted = fingerprint(model_dir)
    for version in sorted(tf.io.gfile.listdir(base_directory)):
        path = os.path.join(base_directory, version.rstrip("/"))
        if tf.io.gfile.isdir(path) and fingerprint(path) == wanted:
            return path
    return None


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor, except that a blessed model already served is not pushed again."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(input_dict):
            copy = served_copy(self.GetModelPath(input_dict), destination.filesystem.base_directory)
            if copy:
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                logging.info("Model already served at %s: nothing pushed", copy)
                self._MarkNotPushed(model_push)
                model_push.set_string_custom_property(ALREADY_SERVED, copy)
                return
        super().Do(input_dict, output_dict, exec_properties)


class OncePusher(pusher_component.Pusher):
    """`tfx.components.Pusher` with `pipeline.pusher.Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
