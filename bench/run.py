"""Serving benchmark: dynamic batching ON vs OFF under concurrent single-image ``:predict`` calls.

For each mode it starts ``python -m app`` (one worker, 127.0.0.1, a free port; ``--app`` serves an
ASGI app with plain uvicorn instead), waits for
``/v2/health/ready``, checks one prediction, loads the server with ``wrk`` (closed loop: N
connections, one MNIST digit per request, a Lua script for the POST body), and reads the mean batch
size of the measured window from the ``serving_batch_size`` histogram on ``/metrics``.
``wrk`` is C, so the load generator takes little of the server's CPU; with 2+ cores the server and
wrk are pinned to different cores (taskset) unless ``--no-pin``.

Usage: ``python -m bench`` (see ``--help``); ``--profile`` adds py-spy (``bench/profile.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from app.config import BatchingConfig
from bench import profiling

REPO_ROOT = Path(__file__).resolve().parents[1]
LUA_SCRIPT = Path(__file__).with_name("predict.lua")
RESULTS_DIR = Path(__file__).with_name("results")
HOST = "127.0.0.1"

# the issue's acceptance targets, checked at the end of a run with both modes
TARGET_MEAN_BATCH = 8.0
TARGET_SPEEDUP = 3.0
TARGET_P99_MS = 25.0


@dataclass
class ModeResult:
    mode: str
    max_batch_size: int
    max_wait_ms: float
    requests: int
    duration_s: float
    requests_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    model_calls: int
    mean_batch_size: float | None
    server_cpu_ms_per_request: float | None
    server_cores_used: float | None


# ---------------------------------------------------------------- payload


def make_payload(data_dir: Path, index: int) -> tuple[dict, int | None, str]:
    """One TF Serving row-format request with a real MNIST test digit (synthetic if absent)."""
    npz = data_dir / "mnist" / "mnist.npz"
    if npz.is_file():
        with np.load(npz) as data:
            image, label = data["x_test"][index], int(data["y_test"][index])
        source = f"{npz} x_test[{index}] (label {label})"
    else:
        # a thick vertical stroke, roughly a "1"; the label is not asserted
        image, label = np.zeros((28, 28), dtype=np.uint8), None
        image[4:24, 12:16] = 255
        source = "synthetic digit-like array (MNIST npz not found)"
    pixels = image.astype(np.uint8).reshape(28, 28, 1).tolist()
    return {"instances": [pixels]}, label, source


# ---------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def launch_prefix(cpus: str | None, niceness: int) -> list[str]:
    """taskset to the given cores; nice (negative, as root) to shield from other jobs' load."""
    prefix = ["nice", "-n", str(niceness)] if niceness else []
    return prefix + (["taskset", "-c", cpus] if cpus else [])


