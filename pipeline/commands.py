"""The `mean-tf` subcommands that run the pipeline: `mean-tf pipeline run` (LocalDagRunner, prints the
Evaluator's table), `mean-tf pipeline compile` (Kubeflow Pipelines v2 / Vertex AI JSON) and `mean-tf demo`
(the pipeline on the bundled Online Retail II data: what `make demo` runs).

`mean_tf.cli` finds them through the `mean_tf.commands` entry points of setup.py, so mean_tf never imports
the pipeline package. Every pipeline flag comes from `pipeline.configs.PipelineSettings`.
"""
from __future__ import annotations

import os
import time

from mean_tf.commands._common import add_config_options, add_renamed_option, config_from_args
from mean_tf.runtime.files import exists
from pipeline import configs

DEMO_OUT = "out"


def register_pipeline(subparsers):
    p = subparsers.add_parser("pipeline", help="the TFX pipeline: run it locally or compile it for Kubeflow/Vertex")
    sub = p.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner) and print its summary",
                         description="Run ExampleGen ... Pusher locally; outputs, ML Metadata and the serving folder "
                                     "go under --out. Without --data, builds the bundled Online Retail II "
                                     "dataset there first.")
    run.add_argument("--data", help="dataset folder (manifest.json); default: the bundled Online Retail II")
    add_renamed_option(run, "--out", "--output-dir", default=configs.DEFAULT_OUTPUT_DIR, metavar="DIR",
                       help=f"output folder, local or gs://...: pipeline root, ML Metadata (a local file: for a "
                            f"gs:// folder under {configs.LOCAL_METADATA_DIR}/), serving_model/ "
                            f"(default {configs.DEFAULT_OUTPUT_DIR})")
    run.add_argument("--score", metavar="DATASET", default=None,
                     help="a scoring dataset (`mean-tf data transactions --score-date`): a BulkInferrer scores it "
                          "with the blessed model and writes its InferenceResult (PredictionLogs)")
    configs.add_settings_arguments(run, "run")
    add_config_options(run)
    run.set_defaults(func=run_main)

    comp = sub.add_parser("compile", help="write the Kubeflow Pipelines v2 / Vertex AI pipeline JSON",
                          description="Compile with KubeflowV2DagRunner; see pipeline/kubeflow_v2_runner.py for "
                                      "submitting the JSON to Vertex AI Pipelines.")
    add_renamed_option(comp, "--data", "--manifest", required=True, metavar="DIR",
                       help="local dataset folder (read at compile time)")
    comp.add_argument("--data-root", required=True, help="the dataset folder as the cluster sees it (gs://... or s3://...)")
    comp.add_argument("--pipeline-root", required=True, help="artifact root, e.g. gs://BUCKET/pipeline_root")
    comp.add_argument("--serving-dir", help="where Pusher writes blessed models (gs://...); not with --vertex-endpoint")
    comp.add_argument("--local-cluster-paths", action="store_true",
                      help="accept absolute paths for --data-root/--pipeline-root/--serving-dir (a cluster whose "
                           "pods mount that volume at the same path)")
    comp.add_argument("--out", default=configs.DEFAULT_KFP_OUTPUT,
                      help=f"JSON file (default {configs.DEFAULT_KFP_OUTPUT})")
    configs.add_settings_arguments(comp, "compile")
    add_config_options(comp)
    comp.set_defaults(func=compile_main)


def register_demo(subparsers):
    p = subparsers.add_parser(
        "demo", help="build the Online Retail II snapshots and run the whole TFX pipeline on them (cltv_365)",
        description="Builds the customer x cutoff table from data/online_retail_ii_lines.parquet (once), then runs "
                    "ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer (MEAN) -> "
                    "Evaluator -> Pusher with LocalDagRunner, and prints the Evaluator's metrics, the blessing and "
                    "the pushed model.")
    p.add_argument("--out", default=DEMO_OUT, help=f"output folder (default {DEMO_OUT}/)")
    p.add_argument("--label", default=configs.DEFAULT_LABEL)
    p.add_argument("--model", default=configs.DEFAULT_MODEL)
    p.set_defaults(func=demo_main)


def _bundled_dataset(output_dir: str) -> str:
    from mean_tf.data import online_retail

    folder = os.path.join(output_dir, "data", online_retail.NAME)
    if not exists(os.path.join(folder, "manifest.json")):
        print(f"building the bundled Online Retail II dataset in {folder}")
        online_retail.build(folder)
    return folder


def run_main(args) -> int:
    from pipeline import local_runner

    data = args.data or _bundled_dataset(args.out)
    settings = configs.settings_from_args(args, "run", config_from_args(args))
    summary = local_runner.run(data, args.out, settings, score_data=args.score)
    print(local_runner.format_summary(summary))
    return 0


def compile_main(args) -> int:
    from pipeline import kubeflow_v2_runner

    settings = configs.settings_from_args(args, "compile", config_from_args(args))
    path = kubeflow_v2_runner.compile_pipeline(
        args.data, settings, pipeline_root=args.pipeline_root, serving_model_dir=args.serving_dir,
        data_root=args.data_root, output_file=args.out, local_cluster_paths=args.local_cluster_paths)
    print(f"wrote {path}")
    return 0


def demo_main(args) -> int:
    from mean_tf.data import online_retail
    from pipeline import local_runner

    data_dir = os.path.join(args.out, "online_retail_ii")
    start = time.time()
    if not exists(os.path.join(data_dir, "manifest.json")):
        print(f"[1/2] building the Online Retail II snapshot table in {data_dir}", flush=True)
        online_retail.build(data_dir)
    else:
        print(f"[1/2] using the snapshot table in {data_dir}", flush=True)
    output_dir = os.path.join(args.out, "pipeline")
    print(f"[2/2] running the TFX pipeline ({args.model}, label {args.label}) under {output_dir}", flush=True)
    summary = local_runner.run(data_dir, output_dir, configs.PipelineSettings(model_name=args.model, label=args.label))
    print(local_runner.format_summary(summary))
    print(f"demo finished in {(time.time() - start) / 60:.1f} min; ML Metadata: "
          f"{local_runner.paths(output_dir)[1]}")
    return 0
