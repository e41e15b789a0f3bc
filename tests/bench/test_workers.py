"""bench.workers' bookkeeping: which processes are the serving workers, whose CPU is the event
loop's, and its table. The benchmark itself is a script."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from bench.peers.__main__ import end_tree
from bench.run import cpu_seconds, event_loop_cpu_seconds
from bench.workers import table, worker_pids

# A supervisor as app.server's: spawned (not forked) children, as SERVING_WORKERS starts them.
SUPERVISOR = """
import multiprocessing, time
if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=time.sleep, args=(60,)) for _ in range(2)]
    for child in children:
        child.start()
    print("started", flush=True)
    time.sleep(60)
"""


def test_the_spawned_workers_are_found_and_a_single_process_is_its_own_worker():
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True
    )
    alone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert supervisor.stdout is not None and supervisor.stdout.readline() == "started\n"
        workers = worker_pids(supervisor.pid)
        deadline = time.monotonic() + 10
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = worker_pids(supervisor.pid)
        assert len(workers) == 2 and supervisor.pid not in workers
        assert worker_pids(alone.pid) == [alone.pid]
    finally:
        end_tree(supervisor.pid)
        end_tree(alone.pid)


def row(workers: int, rss: list[int], busy: list[float]) -> dict:
    return {
        "workers": workers,
        "req_per_s": 2476.4,
        "p50_ms": 25.5,
        "p99_ms": 45.2,
        "failed": 0,
        "cpu_ms_per_request": 0.72,
        "cores_used": 1.79,
        "event_loops_busy": busy,
        "rss_per_worker_mb": rss,
        "rss_tree_mb": 1618.2,
        "mean_batch": 20.1,
        "metrics_counted": 37274.0,
        "wrk_ok": 37207,
    }


def test_the_table_gives_each_workers_memory_loop_and_what_the_metrics_counted():
    lines = table([row(1, [786], [0.994]), row(2, [779, 786], [0.91, 0.857])]).splitlines()
    assert lines[2] == (
        "| 1 | 2,476 | 25.5 | 45.2 | 0 | 0.72 | 1.79 | 0.99 | 786 | 1,618 | 20.1 "
        "| 37,274 of 37,207 |"
    )
    assert "| 0.86 / 0.91 | 779–786 |" in lines[3]


def test_the_event_loop_is_the_main_threads_share_of_the_cpu():
    spinner = threading.Thread(target=_spin, args=(0.3,))
    spinner.start()
    spinner.join()  # CPU of another thread: the process's, not its main thread's
    process, main = cpu_seconds(os.getpid()), event_loop_cpu_seconds(os.getpid())
    assert main is not None and process is not None
    before = main
    _spin(0.3)
    assert event_loop_cpu_seconds(os.getpid()) - before >= 0.2
    assert process - main >= 0.2


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
