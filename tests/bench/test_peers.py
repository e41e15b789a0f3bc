"""The peers benchmark's bookkeeping (bench/peers): which runs of ours a peer is compared with,
how replies are read, and that a process tree is ended whole. The benchmark itself is a script."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.peers.__main__ import Row, alive, end_tree, first_prediction, process_tree, table


def row(server: str, load: str, rate: float) -> Row:
    result = {
        "ok_per_s": rate,
        "requests": int(rate * 10),
        "errors": {"status": 0},
        "failed": 0,
        "latency_us": {"p50": 1000.0, "p99": 2000.0},
    }
    return Row(server, load, result, cpu_ms=1.0, rss_mb=100.0)


def test_each_peer_is_compared_with_our_runs_just_before_and_after_it():
    rows = [
        row("this service", "1 digit", 1000),
        row("A", "1 digit", 100),
        row("this service", "1 digit", 3000),
        row("B", "1 digit", 300),
        row("this service", "1 digit", 1000),
        row("this service", "1 digit, v2 JSON", 500),
        row("C", "1 digit, v2 JSON", 250),
    ]
    lines = {line.split(" | ")[0].strip("| "): line for line in table(rows).splitlines()[2:]}
    assert lines["A"].endswith("| 0.05 |")  # 100 / mean(1000, 3000)
    assert lines["B"].endswith("| 0.15 |")  # 300 / mean(3000, 1000)
    assert lines["C"].endswith("| 0.50 |")  # only our v2 run before it


def test_a_peer_that_answered_nothing_is_shown_as_such():
    silent = row("D", "256 digits", 0)
    silent.result["requests"] = 0
    (line,) = table([row("this service", "256 digits", 30), silent]).splitlines()[3:]
    assert line == "| D | 256 digits | 0 | 0 | – | – | 0 | – | 100 | 0 |"


def test_replies_of_either_protocol_are_read():
    seven = [0.0] * 7 + [0.9, 0.1, 0.0]
    assert first_prediction("instances", {"predictions": [seven]}) == 7
    assert first_prediction("instances", [seven]) == 7  # BentoML returns the array itself
    v2 = {"outputs": [{"name": "output_0", "shape": [1, 10], "data": seven}]}
    assert first_prediction("v2", v2) == 7


def test_the_whole_process_tree_is_ended(tmp_path: Path):
    # A parent that starts a grandchild in a new session (as Ray's and Triton's daemons do).
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 10
    while len(process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = process_tree(parent.pid)
    assert len(tree) == 2
    end_tree(parent.pid, grace_s=5)
    parent.wait(timeout=5)
    assert not any(alive(pid) for pid in tree)
