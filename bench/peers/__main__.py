"""This service against other model servers, on the same SavedModel and the same load:
``python -m bench.peers``.

Each peer is a small server in ``bench/peers/servers/`` run from its own venv, which this script
builds with uv under ``bench/peers/.venvs/`` (pinned in ``PEERS`` below; built once, rebuilt when
its requirements change). One server runs at a time, with wrk on the same machine; our server
runs before the first peer and again after each one, and each peer's ratio is to the mean of the
two runs of ours beside it, so a drift of the machine shows instead of skewing the table.

Loads: one digit per request (TF Serving-style JSON ``{"instances": [...]}``; KServe v2 JSON for
Triton, compared with our own ``/v2`` endpoint) and 256 digits per request. Server CPU and RSS
are summed over the server's whole process tree (Ray's raylet and workers, Triton's server, ...).
Every process tree is ended by its PIDs (never ``ray stop``: it would end every Ray process on the
machine). Notes: PyTriton needs numpy < 2 (its venv has it) and, when the Python is not the
system's, ``LD_LIBRARY_PATH`` at that Python's ``lib/`` (set here); Ray Serve needs
``max_ongoing_requests`` raised (its default of 5 caps every batch at 5) and
``RAY_worker_niceness=0``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.overload import Server, free_port, wrk
from bench.run import REPO_ROOT, machine_description, proc_stat

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
VENVS = HERE / ".venvs"
TENSORFLOW = "tensorflow-cpu==2.21.0"
BULK = 256  # digits per request in the bulk load


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    command: tuple[str, ...]  # run in servers/, with the venv's bin/ first on PATH
    protocol: str = "instances"  # or "v2"
    path: str = "/predict"
    env: dict[str, str] = field(default_factory=dict)


PEERS = [
    Peer(
        "naive FastAPI",
        (TENSORFLOW, "fastapi==0.165.0", "uvicorn[standard]==0.55.0"),
        ("python", "naive_fastapi.py"),
    ),
    Peer(
        "BentoML",
        (TENSORFLOW, "bentoml==1.4.40"),
        ("bentoml", "serve", "bentoml_service:Mnist", "--host", "127.0.0.1", "--port", "{port}"),
        env={"BENTOML_DO_NOT_TRACK": "true"},
    ),
    Peer(
        "LitServe",
        (TENSORFLOW, "litserve==0.2.19", "uvicorn[standard]==0.55.0"),
        ("python", "litserve_server.py"),
        env={"LITSERVE_DISABLE_TELEMETRY": "1"},
    ),
    Peer(
        "Ray Serve",
        (TENSORFLOW, "ray[serve]==2.60.0"),
        ("python", "rayserve_app.py"),
        env={"RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"},
    ),
    Peer(
        "Triton (PyTriton)",
        (TENSORFLOW, "nvidia-pytriton==0.7.0", "numpy<2"),
        ("python", "pytriton_server.py"),
        protocol="v2",
        path="/v2/models/mnist/infer",
    ),
]


# ---- requests ----------------------------------------------------------------------------------
def bodies(data_dir: Path) -> dict[tuple[str, int], bytes]:
    """(protocol, digits per request) -> JSON body, from the official MNIST test digits."""
    with np.load(data_dir / "mnist" / "mnist.npz") as data:
        digits = data["x_test"][:BULK].reshape(-1, 28, 28, 1).astype(np.uint8)
    out = {}
    for count in (1, BULK):
        chosen = digits[:count]
        out["instances", count] = json.dumps({"instances": chosen.tolist()}).encode()
        v2 = {"name": "pixels", "shape": list(chosen.shape), "datatype": "UINT8"}
        v2["data"] = chosen.ravel().tolist()
        out["v2", count] = json.dumps({"inputs": [v2]}).encode()
    return out


def first_prediction(protocol: str, reply: object) -> int:
    if protocol == "v2":
        return int(np.argmax(reply["outputs"][0]["data"][:10]))  # type: ignore[index]
    rows = reply["predictions"] if isinstance(reply, dict) else reply
    return int(np.argmax(np.asarray(rows)[0]))


def check_answer(url: str, body: bytes, protocol: str) -> str | None:
    """None when the server reads the first official test digit as a 7; else what it said
    (a server that answers otherwise is not measured). OSError: not serving yet."""
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 503):  # the model is still loading (Triton: "no available versions")
            raise ConnectionError(f"HTTP {exc.code}: {exc.read()[:300]!r}") from None
        return f"HTTP {exc.code}: {exc.read()[:300]!r}"
    try:
        return None if first_prediction(protocol, json.loads(reply)) == 7 else f"{reply[:300]!r}"
    except (ValueError, KeyError, IndexError, TypeError):
        return f"unexpected reply {reply[:300]!r}"


# ---- processes ---------------------------------------------------------------------------------
def process_tree(root: int) -> list[int]:
    """``root`` and every descendant (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_usage(root: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) summed over the process tree of ``root``."""
    cpu = rss = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in process_tree(root):
        fields = proc_stat(pid)
        if fields is not None:
            cpu += (int(fields[11]) + int(fields[12])) / tick
            rss += int(fields[21]) * page / 1e6
    return cpu, rss


def end_tree(root: int, grace_s: float = 10) -> None:
    """SIGTERM to every process of the tree, then SIGKILL to what is left."""
    pids = process_tree(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        end = time.monotonic() + grace_s
        while time.monotonic() < end and any(alive(pid) for pid in pids):
            time.sleep(0.2)
        pids = [pid for pid in pids if alive(pid)]
        if not pids:
            return


def alive(pid: int) -> bool:
    """Running: a zombie (ended, not yet read by its parent) counts as ended."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


# ---- venvs -------------------------------------------------------------------------------------
def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uv"], check=True)
    return found


def venv_of(peer: Peer) -> Path:
    return VENVS / re.sub(r"[^a-z0-9]+", "-", peer.name.lower()).strip("-")


def build_venv(peer: Peer) -> Path:
    """The peer's venv, built with uv when missing or when its requirements changed."""
    venv = venv_of(peer)
    digest = hashlib.sha256("\n".join(peer.requirements).encode()).hexdigest()
    marker = venv / ".requirements.sha256"
    if marker.exists() and marker.read_text() == digest:
        return venv
    print(f"building the venv of {peer.name} in {venv} ...", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [uv(), "pip", "install", "-q", *peer.requirements],
        check=True,
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
    )
    marker.write_text(digest)
    return venv


def start_peer(
    peer: Peer, venv: Path, model_dir: Path, log_dir: Path, args: argparse.Namespace
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # PyTriton's Triton binary links the Python's own libpython (not the system's).
    python_lib = sysconfig.get_config_var("LIBDIR") or ""
    env = {
        **os.environ,
        **peer.env,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "PEER_MODEL_DIR": str(model_dir),
        "PEER_PORT": str(port),
        "PEER_MAX_BATCH_SIZE": str(args.max_batch_size),
        "PEER_MAX_WAIT_MS": str(args.max_wait_ms),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LD_LIBRARY_PATH": ":".join(
            p for p in (python_lib, os.environ.get("LD_LIBRARY_PATH")) if p
        ),
    }
    command = [part.format(port=port) for part in peer.command]
    log = (log_dir / f"{venv.name}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=SERVERS, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return process, f"http://127.0.0.1:{port}"


def wait_serving(
    process: subprocess.Popen, url: str, body: bytes, protocol: str, timeout_s: float
) -> None:
    end = time.monotonic() + timeout_s
    wrong: list[str] = []
    last = "no answer"
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            problem = check_answer(url, body, protocol)
        except OSError as exc:  # not serving yet
            problem, last = "", str(exc)
        if problem is None:
            return
        if problem:
            wrong.append(problem)
            if len(wrong) >= 3:
                raise RuntimeError(f"it answers, but not a 7: {wrong[-1]}")
        time.sleep(1)
    raise RuntimeError(f"not serving within {timeout_s:g} s (last: {last})")


# ---- measuring ---------------------------------------------------------------------------------
@dataclass
class Row:
    server: str
    load: str
    result: dict
    cpu_ms: float
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.result["ok_per_s"]


def measure(server: str, root: int, url: str, body: bytes, load: str, args, tmp: Path) -> Row:
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    connections = args.bulk_connections if LOADS[load][1] > 1 else args.connections
    wrk(url, connections, args.warmup, body_file)
    cpu_before, _ = tree_usage(root)
    result = wrk(url, connections, args.duration, body_file)
    cpu_after, rss = tree_usage(root)
    served = max(result["requests"] - result["errors"]["status"], 1)
    row = Row(server, load, result, (cpu_after - cpu_before) / served * 1000, rss)
    p50, p99 = (result["latency_us"][q] / 1000 for q in ("p50", "p99"))
    print(
        f"{server:20s} {load:22s} {row.rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"failed {result['failed']}  cpu {row.cpu_ms:.2f} ms/req  rss {rss:.0f} MB",
        flush=True,
    )
    return row


LOADS = {  # label -> (protocol, digits per request)
    "1 digit": ("instances", 1),
    f"{BULK} digits": ("instances", BULK),
    "1 digit, v2 JSON": ("v2", 1),
    f"{BULK} digits, v2 JSON": ("v2", BULK),
}
OUR_PATHS = {"instances": "/v1/models/mnist:predict", "v2": "/v2/models/mnist/infer"}


def run_ours(model_dir: Path, loads: list[str], payloads, args, tmp: Path) -> list[Row]:
    models = tmp / "models"
    shutil.rmtree(models, ignore_errors=True)
    (models / "mnist").mkdir(parents=True)
    (models / "mnist" / model_dir.name).symlink_to(model_dir)
    server = Server(
        models, "mnist", tmp, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms
    )
    try:
        server.wait_ready()
        return [
            measure(
                "this service",
                server.process.pid,
                server.url + OUR_PATHS[LOADS[load][0]],
                payloads[LOADS[load]],
                load,
                args,
                tmp,
            )
            for load in loads
        ]
    finally:
        server.stop()


def run_peer(peer: Peer, model_dir: Path, payloads, args, tmp: Path) -> list[Row]:
    venv = build_venv(peer)
    process, url = start_peer(peer, venv, model_dir, tmp, args)
    try:
        wait_serving(
            process, url + peer.path, payloads[peer.protocol, 1], peer.protocol, args.start_timeout
        )
        return [
            measure(peer.name, process.pid, url + peer.path, payloads[LOADS[load]], load, args, tmp)
            for load in peer_loads(peer)
        ]
    finally:
        end_tree(process.pid)


def peer_loads(peer: Peer) -> list[str]:
    return [label for label, (protocol, _) in LOADS.items() if protocol == peer.protocol]


def table(rows: list[Row]) -> str:
    """Markdown: each peer row with its ratio to the mean of our runs beside it."""
    lines = [
        "| server | load | req/s | digits/s | p50 ms | p99 ms | failed | server CPU ms/req "
        "| RSS MB | ratio to ours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows):
        ratio = ""
        if row.server != "this service":
            ours = [r.rate for r in _neighbours(rows, i) if r.load == row.load]
            ours_rate = sum(ours) / len(ours) if ours else 0.0
            ratio = f"{row.rate / ours_rate:.2f}" if ours_rate else ""
        digits = LOADS[row.load][1] * row.rate
        r = row.result
        if r["requests"] - r["errors"]["status"] <= 0:  # none answered within the run
            lines.append(
                f"| {row.server} | {row.load} | 0 | 0 | – | – | {r['failed']} | – | "
                f"{row.rss_mb:,.0f} | 0 |"
            )
            continue
        lines.append(
            f"| {row.server} | {row.load} | {row.rate:,.0f} | {digits:,.0f} | "
            f"{r['latency_us']['p50'] / 1000:.1f} | {r['latency_us']['p99'] / 1000:.1f} | "
            f"{r['failed']} | {row.cpu_ms:.2f} | {row.rss_mb:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def _neighbours(rows: list[Row], i: int) -> list[Row]:
    """Our runs just before and just after peer row ``i``."""
    before = next(
        (r for r in reversed(rows[:i]) if r.server == "this service" and r.load == rows[i].load),
        None,
    )
    after = next(
        (r for r in rows[i + 1 :] if r.server == "this service" and r.load == rows[i].load), None
    )
    return [r for r in (before, after) if r is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "mnist" / "3")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--peers", default="", help="comma-separated peer names (default: all)")
    parser.add_argument("--connections", "-c", type=int, default=64, help="single-digit load")
    parser.add_argument(
        "--bulk-connections",
        type=int,
        default=8,
        help="bulk load: 8 x 256 digits in flight is already past every server's model limit "
        "(64 x 256 would be 3 s of queue: our admission control refuses part of it)",
    )
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="seconds per load")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=256,
        help="every server's batch limit (ours too: SERVING_MAX_BATCH_SIZE), so that a bulk "
        "request is one model call everywhere",
    )
    parser.add_argument("--max-wait-ms", type=float, default=3.0, help="every server's batch wait")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--build-only", action="store_true", help="build the venvs and stop")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    wanted = {name.strip().lower() for name in args.peers.split(",") if name.strip()}
    peers = [
        p for p in PEERS if not wanted or p.name.lower() in wanted or venv_of(p).name in wanted
    ]
    for peer in peers:
        build_venv(peer)
    if args.build_only:
        return 0
    model_dir = args.model.resolve()
    payloads = bodies(args.data_dir)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ours_last: list[str] = []  # the loads of our run just before, if it was ours
        for peer in peers:
            loads = peer_loads(peer)
            if ours_last != loads:
                rows += run_ours(model_dir, loads, payloads, args, tmp)
            try:
                rows += run_peer(peer, model_dir, payloads, args, tmp)
            except RuntimeError as exc:
                print(f"{peer.name}: not measured ({exc}); its log: {tmp}", flush=True)
                shutil.copytree(
                    tmp,
                    HERE / "logs",
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("models", "*.json"),
                )
            rows += run_ours(model_dir, loads, payloads, args, tmp)
            ours_last = loads
    print(
        f"\n{machine_description()}; model {args.model}; wrk -t2, {args.connections} "
        f"connections (1 digit) / {args.bulk_connections} (bulk), {args.duration:g} s per load "
        f"after {args.warmup:g} s of warm-up; every server batches up to {args.max_batch_size} "
        f"digits, waiting up to {args.max_wait_ms:g} ms (BentoML: its adaptive wait)"
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
