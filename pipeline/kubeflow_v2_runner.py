"""Compile the mean-tf pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (KubeflowV2DagRunner).

    mean-tf pipeline compile --data DATASET_DIR --data-root gs://BUCKET/data/online_retail_ii \
        --pipeline-root gs://BUCKET/pipeline_root --serving-dir gs://BUCKET/serving \
        --image gcr.io/PROJECT/mean-tf:0.1.0 --out out/mean_tf_pipeline.json \
        --beam-arg=--runner=DataflowRunner --beam-arg=--project=PROJECT --beam-arg=--region=REGION \
        --beam-arg=--temp_location=gs://BUCKET/tmp

The image must have mean-tf installed (`pip install .` of this repository on a TFX 1.16 base image):
the components find `mean_tf.transform.preprocessing.preprocessing_fn`, `mean_tf.tfx_modules.trainer.run_fn`, the TFMA metrics
and the `pipeline.components` by import. The manifest is read here, at compile time (feature lists
and split files); the components read the data from --data-root. Submit to Vertex AI:

    from google.cloud import aiplatform
    aiplatform.init(project="PROJECT", location="REGION")
    aiplatform.PipelineJob(display_name="mean-tf", template_path="out/mean_tf_pipeline.json",
                           pipeline_root="gs://BUCKET/pipeline_root").submit()
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
from mean_tf.errors import MeanTFError
from pipeline import configs


CLUSTER_SCHEMES = ("gs://", "s3://")


def check_cluster_uri(flag: str, uri: Optional[str], local_cluster_paths: bool = False) -> None:
    """MeanTFError unless the cluster can read `uri`: gs:// or s3://, or (with `local_cluster_paths`, for a
    cluster whose pods mount the same volume at the same place) an absolute path."""
    if not uri:
        raise MeanTFError(f"compile: {flag} is required (where the cluster finds it, e.g. gs://BUCKET/...)")
    if uri.startswith(CLUSTER_SCHEMES) or (local_cluster_paths and os.path.isabs(uri)):
        return
    where = "an absolute path" if os.path.isabs(uri) else "a relative path"
    raise MeanTFError(f"compile: {flag} {uri!r} is {where} on this machine, which the cluster cannot read: use "
                      f"gs://... or s3://... (or --local-cluster-paths when every pod mounts it at that path)")


def compile_pipeline(manifest_dir: str, settings: configs.PipelineSettings, *, pipeline_root: str,
                     serving_model_dir: Optional[str], data_root: str, output_file: str = configs.DEFAULT_KFP_OUTPUT,
                     local_cluster_paths: bool = False) -> str:
    """Write the Kubeflow V2 pipeline JSON; returns its path.

    Checked first (one MeanTFError each): a real `settings.image` (not the placeholder), and a `data_root`,
    `pipeline_root` and `serving_model_dir` the cluster can reach (`check_cluster_uri`); with a Vertex
    endpoint (`settings.vertex_endpoint`) the model goes there instead of `serving_model_dir`.
    """
    from mean_tf.data.manifest import read_manifest

    image = settings.image
    if not image or "YOUR_PROJECT" in image:
        raise MeanTFError("compile: --image is required: the container image with mean-tf installed "
                          "(build it with the repository's Dockerfile), e.g. gcr.io/PROJECT/mean-tf:0.1.0")
    check_cluster_uri("--data-root", data_root, local_cluster_paths)
    check_cluster_uri("--pipeline-root", pipeline_root, local_cluster_paths)
    if not settings.vertex_endpoint:
        check_cluster_uri("--serving-dir", serving_model_dir, local_cluster_paths)
    manifest = read_manifest(manifest_dir, check_files=False)  # before TFX loads: errors in seconds
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(settings, pipeline_root=pipeline_root, manifest=manifest, data_root=data_root,
                               serving_model_dir=serving_model_dir)
    output_file = os.path.abspath(output_file)
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file), output_filename=os.path.basename(output_file))
    runner.run(pipeline, write_out=True)
    return output_file


def main(argv=None) -> int:
    """`python -m pipeline.kubeflow_v2_runner ARGS` is `mean-tf pipeline compile ARGS`."""
    from mean_tf.cli import main as cli

    return cli(["pipeline", "compile", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
