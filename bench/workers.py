"""Throughput and memory by number of worker processes: ``python -m bench.workers``.

For each count of ``--workers`` (default ``1,2``), in ``--rounds`` alternated rounds, it starts
``python -m app`` with ``SERVING_WORKERS=N`` on 127.0.0.1 (the committed ``mnist`` unless
``--models``), checks that N workers serve and that the first test digit reads as its label, then
loads it with single-digit TF Serving ``:predict`` requests from wrk (closed loop) and prints:
requests/s, p50/p99, failed requests, the server's CPU per request and cores used (summed over
its whole process tree), how busy each worker's event loop was (its main thread's CPU over the
run's seconds: 1.00 is a whole core, the most one worker's HTTP side can use), the RSS of each
worker and of the whole tree, the mean batch size, and whether ``/metrics`` (Prometheus
multiprocess mode: summed over the workers) counted every 200 that wrk received. Results go
to ``bench/results/workers.json``.

On a machine with many cores give wrk enough threads and connections to load every worker
(e.g. ``--workers 1,2,4,8 --connections 512 --wrk-threads 4``), and keep wrk off the server's
cores with ``--wrk-cpus``. Every process started is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.overload import Server, wrk
from bench.peers.__main__ import end_tree, process_tree, tree_usage
from bench.run import (
    REPO_ROOT,
    RESULTS_DIR,
    check_prediction,
    event_loop_cpu_seconds,
    histogram_totals,
    machine_description,
    make_payload,
    metric_families,
)

MIB_PER_MB = 1e6 / 2**20  # tree_usage gives MB; the tables give MiB


def worker_pids(root: int) -> list[int]:
    """The serving workers under a ``SERVING_WORKERS`` supervisor (its spawned children that
    are not multiprocessing's resource tracker); the server itself when it has none."""
    workers = []
    for pid in process_tree(root)[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in command and b"resource_tracker" not in command:
            workers.append(pid)
    return workers or [root]


def counted_200s(families: list, model: str) -> float:
    """The 200s of ``model``'s ``:predict`` that one scrape of ``/metrics`` counted (all
    workers)."""
    total = 0.0
    for family in families:
        if family.name != "serving_http_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("model") == model
                and labels.get("status") == "200"
                and labels.get("endpoint", "").endswith(":{method}")
            ):
                total += sample.value
    return total


def measure(workers: int, args: argparse.Namespace, body: bytes, label: int | None) -> dict:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    body_file = args.results_dir / "workers-body.json"
    body_file.write_bytes(body)
    server = Server(
        args.models_dir,
        args.models,
        args.results_dir,
        workers=str(workers),
        drain_seconds="0",
        access_log="false",
    )
    try:
        server.wait_ready()
        model = args.models[0]
        url = f"{server.url}/v1/models/{model}:predict"
        preflight = check_prediction(url, body, label)
        pids = worker_pids(server.process.pid)
        # Every worker must be ready: readiness is answered by whichever worker accepts.
        end = time.monotonic() + 120
        while len(pids) < workers and time.monotonic() < end:
            time.sleep(0.5)
            pids = worker_pids(server.process.pid)
        time.sleep(2.0)  # the workers that were not asked yet finish loading

        def load(seconds: float) -> dict:
            return wrk(
                url,
                args.connections,
                seconds,
                body_file,
                threads=args.wrk_threads,
                prefix=args.wrk_prefix,
            )

        if args.warmup > 0:
            load(args.warmup)
        before = list(metric_families(server.url))
        cpu_before, _ = tree_usage(server.process.pid)
        loops_before = [event_loop_cpu_seconds(pid) or 0.0 for pid in pids]
        result = load(args.duration)
        cpu_after, rss_tree = tree_usage(server.process.pid)
        loops_after = [event_loop_cpu_seconds(pid) or 0.0 for pid in pids]
        after = list(metric_families(server.url))
        batch_before = histogram_totals(before, "batch_size", model)
        batch_after = histogram_totals(after, "batch_size", model)
        counted = counted_200s(after, model) - counted_200s(before, model)
        ok = result["requests"] - result["errors"]["status"]
        seconds = result["duration_us"] / 1e6
        calls = batch_after[1] - batch_before[1]
        return {
            "workers": workers,
            "workers_seen": len(pids),
            "preflight": preflight,
            "req_per_s": result["ok_per_s"],
            "p50_ms": result["latency_us"]["p50"] / 1000,
            "p99_ms": result["latency_us"]["p99"] / 1000,
            "failed": result["failed"],
            "cpu_ms_per_request": 1000 * (cpu_after - cpu_before) / max(ok, 1),
            "cores_used": (cpu_after - cpu_before) / seconds,
            "event_loops_busy": [
                (end - start) / seconds
                for start, end in zip(loops_before, loops_after, strict=True)
            ],
            "rss_per_worker_mb": [round(tree_usage(pid)[1] * MIB_PER_MB) for pid in pids],
            "rss_tree_mb": rss_tree * MIB_PER_MB,
            "mean_batch": (batch_after[0] - batch_before[0]) / calls if calls else None,
            "metrics_counted": counted,
            "wrk_ok": ok,
        }
    finally:
        server.stop()
        end_tree(server.process.pid)


def table(rows: list[dict]) -> str:
    lines = [
        "| workers | req/s | p50 ms | p99 ms | failed | server CPU ms/req | cores | event loops "
        "busy | RSS per worker MB | RSS all MB | mean batch | /metrics counted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        low, high = min(row["rss_per_worker_mb"]), max(row["rss_per_worker_mb"])
        busy = sorted(f"{share:.2f}" for share in row["event_loops_busy"])
        lines.append(
            f"| {row['workers']} | {row['req_per_s']:,.0f} | {row['p50_ms']:.1f} | "
            f"{row['p99_ms']:.1f} | {row['failed']} | {row['cpu_ms_per_request']:.2f} | "
            f"{row['cores_used']:.2f} | {' / '.join(busy)} | "
            f"{low if low == high else f'{low}–{high}'} | "
            f"{row['rss_tree_mb']:,.0f} | "
            + (f"{row['mean_batch']:.1f}" if row["mean_batch"] else "–")
            + f" | {row['metrics_counted']:,.0f} of {row['wrk_ok']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_data = Path(
        os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")
    )
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,4,8")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds")
    parser.add_argument("--models", default="mnist", help="comma-separated; the first is loaded")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-cpus", help="taskset CPU list for wrk, e.g. 12-15")
    parser.add_argument("--duration", "-d", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.wrk_prefix = ("taskset", "-c", args.wrk_cpus) if args.wrk_cpus else ()
    payload, label, source = make_payload(args.data_dir, 0)
    body = json.dumps(payload).encode()
    print(machine_description(), flush=True)
    print(
        f"load: wrk -t{args.wrk_threads} -c{args.connections}, {args.duration:g} s per run "
        f"(+{args.warmup:g} s warm-up), single-digit :predict of {args.models[0]} ({source})",
        flush=True,
    )
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    for round_ in range(args.rounds):
        for workers in counts:
            row = measure(workers, args, body, label)
            rows.append(row)
            print(f"round {round_ + 1}: {json.dumps(row)}", flush=True)
    print(table(rows), flush=True)
    out = args.results_dir / "workers.json"
    out.write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=2))
    print(f"results: {out}")
    return 0 if all(row["failed"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
