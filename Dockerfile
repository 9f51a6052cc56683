# The mean-tf container image for Kubeflow Pipelines v2 / Vertex AI Pipelines and Vertex AI Training:
#   docker build -t gcr.io/PROJECT/mean-tf:0.1.0 . && docker push gcr.io/PROJECT/mean-tf:0.1.0
#   mean-tf pipeline compile --image gcr.io/PROJECT/mean-tf:0.1.0 ...
# Every component imports mean_tf and pipeline from this image (dotted paths, no module_file wheels);
# KubeflowV2DagRunner starts them with TFX's own entry point, installed with tfx from the lock.
FROM python:3.10-slim-bookworm

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/mean-tf
# The pinned lock first: a code change does not reinstall the dependencies.
COPY requirements.lock ./
RUN python -m pip install --upgrade pip==26.3 \
    && python -m pip install -r requirements.lock
COPY setup.py README.md ./
COPY mean_tf ./mean_tf
COPY pipeline ./pipeline
RUN python -m pip install --no-deps . \
    && python -c "import mean_tf, pipeline.pipeline, tensorflow as tf; assert tf.keras.__name__.startswith('tf_keras')"
