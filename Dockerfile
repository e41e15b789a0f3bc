# Model server image. CPU by default; the GPU variant installs TensorFlow with its CUDA wheels:
#   docker build -t tf-model-serving .                              (CPU)
#   docker build --build-arg TF_EXTRA=gpu -t tf-model-serving:gpu .  (GPU, needs the NVIDIA runtime)
FROM python:3.11-slim

# "" for CPU, "gpu" for the pyproject extra that pulls tensorflow[and-cuda]
ARG TF_EXTRA=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SERVING_MODELS_DIR=/srv/models \
    SERVING_HOST=0.0.0.0 \
    SERVING_PORT=8000

RUN useradd --create-home --uid 10001 serving
WORKDIR /srv

# the package (no dev/train/test extras), then the models: model updates do not reinstall TensorFlow
COPY pyproject.toml README.md ./
COPY app/ app/
RUN pip install ".${TF_EXTRA:+[${TF_EXTRA}]}"
COPY models/ models/

USER serving
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
# python -m app: uvicorn with the HTTP limits and the SIGTERM drain of app/server.py
CMD ["python", "-m", "app"]
