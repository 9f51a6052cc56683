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

import os

PIPELINE_NAME = "mean-tf"
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
