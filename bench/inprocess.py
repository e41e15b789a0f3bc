"""CPU cost of the serving path per request, measured in-process: ``python -m bench.inprocess``.

On a shared machine wall-clock throughput says more about the neighbours than about the server.
This drives the ASGI app directly (the full middleware stack and routes, lifespan started, no
sockets and no HTTP parser) with N concurrent single-image TF Serving ``:predict`` calls, batching
on and off, and reports the process CPU time per request (all threads: event loop and model
thread), the mean batch size and the model's own time per call. ``--cprofile`` adds the event
loop thread's top functions (cProfile; the model thread is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.config import BatchingConfig  # noqa: E402
from bench.run import REPO_ROOT, histogram_totals, make_payload  # noqa: E402


def _model_totals(model: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(sum, count) of the model's batch-size and inference-time histograms, from one scrape."""
    from app import metrics

    families = list(metrics.REGISTRY.collect())
    return (
        histogram_totals(families, "batch_size", model),
        histogram_totals(families, "inference_duration_seconds", model),
    )


async def _drive(
    app,
    body: bytes,
    path: str,
    concurrency: int,
    duration_s: float,
    content_type: str = "application/json",
) -> dict:
    """Statuses and latencies of ``concurrency`` callers sending ``body`` for ``duration_s``."""
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def one_request() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        done = asyncio.Event()

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        start = time.perf_counter()
        await app(scope, receive, send)
        latencies.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1

    async def client() -> None:
        while time.perf_counter() < stop_at:
            await one_request()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"statuses": statuses, "latencies": latencies}


async def _measure(args: argparse.Namespace, mode: str, body: bytes) -> dict:
    from app.config import Settings
    from app.main import create_app

    max_batch = args.max_batch_size if mode == "on" else 1
    settings = Settings(
        models_dir=args.models_dir,
        model_names=[args.model],
        max_batch_size=max_batch,
        max_wait_ms=args.max_wait_ms if mode == "on" else 0.0,
        log_level="warning",
    )
    app = create_app(settings)
    path = f"/v1/models/{args.model}:predict"
    async with app.router.lifespan_context(app):
        await _drive(app, body, path, args.concurrency, 1.0)  # warm-up
        await asyncio.sleep(0.5)
        batch_before, infer_before = _model_totals(args.model)
        profiler = cProfile.Profile() if args.cprofile else None
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        outcome = await _drive(app, body, path, args.concurrency, args.duration)
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - wall_start
        batch_after, infer_after = _model_totals(args.model)

    requests = len(outcome["latencies"])
    calls = batch_after[1] - batch_before[1]
    latencies = sorted(outcome["latencies"])
    result = {
        "mode": mode,
        "max_batch_size": max_batch,
        "requests": requests,
        "statuses": outcome["statuses"],
        "cpu_ms_per_request": round(1000 * cpu / requests, 3),
        "cores_used": round(cpu / wall, 2),
        "requests_per_cpu_second": round(requests / cpu, 1),
        "mean_batch_size": round((batch_after[0] - batch_before[0]) / calls, 2) if calls else None,
        "model_ms_per_call": (
            round(1000 * (infer_after[0] - infer_before[0]) / calls, 3) if calls else None
        ),
        "model_calls_per_request": round(calls / requests, 3),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
    }
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        report_path = args.results_dir / f"cprofile-{mode}.txt"
        report_path.write_text(out.getvalue())
        profiler.dump_stats(args.results_dir / f"cprofile-{mode}.prof")
        result["cprofile"] = str(report_path)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")),
    )
    parser.add_argument("--modes", default="on,off")
    parser.add_argument("--concurrency", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=10.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=BatchingConfig().max_wait_ms)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    payload, _, source = make_payload(args.data_dir, 0)
    body = json.dumps(payload, separators=(",", ":")).encode()
    print(f"payload: {source}; {args.concurrency} concurrent callers, {args.duration:g} s per mode")
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    results = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(_measure(args, mode, body))
        print(json.dumps(result))
        results.append(result)
    if len(results) == 2:
        on, off = results
        ratio = off["cpu_ms_per_request"] / on["cpu_ms_per_request"]
        print(f"CPU per request off/on: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
