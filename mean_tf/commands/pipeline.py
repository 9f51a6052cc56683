"""`mean-tf pipeline run` (LocalDagRunner, prints the Evaluator's table) and `mean-tf pipeline compile`
(Kubeflow Pipelines v2 / Vertex AI JSON)."""
from __future__ import annotations

import os

from mean_tf.commands._common import add_config_options, add_renamed_option, config_from_args


def register(subparsers):
    from pipeline import configs

    p = subparsers.add_parser("pipeline", help="the TFX pipeline: run it locally or compile it for Kubeflow/Vertex")
    sub = p.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    def common(sp):
        sp.add_argument("--model", default=configs.DEFAULT_MODEL,
                        help=f"registry model (default {configs.DEFAULT_MODEL})")
        sp.add_argument("--label", default=configs.DEFAULT_LABEL,
                        help=f"label to predict and serve (default {configs.DEFAULT_LABEL})")
        sp.add_argument("--gini-floor", type=float, default=configs.GINI_FLOOR,
                        help=f"blessing: lowest normalised Gini on the test split (default {configs.GINI_FLOOR})")
        sp.add_argument("--gini-max-drop", type=float, default=configs.GINI_MAX_DROP,
                        help=f"blessing: largest Gini drop vs the last blessed model (default {configs.GINI_MAX_DROP})")
        sp.add_argument("--beam-arg", dest="beam_args", action="append", default=None, metavar="ARG",
                        help="Beam pipeline argument, repeatable, "
                             "e.g. --beam-arg=--direct_running_mode=multi_processing")
        sp.add_argument("--shuffle-examples", action="store_true",
                        help="ExampleGen re-encodes and reshuffles every split (TFX's stock executor; on the "
                             "DirectRunner it holds each split in memory); default: copy the dataset's split files")
        sp.add_argument("--tune", action="store_true",
                        help="add a Tuner: search the model's hyperparameters on the eval split (mean_tf.tuning), "
                             "then train with the best")
        sp.add_argument("--tuner-trials", type=int, default=None, help="trials of --tune (default 6)")
        add_config_options(sp)

    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner) and print its summary",
                         description="Run ExampleGen ... Pusher locally; outputs, ML Metadata and the serving folder "
                                     "go under --out. Without --data, builds the bundled Online Retail II "
                                     "dataset there first.")
    run.add_argument("--data", help="dataset folder (manifest.json); default: the bundled Online Retail II")
    add_renamed_option(run, "--out", "--output-dir", default=configs.DEFAULT_OUTPUT_DIR, metavar="DIR",
                       help=f"output folder, local or gs://...: pipeline root, ML Metadata (a local file: for a "
                            f"gs:// folder under {configs.LOCAL_METADATA_DIR}/), serving_model/ "
                            f"(default {configs.DEFAULT_OUTPUT_DIR})")
    run.add_argument("--no-cache", action="store_true", help="rerun every component")
    run.add_argument("--score", metavar="DATASET", default=None,
                     help="a scoring dataset (`mean-tf data transactions --score-date`): a BulkInferrer scores it "
                          "with the blessed model and writes its InferenceResult (PredictionLogs)")
    common(run)
    run.set_defaults(func=run_main)

    comp = sub.add_parser("compile", help="write the Kubeflow Pipelines v2 / Vertex AI pipeline JSON",
                          description="Compile with KubeflowV2DagRunner; see pipeline/kubeflow_v2_runner.py for "
                                      "submitting the JSON to Vertex AI Pipelines.")
    add_renamed_option(comp, "--data", "--manifest", required=True, metavar="DIR",
                       help="local dataset folder (read at compile time)")
    comp.add_argument("--data-root", required=True, help="the dataset folder as the cluster sees it (gs://... or s3://...)")
    comp.add_argument("--pipeline-root", required=True, help="artifact root, e.g. gs://BUCKET/pipeline_root")
    comp.add_argument("--serving-dir", help="where Pusher writes blessed models (gs://...); not with --vertex-endpoint")
    comp.add_argument("--image", required=True,
                      help="container image with mean-tf installed (built from the repository's Dockerfile)")
    comp.add_argument("--local-cluster-paths", action="store_true",
                      help="accept absolute paths for --data-root/--pipeline-root/--serving-dir (a cluster whose "
                           "pods mount that volume at the same path)")
    comp.add_argument("--trainer-cpu", type=float, default=configs.TRAINER_RESOURCES["cpu"],
                      help=f"Trainer CPU request (default {configs.TRAINER_RESOURCES['cpu']:g})")
    comp.add_argument("--trainer-memory-gib", type=float, default=configs.TRAINER_RESOURCES["memory_gib"],
                      help=f"Trainer memory request in GiB (default {configs.TRAINER_RESOURCES['memory_gib']:g})")
    comp.add_argument("--vertex-project", help="train on Vertex AI Training in this GCP project (with --vertex-region)")
    comp.add_argument("--vertex-region", help="Vertex AI region, e.g. europe-west4")
    comp.add_argument("--vertex-machine-type", default=configs.VERTEX_MACHINE_TYPE,
                      help=f"Vertex AI Training machine (default {configs.VERTEX_MACHINE_TYPE})")
    comp.add_argument("--vertex-endpoint", help="push blessed models to this Vertex AI endpoint instead of --serving-dir")
    comp.add_argument("--vertex-serving-image", help="the TF serving container for --vertex-endpoint")
    comp.add_argument("--out", default=configs.DEFAULT_KFP_OUTPUT,
                      help=f"JSON file (default {configs.DEFAULT_KFP_OUTPUT})")
    common(comp)
    comp.set_defaults(func=compile_main)


