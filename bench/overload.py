"""Overload, deadline, hostile-input, shutdown and memory figures of the serving core, in one run.

``python -m bench.overload`` starts ``python -m app`` (the production server: HTTP limits and
SIGTERM drain) on 127.0.0.1 with the committed ``mnist`` model, and measures:

1. **capacity**: single-digit TF Serving ``:predict`` at 64 connections (wrk, closed loop);
2. **overload** at 4x and 8x those connections: goodput (2xx per second) against capacity, and
   from a probe client sending one request at a time beside the load, the p99 latency of
   admitted (200) and of refused (429/503) requests;
3. **deadline**: ``SERVING_REQUEST_TIMEOUT_MS=50`` at 4x: answers per second that arrived within
   50 ms (2xx rate x the probe's share of 200s within 50 ms);
4. **typed endpoint**: the same with one 28x28 PNG uploaded to ``/v1/images/mnist:classify``
   (capacity, and 4x with a 50 ms deadline);
5. **hostile requests**: a 50,000-deep JSON body, a KServe binary tensor of 26,000 digits, a
   4096x4096 RGBA PNG (and a 5000x5000 one, over the pixel cap), 1 MB of header, 10,000 headers,
   200 slow-header connections, ~60,000 requests for random model names: status, time, the
   server's RSS growth, a liveness probe's latency meanwhile, and ``/metrics`` size; and four
   clients uploading the largest pictures the limits allow, back to back, beside a client
   uploading single digits (its latency alone and beside them);
6. **shutdown**: SIGTERM under 128 connections of load that stops within the drain window
   (as a load balancer would take the replica out): failed requests, how soon readiness turned
   503, and when the process exited, with a slow-body client holding a connection open.

Every figure is printed as it is measured and the whole is written to
``bench/results/overload.json``. Traffic goes to 127.0.0.1 only, every loop is bounded, and
every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from bench.run import LUA_SCRIPT, REPO_ROOT, RESULTS_DIR, free_port, machine_description

HOST = "127.0.0.1"
RANDOM_NAMES_LUA = Path(__file__).with_name("random_names.lua")


# ---------------------------------------------------------------- server
class Server:
    """``python -m app`` with the given settings; stopped by its PID."""

    def __init__(
        self, models_dir: Path, model: str | list[str], log_dir: Path, **settings: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SERVING_MODELS_DIR": str(models_dir),
            "SERVING_MODEL_NAMES": json.dumps([model] if isinstance(model, str) else model),
            "SERVING_HOST": HOST,
            "SERVING_PORT": str(self.port),
            "SERVING_LOG_LEVEL": "warning",
            **{f"SERVING_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.log_path = log_dir / f"overload-server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 180) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            try:
                if get(f"{self.url}/v2/health/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError("server not ready in time")

    def rss_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.send_signal(signal.SIGINT)  # the second one skips the drain
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# ---------------------------------------------------------------- clients
def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, float]:
    """(status, body, seconds); a refused or reset connection is status 0."""
    start = time.perf_counter()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, reply.read(), time.perf_counter() - start
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - start
    except (OSError, urllib.error.URLError):
        return 0, b"", time.perf_counter() - start


def get(url: str, timeout: float = 5) -> tuple[int, bytes, float]:
    return request("GET", url, timeout=timeout)


def wrk(
    url: str,
    connections: int,
    duration_s: float,
    body_file: Path,
    script: Path = LUA_SCRIPT,
    timeout_s: float = 30,
    content_type: str = "application/json",
    threads: int = 2,
    prefix: tuple[str, ...] = (),
) -> dict:
    """wrk's summary of a closed-loop load, with ``ok_per_s`` and ``failed`` added; ``prefix``
    runs wrk under another command (e.g. taskset)."""
    threads = min(connections, threads)
    done = subprocess.run(
        [
            *prefix,
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            f"--timeout={timeout_s:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_CONTENT_TYPE": content_type},
        capture_output=True,
        text=True,
        timeout=duration_s + 90,
        check=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line.removeprefix("BENCH_JSON "))
            seconds = result["duration_us"] / 1e6
            failed = result["errors"]["status"] + sum(
                result["errors"][k] for k in ("connect", "read", "write", "timeout")
            )
            result["ok_per_s"] = (result["requests"] - result["errors"]["status"]) / seconds
            result["failed"] = failed
            return result
    raise RuntimeError(f"no summary from wrk:\n{done.stdout}\n{done.stderr}")


class Probe:
    """A few clients beside the load, one request at a time each, recording (status, seconds)
    of every request: on a keep-alive connection (as the load's own clients, which resend at
    once), or with ``fresh`` on a new connection each (a client that has not been refused
    before: its connection is opened before the clock starts)."""

    def __init__(
        self,
        url: str,
        body: bytes,
        clients: int = 4,
        interval_s: float = 0.005,
        *,
        fresh: bool = False,
        content_type: str = "application/json",
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.body, self.interval_s, self.fresh = body, interval_s, fresh
        self.headers = {"Content-Type": content_type}
        self.samples: list[tuple[int, float]] = []
        self.errors: list[str] = []  # of the requests with no answer (status 0)
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        connection = None
        while not self.stopped.is_set():
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if self.fresh:
                    try:
                        connection.connect()
                    except OSError:
                        connection = None
                        continue
            start = time.perf_counter()
            try:
                connection.request("POST", self.path, self.body, self.headers)
                reply = connection.getresponse()
                reply.read()
                status = reply.status
                if self.fresh or reply.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                status = 0
                self.errors.append(repr(exc)[:200])
                connection.close()
                connection = None
            self.samples.append((status, time.perf_counter() - start))
            time.sleep(self.interval_s)

    def stop(self) -> dict:
        self.stopped.set()
        for thread in self.threads:
            thread.join(40)
        admitted = [s for status, s in self.samples if status == 200]
        refused = [s for status, s in self.samples if status in (429, 503)]
        return {
            "samples": len(self.samples),
            "statuses": {
                str(k): sum(1 for s, _ in self.samples if s == k)
                for k in sorted({s for s, _ in self.samples})
            },
            "socket_errors": self.errors[:5],
            "admitted_p99_ms": _p99_ms(admitted),
            "refused_p99_ms": _p99_ms(refused),
            "admitted": admitted,
        }


def _p99_ms(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 99)) * 1000, 2) if values else None


# ---------------------------------------------------------------- payloads
def digit_body(data_dir: Path) -> bytes:
    npz = data_dir / "mnist" / "mnist.npz"
    if npz.is_file():
        with np.load(npz) as data:
            image = data["x_test"][0]
    else:
        image = np.zeros((28, 28), dtype=np.uint8)
        image[4:24, 12:16] = 255
    return json.dumps({"instances": image[None, ..., None].tolist()}).encode()


def png_bytes(side: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    ImageDraw.Draw(image).line(
        [(side // 5, side // 5), (side * 4 // 5, side // 5), (side * 2 // 5, side * 4 // 5)],
        fill=(0, 0, 0, 255),
        width=max(side // 15, 1),
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def encode_picture(pixels: np.ndarray, image_format: str = "PNG", **save) -> bytes:
    """uint8 pixels (H x W gray, H x W x 3 RGB, H x W x 4 RGBA) as a file's bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, **save)
    return buffer.getvalue()


