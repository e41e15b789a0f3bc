"""Do explanations slow the predictions? ``python -m bench.explain_load``.

One ``python -m app`` serves mnist. wrk sends single-digit ``:predict`` requests at a fixed
concurrency, alone and then while two clients ask ``/v1/images/mnist:explain`` (Grad-CAM and
activations of a digit) back to back; the two phases alternate. Printed: ``:predict``'s req/s
and p99 in each phase, and the explanations answered per second.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from bench.overload import Server, digit_body, multipart, request, wrk
from bench.run import REPO_ROOT, machine_description


class ExplainClients:
    """``clients`` threads asking for explanations until stopped."""

    def __init__(self, url: str, clients: int) -> None:
        png = (REPO_ROOT / "app" / "static" / "examples" / "seven.png").read_bytes()
        self.body, self.content_type = multipart(png, "seven.png")
        self.url = url
        self.answered = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        while not self._stop.is_set():
            status, _, _ = request(
                "POST", self.url, self.body, {"Content-Type": self.content_type}, timeout=30
            )
            if status == 200:
                self.answered += 1
            else:
                self.failed += 1

    def __enter__(self) -> ExplainClients:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.seconds = time.monotonic() - self.started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--explain-clients", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "digit.json"
        body.write_bytes(digit_body(args.data_dir))
        server = Server(REPO_ROOT / "models", "mnist", Path(tmp))
        try:
            server.wait_ready()
            predict = f"{server.url}/v1/models/mnist:predict"
            wrk(predict, args.connections, 2, body)  # warm-up
            print(f"{machine_description()}; {args.connections} connections, {args.duration:g} s")
            for _ in range(args.rounds):
                alone = wrk(predict, args.connections, args.duration, body)
                with ExplainClients(
                    f"{server.url}/v1/images/mnist:explain", args.explain_clients
                ) as ex:
                    beside = wrk(predict, args.connections, args.duration, body)
                for label, result in (("alone", alone), ("beside explanations", beside)):
                    print(
                        f":predict {label:20s} {result['ok_per_s']:7.0f} req/s  p99 "
                        f"{result['latency_us']['p99'] / 1000:6.1f} ms  failed {result['failed']}"
                    )
                print(
                    f"  explanations: {ex.answered / ex.seconds:.1f}/s answered, "
                    f"{ex.failed} failed; :predict kept "
                    f"{beside['ok_per_s'] / alone['ok_per_s']:.0%} of its rate"
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
