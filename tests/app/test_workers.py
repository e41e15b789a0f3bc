"""``SERVING_WORKERS=2``: two processes on one socket, each with its models; metrics are summed
over them, readiness and SIGTERM work as with one; a Triton API unload or load reaches both
workers before it is answered, and a worker that replaces a dead one keeps to it; a worker that
cannot start stops the server."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.serving_process import launch, start_server, stop_server


def test_two_workers_serve_count_and_stop_together(tiny_models_dir, tmp_path):
    (tmp_path / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    process, url = start_server(tmp_path, workers="2", drain_seconds="0.5")
    try:
        body = {"instances": np.zeros((1, 8, 8, 1), dtype=np.uint8).tolist()}
        # New connections: the kernel spreads them over the two workers, both serving.
        for _ in range(40):
            assert httpx.post(f"{url}/v1/models/tiny_image:predict", json=body).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        counted = re.findall(
            r'serving_http_requests_total\{endpoint="/v1/models/\{name\}:\{method\}",'
            r'method="POST",model="tiny_image",status="200"\} ([0-9.]+)',
            metrics,
        )
        assert counted and float(counted[0]) == 40  # summed over both workers
        workers = re.findall(
            r'serving_model_ready\{[^}]*model="tiny_image"[^}]*\} ([0-9.]+)', metrics
        )
        assert workers and all(float(v) == 1 for v in workers)
        children = [
            p
            for p in Path("/proc").glob("[0-9]*")
            if _parent(p) == process.pid and b"multiprocessing" in _cmdline(p)
        ]
        assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert time.monotonic() - start < 15
    finally:
        stop_server(process)


def test_a_worker_that_cannot_start_stops_the_server_with_status_3(tmp_path):
    """As one process does when its models cannot load (uvicorn's start-up failure), not a
    loop of replacements that never serve (before: 38 restarts in 20 s, never exiting)."""
    process, _ = launch(tmp_path / "missing", workers="2", log_level="info")
    try:
        output, _ = process.communicate(timeout=90)
    finally:
        stop_server(process)
    assert process.returncode == 3, output.decode(errors="replace")[-2000:]
    assert b"before it started serving; stopping every worker" in output
    assert b"starting another" not in output


def test_workers_whose_supervisor_is_killed_drain_and_exit(tiny_models_dir, tmp_path):
    """SIGKILL (or a crash) passes no SIGTERM on: the workers notice within a second (before:
    they served on for ever, unsupervised, holding the port)."""
    (tmp_path / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    process, url = start_server(tmp_path, workers="2", drain_seconds="0.5")
    workers = _workers(process.pid)
    try:
        assert len(workers) == 2
        process.kill()
        process.wait(5)
        deadline = time.monotonic() + 15
        while any(
            Path(f"/proc/{pid}").exists() and _parent(Path(f"/proc/{pid}")) for pid in workers
        ):
            assert time.monotonic() < deadline, "the orphaned workers are still running"
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v2/health/live", timeout=2)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop_server(process)


def test_an_api_unload_and_load_reach_every_worker(tiny_models_dir, tmp_path):
    (tmp_path / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    process, url = start_server(
        tmp_path, workers="2", drain_seconds="0", unload_grace_seconds="0.2", model_control="true"
    )
    try:
        assert httpx.post(f"{url}/v2/repository/models/tiny_image/unload").status_code == 200
        assert _answers(url) == {404}  # every worker, at once: no model of that name
        assert httpx.post(f"{url}/v2/repository/models/tiny_image/load").status_code == 200
        assert _answers(url) == {200}
        # A worker that dies is replaced by one that keeps to the unload.
        assert httpx.post(f"{url}/v2/repository/models/tiny_image/unload").status_code == 200
        workers = _workers(process.pid)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 90
        # Up once it has acknowledged the shared state, at the end of its first load.
        while not _acknowledged(set(_workers(process.pid)) - set(workers)):
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        assert _answers(url) == {404}
        assert httpx.post(f"{url}/v2/repository/models/tiny_image/load").status_code == 200
        assert _answers(url) == {200}
    finally:
        stop_server(process)


def _answers(url: str) -> set[int]:
    """The statuses of a prediction on 40 new connections (both workers take some)."""
    body = {"instances": np.zeros((1, 8, 8, 1), dtype=np.uint8).tolist()}
    return {
        httpx.post(f"{url}/v1/models/tiny_image:predict", json=body).status_code for _ in range(40)
    }


def _acknowledged(pids: set[int]) -> bool:
    control_dirs = Path(tempfile.gettempdir()).glob("tf-model-serving-control-*")
    return any((folder / f"ack-{pid}").exists() for folder in control_dirs for pid in pids)


def _workers(supervisor: int) -> list[int]:
    return sorted(
        int(p.name)
        for p in Path("/proc").glob("[0-9]*")
        if _parent(p) == supervisor
        and b"multiprocessing" in _cmdline(p)
        and b"resource_tracker" not in _cmdline(p)
    )


def _parent(proc: Path) -> int | None:
    try:
        return int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(proc: Path) -> bytes:
    try:
        return proc.joinpath("cmdline").read_bytes()
    except OSError:
        return b""
