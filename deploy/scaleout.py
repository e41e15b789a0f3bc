"""Scale-out end to end on one machine: replicas behind a load balancer, a rolling restart and a
new model version, under load, with zero failed requests as the goal.

    python deploy/scaleout.py            # needs haproxy (Debian package) and the test extras

1. A real S3 API (moto's server, 127.0.0.1) holds the model repository (``models/mnist``).
2. Two replicas (``python -m app``) load it from ``s3://``, polling it every second.
3. haproxy on 127.0.0.1 balances them, health-checking ``/v2/health/ready`` every 200 ms.
4. Load: tritonclient (``tritonclient.http.aio``, KServe v2, binary tensors), N concurrent
   callers through the balancer, for the whole run.
5. Rolling restart: a third replica starts; once it is ready the first gets SIGTERM (it turns
   not-ready, drains and exits, as Kubernetes would do with ``maxSurge 1, maxUnavailable 0``).
6. Version roll: ``mnist`` version N+1 is uploaded to S3; every live replica picks it up.

Prints: requests, failures (non-2xx, connection errors), each replica's share (from its own
``/metrics``), latency p50/p99 overall and during the roll, and when each replica served the new
version. Everything started is stopped by its PID; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Replica:
    """One ``python -m app`` on its own port (chosen now, so that the balancer can list it
    before it starts), loading the repository from S3."""

    def __init__(self, name: str, s3_url: str, cache: Path, logs: Path) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = logs / f"replica-{name}.log"
        self.env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SERVING_MODELS_DIR": "s3://models/repo",
            "SERVING_STORAGE_OPTIONS": json.dumps(storage_options(s3_url)),
            "SERVING_MODEL_CACHE_DIR": str(cache / name),
            "SERVING_REPOSITORY_POLL_SECONDS": "1",
            "SERVING_UNLOAD_GRACE_SECONDS": "1",
            "SERVING_DRAIN_SECONDS": "3",
            "SERVING_HOST": HOST,
            "SERVING_PORT": str(self.port),
            "SERVING_LOG_LEVEL": "warning",
        }

    def start(self) -> Replica:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout_s: float = 180) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited")
            if get(f"{self.url}/v2/health/ready")[0] == 200:
                return time.monotonic() - start
            time.sleep(0.2)
        raise RuntimeError(f"replica {self.name} not ready")

    def served(self) -> float:
        """Inference requests this replica answered (its own /metrics)."""
        status, body = get(f"{self.url}/metrics")
        if status != 200:
            return float("nan")
        pattern = (
            r'serving_http_requests_total\{endpoint="/v2/models/\{name\}/infer".*?\} ([0-9.e+]+)'
        )
        return sum(float(v) for v in re.findall(pattern, body.decode()))

    def versions(self) -> list[str]:
        status, body = get(f"{self.url}/v1/models/mnist")
        if status != 200:
            return []
        return [
            s["version"]
            for s in json.loads(body)["model_version_status"]
            if s["state"] == "AVAILABLE"
        ]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def haproxy_config(port: int, replicas: list[Replica]) -> str:
    servers = "\n".join(
        f"    server {r.name} {HOST}:{r.port} check inter 200ms fall 1 rise 2" for r in replicas
    )
    return f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend serving
    bind {HOST}:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
{servers}
"""