def noise_picture(side: int, image_format: str, **save) -> bytes:
    """A picture of random pixels: the costliest to decode for its size (nothing compresses)."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encode_picture(pixels, image_format, **save)


def multipart(data: bytes, name: str, content_type: str = "image/png") -> tuple[bytes, str]:
    boundary = "benchboundary7d9"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------- sections
def section_overload(args, models_dir: Path, body_file: Path, results: dict) -> None:
    server = Server(models_dir, "mnist", args.log_dir, access_log="false", workers=args.workers)
    try:
        server.wait_ready()
        url = f"{server.url}/v1/models/mnist:predict"
        wrk(url, 64, 3, body_file)  # warm-up
        capacity = wrk(url, 64, args.duration, body_file)
        results["capacity"] = _summary(capacity)
        print(
            f"capacity (64 connections): {capacity['ok_per_s']:.0f} req/s, "
            f"p99 {capacity['latency_us']['p99'] / 1000:.1f} ms, failed {capacity['failed']}"
        )
        for factor in args.factors:
            probe = Probe(url, body_file.read_bytes())
            probe.start()
            load = wrk(url, 64 * factor, args.duration, body_file)
            seen = probe.stop()
            seen.pop("admitted")
            entry = {
                **_summary(load),
                "probe": seen,
                "goodput_share": round(load["ok_per_s"] / capacity["ok_per_s"], 3),
            }
            results[f"overload_{factor}x"] = entry
            print(
                f"{factor}x ({64 * factor} connections): goodput {load['ok_per_s']:.0f} req/s "
                f"= {entry['goodput_share']:.0%} of capacity; refused "
                f"{load['errors']['status']} ({load['errors']['status'] / load['requests']:.0%}"
                f"), socket errors {load['failed'] - load['errors']['status']}; probe: "
                f"admitted p99 {seen['admitted_p99_ms']} ms, refused p99 "
                f"{seen['refused_p99_ms']} ms, statuses {seen['statuses']}"
            )
    finally:
        server.stop()

    server = Server(
        models_dir,
        "mnist",
        args.log_dir,
        request_timeout_ms="50",
        workers=args.workers,
        **(
            {"refusal_delay_ms": args.refusal_delay_ms} if args.refusal_delay_ms is not None else {}
        ),
    )
    try:
        server.wait_ready()
        url = f"{server.url}/v1/models/mnist:predict"
        wrk(url, 64, 3, body_file)
        probe, fresh = _probes(url, body_file)
        load = wrk(url, 256, args.duration, body_file)
        seen, first = probe.stop(), fresh.stop()
        admitted = seen.pop("admitted")
        first.pop("admitted")
        in_time_share = (sum(1 for s in admitted if s <= 0.050) / len(admitted)) if admitted else 0
        in_time = load["ok_per_s"] * in_time_share
        entry = {
            **_summary(load),
            "probe": seen,
            "probe_new_connections": first,
            "in_time_per_s": round(in_time, 1),
            "in_time_share_of_capacity": round(in_time / capacity["ok_per_s"], 3),
        }
        results["deadline_50ms_4x"] = entry
        print(
            f"deadline 50 ms, 256 connections: 2xx {load['ok_per_s']:.0f} req/s, of which "
            f"{in_time_share:.0%} within 50 ms (probe) -> {in_time:.0f} req/s in time = "
            f"{entry['in_time_share_of_capacity']:.0%} of capacity (2xx, all within 50 ms of "
            f"their arrival in the app: {load['ok_per_s'] / capacity['ok_per_s']:.0%}); "
            f"504/429 {load['errors']['status']}; probe: refused p99 "
            f"{seen['refused_p99_ms']} ms, statuses {seen['statuses']}; new connections: "
            f"refused p99 {first['refused_p99_ms']} ms, admitted p99 "
            f"{first['admitted_p99_ms']} ms, statuses {first['statuses']}"
        )
    finally:
        server.stop()


def section_typed(args, models_dir: Path, results: dict) -> None:
    """The typed image endpoint (one 28x28 PNG, multipart) under the same overload: capacity
    with the default deadline, then 4x with a 50 ms one (every 2xx is within the deadline of its
    arrival in the app)."""
    body, content_type = multipart(png_bytes(28), "files")
    body_file = args.log_dir / "overload-digit.multipart"
    body_file.write_bytes(body)
    answered = {}  # 2xx per second, by deadline
    for timeout_ms, connections in (("5000", 64), ("50", 256)):
        server = Server(
            models_dir, "mnist", args.log_dir, access_log="false", request_timeout_ms=timeout_ms
        )
        try:
            server.wait_ready()
            url = f"{server.url}/v1/images/mnist:classify"
            wrk(url, 64, 3, body_file, content_type=content_type)  # warm-up
            load = wrk(url, connections, args.duration, body_file, content_type=content_type)
            answered[timeout_ms] = load["ok_per_s"]
            results[f"typed_image_{timeout_ms}ms_{connections}c"] = _summary(load)
        finally:
            server.stop()
    share = answered["50"] / answered["5000"]
    results["typed_image_deadline_50ms_4x_share"] = round(share, 3)
    print(
        f"typed image upload: capacity {answered['5000']:.0f} req/s (64 connections); 50 ms "
        f"deadline, 256 connections: {answered['50']:.0f} req/s in time = {share:.0%} of "
        "capacity"
    )


def _probes(url: str, body_file: Path) -> tuple[Probe, Probe]:
    """Started: 4 keep-alive clients (as the load's) and one that opens a new connection for
    each request, 20 a second (what a client sees that has not just been refused: the first
    refusal's latency). The probes' own CPU is taken from the server's on this box: kept
    light."""
    body = body_file.read_bytes()
    probes = Probe(url, body), Probe(url, body, clients=1, interval_s=0.05, fresh=True)
    for probe in probes:
        probe.start()
    return probes


def _summary(result: dict) -> dict:
    return {
        "connections_requests": result["requests"],
        "ok_per_s": round(result["ok_per_s"], 1),
        "non_2xx": result["errors"]["status"],
        "socket_errors": result["failed"] - result["errors"]["status"],
        "p50_ms": result["latency_us"]["p50"] / 1000,
        "p99_ms": result["latency_us"]["p99"] / 1000,
        "max_ms": result["latency_us"]["max"] / 1000,
    }


class LivenessWatch(threading.Thread):
    """Polls /v2/health/live while something else runs: the worst latency seen."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.worst, self.failures = url, 0.0, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            status, _, seconds = get(f"{self.url}/v2/health/live", timeout=30)
            self.worst = max(self.worst, seconds)
            self.failures += status != 200
            time.sleep(0.02)

    def stop(self) -> dict:
        self.stopped.set()
        self.join(35)
        return {
            "liveness_worst_ms": round(self.worst * 1000, 1),
            "liveness_failures": self.failures,
        }


def section_hostile(args, models_dir: Path, results: dict) -> None:
    server = Server(models_dir, "mnist", args.log_dir)
    hostile: dict[str, dict] = {}
    results["hostile"] = hostile
    try:
        server.wait_ready()
        url = server.url
        json_headers = {"Content-Type": "application/json"}

        def probe(
            name: str,
            method: str,
            path: str,
            body: bytes | None = None,
            headers: dict | None = None,
        ) -> None:
            watch = LivenessWatch(url)
            watch.start()
            before = server.rss_mb()[0]
            status, reply, seconds = request(method, url + path, body, headers, timeout=60)
            time.sleep(0.1)
            after, peak = server.rss_mb()
            entry = {
                "status": status,
                "ms": round(seconds * 1000, 1),
                "rss_before_mb": round(before),
                "rss_after_mb": round(after),
                "rss_peak_mb": round(peak),
                **watch.stop(),
                "answer": reply[:160].decode(errors="replace"),
            }
            hostile[name] = entry
            print(
                f"{name}: {status} in {entry['ms']} ms; RSS {entry['rss_before_mb']} -> "
                f"{entry['rss_after_mb']} MB (peak {entry['rss_peak_mb']}); liveness worst "
                f"{entry['liveness_worst_ms']} ms; {entry['answer'][:100]!r}"
            )

        deep = 50_000
        probe(
            "json_depth_50000",
            "POST",
            "/v1/models/mnist:predict",
            b'{"instances": ' + b"[" * deep + b"0" + b"]" * deep + b"}",
            json_headers,
        )
        probe(
            "kserve_shape_70_ones",
            "POST",
            "/v2/models/mnist/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "pixels", "shape": [1] * 70, "datatype": "UINT8", "data": [0]}
                    ]
                }
            ).encode(),
            json_headers,
        )
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [26000, 28, 28, 1],
                        "datatype": "UINT8",
                        "parameters": {"binary_data_size": 26000 * 784},
                    }
                ]
            }
        )
        probe(
            "kserve_binary_26000_digits",
            "POST",
            "/v2/models/mnist/infer",
            header.encode() + bytes(26000 * 784),
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
            },
        )
        big = np.zeros((1024, 28, 28, 1), dtype=np.uint8)
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": list(big.shape),
                        "datatype": "UINT8",
                        "parameters": {"binary_data_size": big.nbytes},
                    }
                ]
            }
        )
        probe(
            "kserve_binary_1024_digits_sliced",
            "POST",
            "/v2/models/mnist/infer",
            header.encode() + big.tobytes(),
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
            },
        )
        for side in (4096, 5000):
            body, content_type = multipart(png_bytes(side), f"{side}.png")
            probe(
                f"png_rgba_{side}x{side}_{len(body) // 1024}KB",
                "POST",
                "/v1/images/mnist:classify",
                body,
                {"Content-Type": content_type},
            )
        hostile["heavy_uploads_beside_digits"] = _heavy_uploads(url, seconds=15.0)
        print(f"heavy uploads beside single digits: {hostile['heavy_uploads_beside_digits']}")
        body = gzip.compress(b"[" * 19_000_000)
        probe(
            f"gzip_bomb_{len(body) // 1024}KB",
            "POST",
            "/v1/models/mnist:predict",
            body,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        hostile["header_1MB"] = _raw_status(
            url,
            b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        )
        hostile["headers_10000"] = _raw_status(
            url,
            b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
            + b"\r\n",
        )
        print(f"1 MB header: {hostile['header_1MB']}; 10,000 headers: {hostile['headers_10000']}")
        hostile["slow_headers_200"] = _slowloris(url, 200)
        print(f"200 slow-header connections: {hostile['slow_headers_200']}")

        before = len(get(f"{url}/metrics")[1])
        names = wrk(f"{url}/v1/models/x:predict", 32, 8, args.body_file, RANDOM_NAMES_LUA)
        status, metrics_body, seconds = get(f"{url}/metrics")
        hostile["random_model_names"] = {
            "requests": names["requests"],
            "metrics_bytes_before": before,
            "metrics_bytes_after": len(metrics_body),
            "scrape_ms": round(seconds * 1000, 1),
        }
        print(
            f"{names['requests']} requests for random model names: /metrics {before} -> "
            f"{len(metrics_body)} bytes, scraped in {seconds * 1000:.1f} ms"
        )
    finally:
        server.stop()


def _heavy_uploads(url: str, seconds: float, clients: int = 4) -> dict:
    """``clients`` threads upload the largest pictures the default limits let through (a
    4096x4096 JPEG of noise, 7.9 MB; a 1800x1800 PNG of noise, 9.7 MB) back to back, while a probe
    uploads one 28x28 digit at a time (keep-alive): the probe's latency alone and beside them. The
    pictures are decoded in the image pool, off the event loop; this says what that leaves."""
    path = "/v1/images/mnist:classify"
    digit, digit_type = multipart(png_bytes(28), "digit.png")
    heavy = [
        multipart(noise_picture(4096, "JPEG", quality=60), "noise.jpg", "image/jpeg"),
        multipart(noise_picture(1800, "PNG", compress_level=1), "noise.png"),
    ]

    def probe_for(duration: float) -> list[float]:
        probe = Probe(url + path, digit, clients=1, interval_s=0.01, content_type=digit_type)
        probe.start()
        time.sleep(duration)
        return probe.stop()["admitted"]

    statuses: dict[int, int] = {}
    stop = threading.Event()

    def upload(body: bytes, content_type: str) -> None:
        while not stop.is_set():
            status, _, _ = request(
                "POST", url + path, body, {"Content-Type": content_type}, timeout=60
            )
            statuses[status] = statuses.get(status, 0) + 1

    alone = probe_for(seconds / 2)
    threads = [
        threading.Thread(target=upload, args=heavy[i % len(heavy)], daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    beside = probe_for(seconds)
    stop.set()
    for thread in threads:
        thread.join(70)

    def summary(latencies: list[float]) -> dict:
        return {
            "n": len(latencies),
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
            "p99_ms": _p99_ms(latencies),
            "max_ms": round(max(latencies) * 1000, 1),
        }

    return {
        "heavy_sizes_mb": [round(len(body) / 1e6, 1) for body, _ in heavy],
        "heavy_statuses": statuses,
        "probe_alone": summary(alone),
        "probe_beside": summary(beside),
    }


def _raw_status(url: str, data: bytes) -> str:
    host, port = url.removeprefix("http://").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(data)
            answer = sock.recv(200)
        except OSError as exc:
            answer = f"connection {type(exc).__name__}".encode()
    line = answer.split(b"\r\n")[0].decode(errors="replace")
    return f"{line} in {(time.perf_counter() - start) * 1000:.1f} ms"


def _slowloris(url: str, count: int) -> dict:
    """``count`` connections sending a request head one byte a second: how long until the
    server has closed all of them, and the liveness probe meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.setblocking(False)
        sock.send(b"GET /v2/health/live HTTP/1.1\r\n")
        sockets.append(sock)
    watch = LivenessWatch(url)
    watch.start()
    start = time.monotonic()
    open_ = set(range(count))
    while open_ and time.monotonic() - start < 30:
        for i in list(open_):
            try:
                sockets[i].recv(200)  # data (the 408) or b"" (closed): the server is done
                open_.discard(i)
            except BlockingIOError:
                try:
                    sockets[i].send(b"X")  # one more byte of a header that never ends
                except OSError:
                    open_.discard(i)
            except OSError:
                open_.discard(i)
        time.sleep(1)
    closed_after = time.monotonic() - start
    for sock in sockets:
        sock.close()
    return {"all_closed_after_s": round(closed_after, 1), "still_open": len(open_), **watch.stop()}


def section_shutdown(args, models_dir: Path, body_file: Path, results: dict) -> None:
    server = Server(
        models_dir, "mnist", args.log_dir, drain_seconds="5", graceful_timeout_seconds="15"
    )
    try:
        server.wait_ready()
        url = f"{server.url}/v1/models/mnist:predict"
        wrk(url, 128, 2, body_file)  # warm-up
        slow = socket.create_connection((HOST, server.port))
        slow.sendall(
            b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        outcome: dict = {}
        load = threading.Thread(
            target=lambda: outcome.update(wrk(url, 128, 4, body_file)), daemon=True
        )
        load.start()
        time.sleep(1.5)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        not_ready_after = None
        while time.monotonic() - signalled < 3:
            if get(f"{server.url}/v2/health/ready", timeout=2)[0] == 503:
                not_ready_after = time.monotonic() - signalled
                break
            time.sleep(0.01)
        load.join(60)
        server.process.wait(60)
        exited_after = time.monotonic() - signalled
        slow.close()
        entry = {
            **_summary(outcome),
            "not_ready_after_ms": round((not_ready_after or -1) * 1000),
            "exited_after_s": round(exited_after, 2),
            "drain_seconds": 5,
            "graceful_timeout_seconds": 15,
            "exit_code": server.process.returncode,
        }
        results["shutdown"] = entry
        print(
            f"SIGTERM under 128 connections (load ends 2.5 s into a 5 s drain): "
            f"{outcome['requests']} requests, {entry['non_2xx']} non-2xx, "
            f"{entry['socket_errors']} socket errors; readiness 503 after "
            f"{entry['not_ready_after_ms']} ms; exited after {entry['exited_after_s']} s "
            f"(a slow-body client held a connection)"
        )
    finally:
        server.stop()


def section_readiness(args, models_dir: Path, results: dict, tmp: Path) -> None:
    broken = tmp / "with_broken"
    (broken / "mnist").mkdir(parents=True, exist_ok=True)
    if not (broken / "mnist" / "2").exists():
        (broken / "mnist" / "2").symlink_to(models_dir / "mnist" / "2")
    (broken / "mnist" / "3").mkdir(exist_ok=True)  # a version that cannot load
    server = Server(broken, "mnist", args.log_dir)
    try:
        end = time.monotonic() + 120
        status, body = 0, b""
        while time.monotonic() < end:
            status, body, _ = get(f"{server.url}/healthz", timeout=2)
            if status and json.loads(body)["reasons"] != ["models are still loading"]:
                break
            time.sleep(0.5)
        ready = get(f"{server.url}/v2/health/ready")
        results["readiness_one_failed_version"] = {
            "status": ready[0],
            "body": ready[1].decode()[:300],
        }
        print(f"1 of 2 versions failed to load: /v2/health/ready {ready[0]} {ready[1][:150]!r}")
    finally:
        server.stop()
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    server = Server(empty, "mnist", args.log_dir)
    code = server.process.wait(120)
    tail = server.log_path.read_text(errors="replace").strip().splitlines()
    message = next(
        (line for line in reversed(tail) if "RepositoryError:" in line), tail[-1] if tail else ""
    )
    results["readiness_empty_models_dir"] = {"exit_code": code, "message": message[:300]}
    print(f"empty models folder: exit code {code}: {message[:160]}")


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds per load")
    parser.add_argument("--sections", default="overload,typed,hostile,shutdown,readiness")
    parser.add_argument("--workers", type=int, default=1, help="SERVING_WORKERS of the server")
    parser.add_argument("--factors", default="4,8", help="overload factors (x 64 connections)")
    parser.add_argument(
        "--refusal-delay-ms",
        default=None,
        help="for the 50 ms deadline run (default: the server's)",
    )
    args = parser.parse_args(argv)
    args.factors = [int(f) for f in args.factors.split(",") if f]
    RESULTS_DIR.mkdir(exist_ok=True)
    args.log_dir = RESULTS_DIR
    args.body_file = RESULTS_DIR / "overload-digit.json"
    args.body_file.write_bytes(digit_body(args.data_dir))
    tmp = RESULTS_DIR / "overload-tmp"
    tmp.mkdir(exist_ok=True)
    results: dict = {
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "duration_s": args.duration,
        "workers": args.workers,
    }
    print(results["machine"])
    sections = args.sections.split(",")
    if "overload" in sections:
        section_overload(args, args.models_dir, args.body_file, results)
    if "typed" in sections:
        section_typed(args, args.models_dir, results)
    if "hostile" in sections:
        section_hostile(args, args.models_dir, results)
    if "shutdown" in sections:
        section_shutdown(args, args.models_dir, args.body_file, results)
    if "readiness" in sections:
        section_readiness(args, args.models_dir.resolve(), results, tmp)
    out = RESULTS_DIR / f"overload-{args.workers}w.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
