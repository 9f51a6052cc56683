"""The mean-tf TFX pipeline: `pipeline.create_pipeline`, `configs`, custom `components`, schemas, and the
local (LocalDagRunner) and Kubeflow V2 / Vertex runners."""