async def load(url: str, stop: asyncio.Event, concurrency: int, record: list) -> None:
    import tritonclient.http.aio as triton

    x = np.zeros((1, 28, 28, 1), dtype=np.uint8)
    x[0, 4:24, 12:16, 0] = 255
    client = triton.InferenceServerClient(url.removeprefix("http://"), conn_limit=concurrency)

    async def caller() -> None:
        while not stop.is_set():
            tensor = triton.InferInput("pixels", list(x.shape), "UINT8")
            tensor.set_data_from_numpy(x)
            start = time.monotonic()
            try:
                result = await client.infer("mnist", [tensor])
                record.append(
                    (start, time.monotonic() - start, "ok", result.get_response()["model_version"])
                )
            except Exception as exc:  # noqa: BLE001 (every failure is counted)
                record.append(
                    (start, time.monotonic() - start, type(exc).__name__ + str(exc)[:80], "")
                )

    try:
        await asyncio.gather(*[caller() for _ in range(concurrency)])
    finally:
        await client.close()


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[str, Any]]:
    """A real S3 API on 127.0.0.1 (moto's server, stopped on exit) holding an empty bucket
    ``models``: ``(endpoint URL, boto3 client)``."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="models")
        yield url, client
    finally:
        server.stop()


def storage_options(s3_url: str) -> dict[str, Any]:
    """``SERVING_STORAGE_OPTIONS`` for the bucket of :func:`moto_s3`."""
    return {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }


def upload(s3, local: Path, prefix: str) -> None:
    for file in local.rglob("*"):
        if file.is_file():
            s3.upload_file(str(file), "models", f"{prefix}/{file.relative_to(local)}")


async def scenario(args, s3, s3_url: str, work: Path, logs: Path) -> dict:
    source = REPO_ROOT / "models" / "mnist"
    version = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
    upload(s3, source / str(version), f"repo/mnist/{version}")
    replicas = [Replica(n, s3_url, work / "cache", logs) for n in ("a", "b", "c")]
    a, b, c = replicas  # c is the surge replica of the rolling restart: started later
    a.start()
    b.start()
    lb_port = free_port()
    config = work / "haproxy.cfg"
    config.write_text(haproxy_config(lb_port, replicas))
    haproxy = None
    events: dict[str, float] = {}
    record: list = []
    try:
        startup = {r.name: round(r.wait_ready(), 1) for r in (a, b)}
        haproxy = subprocess.Popen(
            ["haproxy", "-f", str(config)],
            stdout=(logs / "haproxy.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        lb = f"http://{HOST}:{lb_port}"
        while get(f"{lb}/v2/health/ready")[0] != 200:
            await asyncio.sleep(0.2)
        stop = asyncio.Event()
        load_task = asyncio.create_task(load(lb, stop, args.concurrency, record))
        t0 = time.monotonic()
        await asyncio.sleep(args.warm_s)
        # Rolling restart: surge one replica, then retire the first.
        events["surge_start"] = time.monotonic() - t0
        c.start()
        await asyncio.to_thread(c.wait_ready)
        events["surge_ready"] = time.monotonic() - t0
        await asyncio.sleep(1.0)  # the balancer's health check marks it up (rise 2 x 200 ms)
        events["sigterm_a"] = time.monotonic() - t0
        a_served_before = a.served()
        a.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(a.process.wait, 60)
        events["a_exited"] = time.monotonic() - t0
        await asyncio.sleep(args.warm_s)
        # Version roll: a new version in S3, picked up by every live replica.
        events["upload_new_version"] = time.monotonic() - t0
        upload(s3, source / str(version), f"repo/mnist/{version + 1}")
        live_from = {}
        deadline = time.monotonic() + 120
        while len(live_from) < 2 and time.monotonic() < deadline:
            for r in (b, c):
                if r.name not in live_from and str(version + 1) in r.versions():
                    live_from[r.name] = round(time.monotonic() - t0, 2)
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.warm_s)
        stop.set()
        await load_task
        total = time.monotonic() - t0
        shares = {"a": a_served_before, "b": b.served(), "c": c.served()}
    finally:
        if haproxy is not None and haproxy.poll() is None:
            haproxy.terminate()
            haproxy.wait(10)
        for r in replicas:
            r.stop()
    return summarize(record, events, shares, live_from, startup, total, version)


def summarize(record, events, shares, live_from, startup, total, version) -> dict:
    failures = [r for r in record if r[2] != "ok"]
    latencies = np.array([r[1] for r in record]) * 1000
    t_first = min(r[0] for r in record) if record else 0
    roll = [
        r[1] * 1000
        for r in record
        if events["surge_start"] <= r[0] - t_first <= events["a_exited"] + 2
    ]
    versions = {}
    for r in record:
        if r[2] == "ok":
            versions[r[3]] = versions.get(r[3], 0) + 1
    shares_sum = sum(v for v in shares.values() if v == v)
    return {
        "requests": len(record),
        "failures": len(failures),
        "failure_kinds": sorted({f[2] for f in failures})[:5],
        "seconds": round(total, 1),
        "requests_per_s": round(len(record) / total, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "p99_during_roll_ms": round(float(np.percentile(roll, 99)), 1) if roll else None,
        "replica_share": {k: round(v / shares_sum, 3) for k, v in shares.items() if v == v},
        "answers_by_version": versions,
        "new_version": version + 1,
        "new_version_live_at_s": live_from,
        "replica_ready_after_s": startup,
        "events_s": {k: round(v, 2) for k, v in events.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warm-s", type=float, default=4.0, help="load between the steps")
    args = parser.parse_args(argv)
    if shutil.which("haproxy") is None:
        print("haproxy not found: apt-get install -y haproxy", file=sys.stderr)
        return 2
    with moto_s3() as (s3_url, s3), tempfile.TemporaryDirectory() as tmp:
        logs = REPO_ROOT / "bench" / "results"
        logs.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(scenario(args, s3, s3_url, Path(tmp), logs))
    print(json.dumps(result, indent=2))
    (REPO_ROOT / "bench" / "results" / "scaleout.json").write_text(json.dumps(result, indent=2))
    return 0 if result["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
