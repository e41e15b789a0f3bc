"""Start ``python -m app`` (uvicorn with the HTTP limits and the drain of ``app/server.py``) on
a free port, as a user or an orchestrator would, and stop it by its PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.paths import REPO_ROOT

STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(models: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """``python -m app`` started (not yet ready) and its base URL; its output in ``stdout``."""
    port = free_port()
    env = {
        **os.environ,
        "SERVING_MODELS_DIR": str(models),
        "SERVING_HOST": "127.0.0.1",
        "SERVING_PORT": str(port),
        "SERVING_LOG_LEVEL": "warning",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SERVING_METRICS_MAX_AGE_S": "0",  # tests read counters before and after a request
        **{f"SERVING_{k.upper()}": v for k, v in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def start_server(models: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """The process and its base URL, once ``/v2/health/ready`` answers 200."""
    process, url = launch(models, **settings)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace")
            pytest.fail(f"python -m app exited with {process.returncode}:\n{output[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(process)
            pytest.fail("the server did not become ready in time")
        time.sleep(0.25)


def stop_server(process: subprocess.Popen, timeout_s: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