def _bundled_dataset(output_dir: str) -> str:
    from mean_tf.data import online_retail
    from mean_tf.files import exists

    folder = os.path.join(output_dir, "data", online_retail.NAME)
    if not exists(os.path.join(folder, "manifest.json")):
        print(f"building the bundled Online Retail II dataset in {folder}")
        online_retail.build(folder)
    return folder


def run_main(args) -> int:
    from pipeline import configs, local_runner

    data = args.data or _bundled_dataset(args.out)
    summary = local_runner.run(
        data, args.out, model_name=args.model, config=config_from_args(args), label=args.label,
        gini_floor=args.gini_floor, gini_max_drop=args.gini_max_drop,
        beam_pipeline_args=args.beam_args or configs.BEAM_PIPELINE_ARGS, enable_cache=not args.no_cache,
        shuffle_examples=args.shuffle_examples, tune=args.tune, tuner_trials=args.tuner_trials,
        score_data=args.score)
    print(local_runner.format_summary(summary))
    return 0


def compile_main(args) -> int:
    from mean_tf.errors import MeanTFError
    from pipeline import configs, kubeflow_v2_runner

    vertex = None
    if args.vertex_project or args.vertex_region or args.vertex_endpoint:
        if not (args.vertex_project and args.vertex_region):
            raise MeanTFError("compile: Vertex AI needs both --vertex-project and --vertex-region")
        if args.vertex_endpoint and not args.vertex_serving_image:
            raise MeanTFError("compile: --vertex-endpoint needs --vertex-serving-image (a TF serving container)")
        vertex = {"project": args.vertex_project, "region": args.vertex_region,
                  "machine_type": args.vertex_machine_type, "endpoint": args.vertex_endpoint,
                  "serving_image": args.vertex_serving_image}
    path = kubeflow_v2_runner.compile_pipeline(
        args.data, pipeline_root=args.pipeline_root, serving_model_dir=args.serving_dir, image=args.image,
        output_file=args.out, data_root=args.data_root, local_cluster_paths=args.local_cluster_paths,
        trainer_resources={"cpu": args.trainer_cpu, "memory_gib": args.trainer_memory_gib}, vertex=vertex, model_name=args.model, config=config_from_args(args),
        label=args.label, gini_floor=args.gini_floor, gini_max_drop=args.gini_max_drop,
        beam_pipeline_args=args.beam_args or configs.BEAM_PIPELINE_ARGS, shuffle_examples=args.shuffle_examples,
        tune=args.tune, tuner_trials=args.tuner_trials)
    print(f"wrote {path}")
    return 0
