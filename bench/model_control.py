"""Triton API unload and load times by number of workers: ``python -m bench.model_control``

For each count of ``--workers`` (default ``1,2``) it starts ``python -m app`` serving the
committed ``spam`` (``--model``), then ``--calls`` times unloads and loads it through
``POST /v2/repository/models/{name}/unload|load`` and, right after each answer, sends a
prediction on ``--probes`` new connections (urllib opens one per request, and the kernel spreads
them over the workers): every one must agree with the answer (404 after an unload, 200 after a
load). Prints each call's median and range and the rounds where a probe disagreed. With
``--stress SECONDS``, 16 clients then unload and load it at once, each followed by a prediction,
and the answers are counted by status: no call may fail (a load that a later unload undid is
still a 200), and a final load and unload must each be seen on every new connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter

from bench.overload import Server, request
from bench.run import REPO_ROOT, RESULTS_DIR, machine_description

BODIES = {"spam": {"instances": ["Are we still meeting for lunch tomorrow at 1?"]}}


def _control(server: Server, model: str, action: str) -> tuple[int, bytes, float]:
    """Triton's ``load`` or ``unload`` of ``model``: (status, body, seconds)."""
    return request("POST", f"{server.url}/v2/repository/models/{model}/{action}", b"", timeout=120)


def _probe(server: Server, model: str, body: bytes, probes: int) -> Counter[int]:
    """The statuses of a prediction on ``probes`` new connections."""
    predict = f"{server.url}/v1/models/{model}:predict"
    return Counter(request("POST", predict, body)[0] for _ in range(probes))


def stress(server: Server, model: str, body: bytes, seconds: float, probes: int) -> dict:
    counts: Counter[str] = Counter()
    end = time.monotonic() + seconds

    def client(index: int) -> None:
        while time.monotonic() < end:
            action = "unload" if (index + int(time.monotonic() * 3)) % 2 else "load"
            counts[f"{action} {_control(server, model, action)[0]}"] += 1
            for status, seen in _probe(server, model, body, 1).items():
                counts[f"predict {status}"] += seen

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for action, expected in (("load", 200), ("unload", 404)):
        _control(server, model, action)
        counts[f"after a final {action}: {expected} on every new connection"] = int(
            _probe(server, model, body, probes) == Counter({expected: probes})
        )
    return dict(counts)


def measure(workers: int, model: str, calls: int, probes: int, stress_s: float) -> dict:
    server = Server(
        REPO_ROOT / "models",
        model,
        RESULTS_DIR,
        workers=str(workers),
        drain_seconds="0",
        unload_grace_seconds="0.2",
        model_control="true",
    )
    body = json.dumps(BODIES.get(model, {"instances": []})).encode()
    milliseconds: dict[str, list[float]] = {"unload": [], "load": []}
    disagreed = 0
    try:
        server.wait_ready()
        for _ in range(calls):
            for action, expected in (("unload", 404), ("load", 200)):
                status, reply, seconds = _control(server, model, action)
                if status != 200:
                    raise RuntimeError(f"{action}: {status} {reply[:300]!r}")
                milliseconds[action].append(seconds * 1000)
                disagreed += _probe(server, model, body, probes) != Counter({expected: probes})
        stressed = stress(server, model, body, stress_s, probes) if stress_s > 0 else {}
    finally:
        server.stop()
    return {
        "workers": workers,
        "milliseconds": milliseconds,
        "disagreed": disagreed,
        "stress": stressed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--model", default="spam")
    parser.add_argument("--calls", type=int, default=10, help="unload + load pairs per count")
    parser.add_argument("--probes", type=int, default=20, help="new connections after each")
    parser.add_argument("--stress", type=float, default=0.0, help="seconds of 16 clients at once")
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    print(machine_description())
    results = []
    for workers in (int(n) for n in args.workers.split(",")):
        result = measure(workers, args.model, args.calls, args.probes, args.stress)
        results.append(result)
        for action, values in result["milliseconds"].items():
            print(
                f"{workers} worker(s), {action}: median {statistics.median(values):.0f} ms, "
                f"{min(values):.0f}-{max(values):.0f} ms over {len(values)} calls"
            )
        print(
            f"{workers} worker(s): {result['disagreed']} of {2 * args.calls} answers where a "
            f"probe on a new connection disagreed"
        )
        if result["stress"]:
            print(
                f"{workers} worker(s), {args.stress:g} s of 16 clients at once: {result['stress']}"
            )
    (RESULTS_DIR / "model_control.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
