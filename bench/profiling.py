"""py-spy recording of the server during a measured load run, and a top-functions summary."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 100
TOP_N = 30


@dataclass
class Recording:
    processes: list[subprocess.Popen]
    raw_path: Path
    svg_path: Path
    top_path: Path
    timeout_s: float


def py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("py-spy not found: pip install -e '.[bench]'")
    return found


def start(pid: int, duration_s: float, results_dir: Path, mode: str, native: bool) -> Recording:
    """Two non-blocking samplers at once: collapsed stacks (for the summary) and an SVG."""
    base = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        f"{max(1, round(duration_s))}",
        "--rate",
        str(RATE_HZ),
        "--nonblocking",
        *(["--native"] if native else []),
    ]
    raw_path = results_dir / f"pyspy-{mode}.collapsed.txt"
    svg_path = results_dir / f"pyspy-{mode}.svg"
    processes = [
        subprocess.Popen(
            [*base, "--format", "raw", "--output", str(raw_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [*base, "--format", "flamegraph", "--output", str(svg_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
    ]
    return Recording(processes, raw_path, svg_path, results_dir / f"pyspy-{mode}.top.txt", 30.0)


def finish(recording: Recording) -> str:
    """Called when the load has ended: a sampler that lags behind (busy machine) is stopped with
    SIGINT, on which py-spy writes what it has."""
    for process in recording.processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=recording.timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if not recording.raw_path.is_file():
            raise RuntimeError(f"py-spy failed ({process.returncode}): {stderr.decode()[-2000:]}")
    text = summarize(recording.raw_path.read_text())
    recording.top_path.write_text(text)
    return f"py-spy: {recording.svg_path}, {recording.raw_path}\n{text}"


def summarize(collapsed: str, top_n: int = TOP_N) -> str:
    """Top functions by own (leaf) samples and by total (inclusive) samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # the first frame is the thread (e.g. "process 12:\"python\";thread ...") in some versions
        frames = [frame for frame in stack.split(";") if frame]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "py-spy: no samples"

    def table(counter: Counter[str], title: str) -> list[str]:
        rows = [f"{title} ({samples} samples)"]
        rows += [f"{100 * n / samples:6.1f}%  {frame}" for frame, n in counter.most_common(top_n)]
        return rows

    return "\n".join([*table(own, "own time"), "", *table(total, "total time")]) + "\n"