def start_server(
    port: int,
    model: str,
    batching: dict[str, str],
    prefix: list[str],
    log_path: Path,
    models_dir: Path,
    app_target: str | None,
) -> subprocess.Popen:
    env = os.environ.copy()
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SERVING_MODELS_DIR": str(models_dir),
            "SERVING_MODEL_NAMES": json.dumps([model]),
            "SERVING_MODEL_OVERRIDES": "{}",
            "SERVING_LOG_LEVEL": "warning",
            **batching,
        }
    )
    if app_target is None:  # the product: its HTTP limits, early admission, drain
        env.update(
            {
                "SERVING_HOST": HOST,
                "SERVING_PORT": str(port),
                "SERVING_WORKERS": "1",
                "SERVING_ACCESS_LOG": "false",
                "SERVING_DRAIN_SECONDS": "0",  # stop at once when the run is over
            }
        )
        command = [*prefix, sys.executable, "-m", "app"]
    else:
        command = [
            *prefix,
            sys.executable,
            "-m",
            "uvicorn",
            app_target,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    log = log_path.open("wb")
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(base_url: str, process: subprocess.Popen, timeout_s: float, log_path: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            status, _ = http("GET", f"{base_url}/v2/health/ready", timeout=2)
            if status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s (log: {log_path})")


def metric_families(base_url: str):
    _, text = http("GET", f"{base_url}/metrics")
    return text_string_to_metric_families(text.decode())


def wait_drained(base_url: str, model: str, timeout_s: float = 15.0) -> None:
    """Let the warm-up's leftover requests finish before the measured window starts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        depth = sum(
            sample.value
            for family in metric_families(base_url)
            if family.type == "gauge" and family.name.endswith("queue_depth")
            for sample in family.samples
            if sample.labels.get("model") == model
        )
        if depth == 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # responses being written and closed connections being noticed


def histogram_totals(families, name_suffix: str, model: str) -> tuple[float, float]:
    """(sum, count) of the histogram whose name ends with ``name_suffix``, for ``model``."""
    total = count = 0.0
    for family in families:
        if family.type != "histogram" or not family.name.endswith(name_suffix):
            continue
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return total, count


def batch_size_totals(base_url: str, model: str) -> tuple[float, float]:
    """(sum, count) of the ``*batch_size`` histogram for ``model``: instances and model calls."""
    return histogram_totals(metric_families(base_url), "batch_size", model)


def proc_stat(pid: int, thread: int | None = None) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` (of one of its threads with ``thread``) after the
    command name (Linux only): ``[0]`` is the state (field 3 of stat), ``[1]`` the parent,
    ``[11]`` / ``[12]`` utime / stime, ``[21]`` the RSS in pages. None when it is gone."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc (Linux only)."""
    return _cpu(proc_stat(pid))


def event_loop_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process's main thread: in a ``python -m app`` worker, its
    event loop (HTTP, routing, parsing, replies), apart from the model's threads (the batch
    thread and TensorFlow's own)."""
    return _cpu(proc_stat(pid, thread=pid))


def _cpu(fields: list[str] | None) -> float | None:
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- load


def run_wrk(
    url: str,
    body_file: Path,
    concurrency: int,
    duration_s: float,
    threads: int,
    prefix: list[str],
    timeout_s: float,
) -> dict:
    command = [
        *prefix,
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s:g}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"no summary from wrk:\n{done.stdout}\n{done.stderr}")


def check_prediction(url: str, body: bytes, label: int | None) -> str:
    status, reply = http("POST", url, body)
    if status != 200:
        raise RuntimeError(f"preflight :predict answered {status}: {reply[:500]!r}")
    probabilities = json.loads(reply)["predictions"][0]
    predicted = int(np.argmax(probabilities))
    if label is not None and predicted != label:
        raise RuntimeError(f"preflight: predicted {predicted}, expected {label}")
    return f"predicted {predicted} (p={max(probabilities):.3f})"


# ---------------------------------------------------------------- one mode


def run_mode(mode: str, args: argparse.Namespace, body_file: Path, label: int | None) -> ModeResult:
    batching_on = mode == "on"
    max_batch = args.max_batch_size if batching_on else 1
    max_wait = args.max_wait_ms if batching_on else 0.0
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    url = f"{base_url}/v1/models/{args.model}:predict"
    log_path = args.results_dir / f"server-{mode}.log"
    print(
        f"\n== batching {mode.upper()}: max_batch_size={max_batch} max_wait_ms={max_wait:g}, "
        f"server on {base_url} (cpus {args.server_cpus or 'all'}), log {log_path}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    server = start_server(
        port,
        args.model,
        {"SERVING_MAX_BATCH_SIZE": str(max_batch), "SERVING_MAX_WAIT_MS": str(max_wait)},
        launch_prefix(args.server_cpus, args.nice),
        log_path,
        args.models_dir,
        args.app,
    )
    try:
        ready_s = wait_ready(base_url, server, args.ready_timeout, log_path)
        print(
            f"   ready after {ready_s:.1f} s; preflight: "
            f"{check_prediction(url, body_file.read_bytes(), label)}",
            flush=True,
        )
        if args.warmup > 0:
            run_wrk(
                url,
                body_file,
                args.concurrency,
                args.warmup,
                args.threads,
                launch_prefix(args.wrk_cpus, args.nice),
                args.timeout,
            )
            wait_drained(base_url, args.model)
        before = batch_size_totals(base_url, args.model)
        cpu_before = cpu_seconds(server.pid)
        profiler = (
            profiling.start(server.pid, args.duration, args.results_dir, mode, args.native)
            if args.profile
            else None
        )
        summary = run_wrk(
            url,
            body_file,
            args.concurrency,
            args.duration,
            args.threads,
            launch_prefix(args.wrk_cpus, args.nice),
            args.timeout,
        )
        if profiler is not None:
            print(profiling.finish(profiler), flush=True)
        cpu_after = cpu_seconds(server.pid)
        after = batch_size_totals(base_url, args.model)
    finally:
        stop_server(server)

    instances, calls = after[0] - before[0], after[1] - before[1]
    latency, errors = summary["latency_us"], summary["errors"]
    duration_s = summary["duration_us"] / 1e6
    # CPU the server burnt per request: independent of how much CPU other processes left it
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return ModeResult(
        mode=mode,
        max_batch_size=max_batch,
        max_wait_ms=max_wait,
        requests=summary["requests"],
        duration_s=round(duration_s, 2),
        requests_per_s=round(summary["requests"] / duration_s, 1),
        mean_ms=round(latency["mean"] / 1000, 2),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"],
        timeouts=errors["timeout"],
        model_calls=int(calls),
        mean_batch_size=round(instances / calls, 2) if calls else None,
        server_cpu_ms_per_request=(
            round(1000 * cpu / summary["requests"], 3)
            if cpu is not None and summary["requests"]
            else None
        ),
        server_cores_used=round(cpu / duration_s, 2) if cpu is not None else None,
    )


# ---------------------------------------------------------------- report


def machine_description() -> str:
    model_name = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores ({model_name}), CPU only, load average {load:.2f} at start"


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: list[ModeResult]) -> list[str]:
    header = (
        f"{'mode':<5} {'max_batch':>9} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'non-2xx':>7} {'sock err':>8} {'mean batch':>10} "
        f"{'cpu ms/req':>10} {'cores':>5}"
    )
    print("\n" + header)
    for r in results:
        batch = f"{r.mean_batch_size:.2f}" if r.mean_batch_size is not None else "n/a"
        print(
            f"{r.mode:<5} {r.max_batch_size:>9} {r.requests_per_s:>8.1f} {r.p50_ms:>7.2f} "
            f"{r.p95_ms:>7.2f} {r.p99_ms:>7.2f} {r.non_2xx:>7} "
            f"{r.socket_errors + r.timeouts:>8} {batch:>10} "
            f"{_fmt(r.server_cpu_ms_per_request, '.2f'):>10} {_fmt(r.server_cores_used, '.2f'):>5}"
        )
    by_mode = {r.mode: r for r in results}
    if not {"on", "off"} <= by_mode.keys():
        return []
    on, off = by_mode["on"], by_mode["off"]
    speedup = on.requests_per_s / off.requests_per_s if off.requests_per_s else float("inf")
    print(f"\nspeed-up (batching on / off): {speedup:.2f}x")
    if on.server_cpu_ms_per_request and off.server_cpu_ms_per_request:
        ratio = off.server_cpu_ms_per_request / on.server_cpu_ms_per_request
        print(
            f"server CPU per request, off / on: {ratio:.2f}x (cores used: on "
            f"{on.server_cores_used}, off {off.server_cores_used})"
        )
    checks = [
        (f"mean batch size > {TARGET_MEAN_BATCH:g}", (on.mean_batch_size or 0) > TARGET_MEAN_BATCH),
        (f"throughput >= {TARGET_SPEEDUP:g}x without batching", speedup >= TARGET_SPEEDUP),
        (f"p99 <= {TARGET_P99_MS:g} ms with batching", on.p99_ms <= TARGET_P99_MS),
        ("no errors with batching", on.non_2xx + on.socket_errors + on.timeouts == 0),
    ]
    failed = []
    for name, ok in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
        if not ok:
            failed.append(name)
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    default_data = Path(
        os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")
    )
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist")
    parser.add_argument(
        "--app",
        default=None,
        help="an ASGI app for plain uvicorn to serve, e.g. app.main:app (default: the product, "
        "python -m app)",
    )
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data,
        help="datasets folder with mnist/mnist.npz (default: %(default)s)",
    )
    parser.add_argument("--digit-index", type=int, default=0, help="which MNIST test digit to send")
    parser.add_argument(
        "--no-label-check",
        dest="label_check",
        action="store_false",
        help="do not require the preflight prediction to be right (stand-in models)",
    )
    parser.add_argument("--modes", default="on,off", help="on, off or on,off (default)")
    parser.add_argument("--concurrency", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=15.0, help="seconds per mode")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before measuring"
    )
    parser.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    parser.add_argument("--timeout", type=float, default=5.0, help="wrk per-request timeout, s")
    parser.add_argument("--max-batch-size", type=int, default=32, help="batching-on max batch")
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=BatchingConfig().max_wait_ms,
        help="batching-on max wait (default: the server's)",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server and wrk to separate cores",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the server with py-spy during each measured run",
    )
    parser.add_argument("--native", action="store_true", help="py-spy --native (C/C++ frames)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server and wrk under nice -n N (e.g. -10 as root on a busy machine)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    pin = args.pin and cpus >= 2 and shutil.which("taskset") is not None
    # server gets every core but the last, wrk the last one
    args.server_cpus = f"0-{cpus - 2}" if pin and cpus > 2 else ("0" if pin else None)
    args.wrk_cpus = str(cpus - 1) if pin else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"on", "off"}:
        print(f"--modes must be on, off or on,off, not {args.modes!r}", file=sys.stderr)
        return 2
    args.results_dir.mkdir(parents=True, exist_ok=True)
    payload, label, source = make_payload(args.data_dir, args.digit_index)
    body_file = args.results_dir / "predict-body.json"
    body_file.write_text(json.dumps(payload, separators=(",", ":")))
    machine = machine_description()
    print(
        f"machine: {machine}\npayload: {source}\nload: wrk, {args.concurrency} connections, "
        f"{args.duration:g} s per mode (+{args.warmup:g} s warm-up), "
        f"wrk cpus {args.wrk_cpus or 'all'}, nice {args.nice}",
        flush=True,
    )

    expected = label if args.label_check else None
    results = [run_mode(mode, args, body_file, expected) for mode in modes]
    failed = report(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.results_dir / f"bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "payload": source,
                "concurrency": args.concurrency,
                "server_cpus": args.server_cpus,
                "wrk_cpus": args.wrk_cpus,
                "nice": args.nice,
                "profiled": args.profile,
                "results": [asdict(r) for r in results],
                "failed_targets": failed,
            },
            indent=2,
        )
    )
    print(f"\nresults: {out}")
    return 0
