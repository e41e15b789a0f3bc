# Model server image. CPU by default; the GPU variant installs TensorFlow with its CUDA wheels:
#   docker build -t tf-model-serving .                                   (CPU)
#   docker build --build-arg TF_EXTRA=gpu -t tf-model-serving:gpu .       (GPU, NVIDIA runtime)
#   docker build --build-arg BASE_IMAGE=local/debian-python:bookworm .    (any base with python3
#                                  and python3-venv, e.g. deploy/docker/build_local.sh's)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# "" for CPU, "gpu" for the pyproject extra that pulls tensorflow[and-cuda], "cloud" for s3fs/gcsfs
ARG TF_EXTRA=""
# A CA bundle for pip, where the build's network needs one (see deploy/docker/build_local.sh)
ARG PIP_CA_BUNDLE=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SERVING_MODELS_DIR=/srv/models \
    SERVING_HOST=0.0.0.0 \
    SERVING_PORT=8000

RUN python3 -m venv /opt/venv \
    && (id serving 2>/dev/null || useradd --create-home --uid 10001 serving)
WORKDIR /srv

# Dependencies first, from pyproject.toml alone (a stub package and README): a change to the
# code or the README reuses this layer and never reinstalls TensorFlow.
COPY pyproject.toml ./
RUN if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="$PIP_CA_BUNDLE"; fi \
    && mkdir -p app && touch app/__init__.py README.md \
    && pip install ".${TF_EXTRA:+[${TF_EXTRA}]}" \
    && pip uninstall -y tf-model-serving && rm -rf app build *.egg-info README.md

COPY README.md ./
COPY app/ app/
RUN if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="$PIP_CA_BUNDLE"; fi \
    && pip install --no-deps . && rm -rf build *.egg-info
COPY models/ models/

USER serving
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('SERVING_PORT', '8000'), timeout=2)"]
# python -m app: uvicorn with the HTTP limits and the SIGTERM drain of app/server.py
CMD ["python", "-m", "app"]
