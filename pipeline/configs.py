"""Defaults of the mean-tf TFX pipeline (the TFX template's configs module). The runners and
`mean-tf pipeline ...` read these; every value can be overridden on the command line.

Beam: components run on Beam's DirectRunner, in memory, by default. `beam_pipeline_args` pass through:
- local, several processes: `--direct_running_mode=multi_processing --direct_num_workers=4`
  (`--direct_num_workers=0` uses every core);
- Dataflow: `--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`
  (add `--experiments=use_runner_v2` and `--sdk_container_image=IMAGE` with the mean-tf image);
- Flink: `--runner=FlinkRunner --flink_master=HOST:8081 --environment_type=DOCKER`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError

PIPELINE_NAME = "mean-tf"
# The Pusher's custom property on a blessed model identical to a served version (nothing pushed).
ALREADY_SERVED = "already_served"
DEFAULT_MODEL = "mean"
DEFAULT_LABEL = "cltv_365"
# The output folder of `mean-tf pipeline run`: pipeline root, ML Metadata and serving dir live under it.
DEFAULT_OUTPUT_DIR = os.path.join("out", "pipeline")
PIPELINE_ROOT_SUBDIR = "pipeline_root"
METADATA_FILE = "metadata.sqlite"
# ML Metadata of a run whose output folder is a URI (gs://BUCKET/PATH): out/metadata/gs/BUCKET/PATH/metadata.sqlite
LOCAL_METADATA_DIR = os.path.join("out", "metadata")
SERVING_SUBDIR = "serving_model"

# Blessing (Evaluator): the candidate's normalised Gini on the test split must reach GINI_FLOOR, and
# may fall at most GINI_MAX_DROP below the last blessed model's.
GINI_FLOOR = 0.3
GINI_MAX_DROP = 0.01
# The run summary prints slices of at least this many test customers; smaller ones are folded into one row.
MIN_SLICE_SIZE = 50

BEAM_PIPELINE_ARGS = ("--direct_running_mode=in_memory",)
# ExampleGen: False copies the dataset's split files (`pipeline.example_gen`: constant memory, disk speed);
# True is TFX's stock ImportExampleGen, which re-encodes and reshuffles every split (in memory on the DirectRunner).
SHUFFLE_EXAMPLES = False

# Kubeflow Pipelines v2 / Vertex AI Pipelines: the image is required (`mean-tf pipeline compile --image`).
DEFAULT_KFP_OUTPUT = os.path.join("out", "mean_tf_pipeline.json")
# The Trainer container's requests (22M x 720 rows stream from disk: memory is for the model and TF's buffers).
TRAINER_RESOURCES = {"cpu": 8.0, "memory_gib": 32.0}
VERTEX_MACHINE_TYPE = "n1-standard-8"


def _setting(default, flag: Optional[str], help: str, commands: Tuple[str, ...] = ("run", "compile"), **argparse):
    """A settings field, documented once: its default, its `mean-tf pipeline` flag, help and the commands that have it."""
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help, "commands": commands,
                                                        "argparse": argparse})


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """Every setting of one pipeline: what `mean-tf pipeline run|compile` reads from its flags, and what both
    runners pass unchanged to `pipeline.pipeline.create_pipeline`. Where the data and artifacts live (dataset,
    pipeline root, serving folder, ML Metadata) are the runners' arguments, not settings."""

    model_name: str = _setting(DEFAULT_MODEL, "--model", "registry model")
    label: str = _setting(DEFAULT_LABEL, "--label", "label to predict and serve")
    config: Optional[MEANConfig] = _setting(None, None, "the model's MEANConfig (`--config FILE`, `--set key=value`)")
    gini_floor: float = _setting(GINI_FLOOR, "--gini-floor", "blessing: lowest normalised Gini on the test split")
    gini_max_drop: float = _setting(GINI_MAX_DROP, "--gini-max-drop",
                                    "blessing: largest Gini drop vs the last blessed model")
    beam_pipeline_args: Tuple[str, ...] = _setting(
        BEAM_PIPELINE_ARGS, "--beam-arg", "Beam pipeline argument, repeatable, e.g. "
        "--beam-arg=--direct_running_mode=multi_processing", action="append", metavar="ARG")
    shuffle_examples: bool = _setting(
        SHUFFLE_EXAMPLES, "--shuffle-examples", "ExampleGen re-encodes and reshuffles every split (TFX's stock "
        "executor; on the DirectRunner it holds each split in memory); default: copy the dataset's split files")
    tune: bool = _setting(False, "--tune", "add a Tuner: search the model's hyperparameters on the eval split "
                                           "(mean_tf.training.tuning), then train with its choice")
    tuner_trials: Optional[int] = _setting(None, "--tuner-trials", "trials of --tune (default: "
                                           "mean_tf.training.tuning.TRIALS), the first at the defaults", type=int)
    tuner_margin: float = _setting(0.0, "--tuner-margin", "--tune keeps the defaults unless the best trial's eval "
                                   "score beats theirs by more than this (e.g. the seed spread of the score, which "
                                   "the benchmark's noise study measures); 0: the best trial", type=float)
    pipeline_name: str = _setting(PIPELINE_NAME, None, "the pipeline's name in ML Metadata and on Kubeflow")
    enable_cache: bool = _setting(True, "--no-cache", "rerun every component", ("run",))
    image: Optional[str] = _setting(None, "--image", "container image with mean-tf installed (built from the "
                                                     "repository's Dockerfile)", ("compile",))
    trainer_cpu: float = _setting(TRAINER_RESOURCES["cpu"], "--trainer-cpu", "Trainer CPU request", ("compile",))
    trainer_memory_gib: float = _setting(TRAINER_RESOURCES["memory_gib"], "--trainer-memory-gib",
                                         "Trainer memory request in GiB", ("compile",))
    vertex_project: Optional[str] = _setting(None, "--vertex-project", "train on Vertex AI Training in this GCP "
                                                                       "project (with --vertex-region)", ("compile",))
    vertex_region: Optional[str] = _setting(None, "--vertex-region", "Vertex AI region, e.g. europe-west4",
                                            ("compile",))
    vertex_machine_type: str = _setting(VERTEX_MACHINE_TYPE, "--vertex-machine-type", "Vertex AI Training machine",
                                        ("compile",))
    vertex_endpoint: Optional[str] = _setting(None, "--vertex-endpoint", "push blessed models to this Vertex AI "
                                                                         "endpoint instead of --serving-dir",
                                              ("compile",))
    vertex_serving_image: Optional[str] = _setting(None, "--vertex-serving-image",
                                                   "the TF serving container for --vertex-endpoint", ("compile",))

    def __post_init__(self):
        object.__setattr__(self, "beam_pipeline_args", tuple(self.beam_pipeline_args))
        if (self.vertex_project or self.vertex_region or self.vertex_endpoint) and not (
                self.vertex_project and self.vertex_region):
            raise MeanTFError("compile: Vertex AI needs both --vertex-project and --vertex-region")
        if self.vertex_endpoint and not self.vertex_serving_image:
            raise MeanTFError("compile: --vertex-endpoint needs --vertex-serving-image (a TF serving container)")

    @property
    def model_config(self) -> MEANConfig:
        return self.config or MEANConfig()

    @property
    def trainer_resources(self) -> dict:
        """The Trainer container's requests on Kubeflow/Vertex."""
        return {"cpu": self.trainer_cpu, "memory_gib": self.trainer_memory_gib}

    @property
    def vertex(self) -> Optional[dict]:
        """Vertex AI Training (and, with an endpoint, serving) settings, or None to train in the pipeline."""
        if not self.vertex_project:
            return None
        return {"project": self.vertex_project, "region": self.vertex_region, "machine_type": self.vertex_machine_type,
                "endpoint": self.vertex_endpoint, "serving_image": self.vertex_serving_image, "image": self.image}


