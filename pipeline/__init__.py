"""The mean-tf TFX pipeline: `pipeline.create_pipeline`, `configs` (defaults and `PipelineSettings`), custom
`components`, schemas, the local (LocalDagRunner) and Kubeflow V2 / Vertex runners, and the `mean-tf pipeline`
and `mean-tf demo` commands (`commands`).

May import: mean_tf.
"""