def settings_fields(command: str):
    """The fields of `PipelineSettings` that `mean-tf pipeline <command>` sets from a flag."""
    return [f for f in dataclasses.fields(PipelineSettings) if f.metadata["flag"] and command in f.metadata["commands"]]


def add_settings_arguments(parser, command: str) -> None:
    """Add one flag per setting of `command` ("run" or "compile"), with the field's help and default."""
    for f in settings_fields(command):
        flag, help, extra = f.metadata["flag"], f.metadata["help"], dict(f.metadata["argparse"])
        if f.type in ("bool", bool):
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, help=help)
        elif extra.get("action") == "append":
            parser.add_argument(flag, dest=f.name, default=None, help=help, **extra)
        else:
            kind = extra.pop("type", None) or {"float": float, "str": str}.get(str(f.type).replace("Optional[", "")
                                                                               .rstrip("]"), str)
            shown = f" (default {f.default:g})" if isinstance(f.default, float) else (
                f" (default {f.default})" if f.default is not None else "")
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=help + shown, **extra)


def settings_from_args(args, command: str, config: Optional[MEANConfig] = None) -> PipelineSettings:
    """The settings a parsed `mean-tf pipeline <command>` names (defaults for the rest)."""
    values = {f.name: getattr(args, f.name) for f in settings_fields(command)}
    if values.get("beam_pipeline_args") is None:
        values.pop("beam_pipeline_args", None)
    return PipelineSettings(config=config, **values)


def settings_table() -> list:
    """The README's table of `mean-tf pipeline` flags, one row per setting (tests/test_layout.py keeps it equal)."""
    from mean_tf.evaluation.tables import markdown_table

    rows = []
    for f in dataclasses.fields(PipelineSettings):
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = ("on" if default else "off") if isinstance(default, bool) else (
            " ".join(default) if isinstance(default, tuple) else ("—" if default is None else default))
        rows.append([f"`{f.metadata['flag']}`" if f.metadata["flag"] else "—", f"`{f.name}`",
                     ", ".join(f.metadata["commands"]), f.metadata["help"], f"`{shown}`" if shown != "—" else shown])
    return markdown_table(["flag", "setting", "commands", "what", "default"], rows)
