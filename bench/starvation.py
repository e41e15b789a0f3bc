"""Can one kind of client starve another? ``python -m bench.starvation``.

Each scenario starts ``python -m app`` (127.0.0.1, committed models), lets one kind of client
press on the server, and measures what a second, ordinary client gets meanwhile:

1. **slow uploads**: ``--slow-uploads`` connections (800) each send the headers and one byte of
   a single-digit ``:predict`` body, then wait; 20 ordinary ``:predict`` requests are sent, then
   the uploads are completed, one after another, and answered.
2. **costly pictures**: ``--clients`` threads (32) upload 4096x4096 RGBA PNGs (~76 KB each,
   about a third of a second each to decode and fit) to ``mnist:classify`` back to back for
   ``-d`` seconds, beside a client sending one 28x28 digit to the same endpoint every 100 ms.
3. **heavy texts**: 16 threads send 256 texts of 2,000 characters each to ``sentiment:predict``
   back to back, beside a client sending one short text every 100 ms.
4. **bulk in small bodies**: as 3, with 32 threads sending 256 texts of 200 characters (a
   52 KB body: admitted at its headers as an interactive request, bulk once parsed).
5. **costly model**: 8 threads send 16 X-rays each to ``chest_xray:predict`` back to back,
   beside a client sending one digit to ``mnist:predict`` every 100 ms (two models share the
   cores).
6. **plain pictures**: as 2, with 128x128 RGB noise PNGs (~49 KB), the largest that libspng
   decodes (``app/plain_png.py``; it holds the GIL while it does).
7. **open GETs**: 8 threads fetch ``/v2/health/live``, then ``/metrics``, then
   ``/openapi.json``, then Swagger UI's script back to back (gzip accepted), every committed
   model served, beside a client sending one digit to ``mnist:predict`` every 100 ms.

Printed: each client's statuses (count, p50 and worst latency). Traffic goes to 127.0.0.1 only
and every server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from app import plain_png
from bench.overload import HOST, Server, encode_picture, multipart, request
from bench.run import REPO_ROOT, RESULTS_DIR, machine_description

PROBE_INTERVAL_S = 0.1
BLANK_DIGIT = json.dumps({"instances": [[[[0]] * 28] * 28]}).encode()  # mnist :predict
WORDS = "the food was cold and the waiter was rude never again great service lovely"


def _tally(outcomes: list[tuple[int, float]]) -> str:
    """'200: 181 (p50 8 ms, worst 31 ms); 429: ...' for (status, seconds) outcomes."""
    by_status: dict[int, list[float]] = {}
    for status, seconds in outcomes:
        by_status.setdefault(status, []).append(seconds)
    return "; ".join(
        f"{status}: {len(times)} (p50 {statistics.median(times) * 1000:.0f} ms, worst "
        f"{max(times) * 1000:.0f} ms)"
        for status, times in sorted(by_status.items())
    )


def _press(
    url: str,
    body: bytes | None,
    content_type: str,
    clients: int,
    seconds: float,
    probe: tuple[str, bytes, str],
) -> tuple[list, list]:
    """``clients`` threads sending ``body`` back to back (no body: a GET accepting gzip), and
    the probe every 100 ms."""
    stop_at = time.monotonic() + seconds
    pressed: list[tuple[int, float]] = []
    lock = threading.Lock()
    method, headers = (
        ("GET", {"Accept-Encoding": "gzip"})
        if body is None
        else ("POST", {"Content-Type": content_type})
    )

    def client() -> None:
        while time.monotonic() < stop_at:
            status, _, took = request(method, url, body, headers, 120)
            with lock:
                pressed.append((status, took))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    probed = []
    probe_url, probe_body, probe_type = probe
    while time.monotonic() < stop_at:
        status, _, took = request("POST", probe_url, probe_body, {"Content-Type": probe_type})
        probed.append((status, took))
        time.sleep(PROBE_INTERVAL_S)
    for thread in threads:
        thread.join(150)
    return pressed, probed


def slow_uploads(args, results: dict) -> None:
    body = BLANK_DIGIT
    head = (
        "POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    server = Server(args.models_dir, "mnist", RESULTS_DIR)
    uploads: list[socket.socket] = []
    try:
        server.wait_ready()
        for _ in range(args.slow_uploads):
            sock = socket.create_connection((HOST, server.port), timeout=30)
            sock.sendall(head + body[:1])
            uploads.append(sock)
        time.sleep(1)
        url = f"{server.url}/v1/models/mnist:predict"
        ordinary = []
        for _ in range(20):
            status, _, took = request("POST", url, body, {"Content-Type": "application/json"})
            ordinary.append((status, took))
        completed = []
        for sock in uploads:
            started = time.perf_counter()
            sock.sendall(body[1:])
            answer = sock.recv(64)
            completed.append((int(answer[9:12] or 0), time.perf_counter() - started))
        results["slow_uploads"] = {"ordinary": ordinary, "completed": completed}
        print(
            f"{args.slow_uploads} slow uploads held open; 20 ordinary :predict requests: "
            f"{_tally(ordinary)}"
        )
        print(f"  the slow uploads, completed one after another: {_tally(completed)}")
    finally:
        for sock in uploads:
            sock.close()
        server.stop()


def costly_pictures(args, results: dict) -> None:
    ramp = np.linspace(0, 255, 4096, dtype=np.float32)
    rgba = np.zeros((4096, 4096, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 3] = ramp[None, :], ramp[:, None], 255
    _pictures_against_a_digit(args, results, "costly_pictures", rgba, "4096x4096 RGBA PNGs")


def plain_pictures(args, results: dict) -> None:
    side = math.isqrt(plain_png.MAX_PIXELS)
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    what = f"{side}x{side} RGB noise PNGs (libspng's largest)"
    _pictures_against_a_digit(args, results, "plain_pictures", noise, what)


def _pictures_against_a_digit(args, results: dict, key: str, pixels: np.ndarray, what: str) -> None:
    """``args.clients`` threads uploading ``pixels`` as a PNG to ``mnist:classify``, beside a
    client sending one 28x28 digit there every 100 ms."""
    picture, picture_type = multipart(encode_picture(pixels), "picture.png")
    digit, digit_type = multipart(encode_picture(np.zeros((28, 28), np.uint8)), "digit.png")
    server = Server(args.models_dir, "mnist", RESULTS_DIR)
    try:
        server.wait_ready()
        url = f"{server.url}/v1/images/mnist:classify"
        pressed, probed = _press(
            url, picture, picture_type, args.clients, args.duration, (url, digit, digit_type)
        )
        results[key] = {"pictures": pressed, "digit_probe": probed}
        print(
            f"{args.clients} clients uploading {what} ({len(picture) // 1000} KB) for "
            f"{args.duration:g} s: {_tally(pressed)}"
        )
        print(f"  a digit every 100 ms to the same endpoint: {_tally(probed)}")
    finally:
        server.stop()


def _texts_against_a_short_one(
    args, results: dict, scenario: str, clients: int, words_each: int, chars_each: int
) -> None:
    """``clients`` threads sending 256 texts of ``chars_each`` characters to sentiment, beside
    a client sending one short text every 100 ms."""
    words = WORDS.split(" ")
    rng = random.Random(0)
    texts = [
        " ".join(rng.choice(words) for _ in range(words_each))[:chars_each] for _ in range(256)
    ]
    heavy = json.dumps({"texts": texts}).encode()
    light = json.dumps({"texts": ["The food was cold."]}).encode()
    server = Server(args.models_dir, "sentiment", RESULTS_DIR)
    try:
        server.wait_ready()
        url = f"{server.url}/v1/sentiment:predict"
        as_json = "application/json"
        pressed, probed = _press(url, heavy, as_json, clients, args.duration, (url, light, as_json))
        results[scenario] = {"heavy": pressed, "light_probe": probed}
        print(
            f"{clients} clients sending 256 texts of {chars_each:,} characters "
            f"({len(heavy):,} bytes) for {args.duration:g} s: {_tally(pressed)}"
        )
        print(f"  one short text every 100 ms: {_tally(probed)}")
    finally:
        server.stop()


def heavy_texts(args, results: dict) -> None:
    _texts_against_a_short_one(args, results, "heavy_texts", 16, 400, 2000)


def bulk_in_small_bodies(args, results: dict) -> None:
    # ~52 KB bodies: under inline_parse_bytes, so admitted at their headers as interactive.
    _texts_against_a_short_one(args, results, "bulk_in_small_bodies", 32, 40, 200)


def costly_model(args, results: dict) -> None:
    xrays = json.dumps({"instances": np.zeros((16, 128, 128, 1), np.uint8).tolist()}).encode()
    server = Server(args.models_dir, ["mnist", "chest_xray"], RESULTS_DIR)
    try:
        server.wait_ready()
        as_json = "application/json"
        pressed, probed = _press(
            f"{server.url}/v1/models/chest_xray:predict",
            xrays,
            as_json,
            8,
            args.duration,
            (f"{server.url}/v1/models/mnist:predict", BLANK_DIGIT, as_json),
        )
        results["costly_model"] = {"heavy": pressed, "light_probe": probed}
        print(
            f"8 clients sending 16 X-rays to chest_xray for {args.duration:g} s: {_tally(pressed)}"
        )
        print(f"  one digit to mnist every 100 ms: {_tally(probed)}")
    finally:
        server.stop()


OPEN_PATHS = ("/v2/health/live", "/metrics", "/openapi.json", "/docs/swagger-ui-bundle.js")
GET_CLIENTS = 8


def open_gets(args, results: dict) -> None:
    """Clients fetching each open GET path back to back, beside a digit to ``mnist:predict``
    every 100 ms, all the committed models served (``/metrics`` and ``/openapi.json`` are the
    costliest replies that need no key: their text grows with the models)."""
    models = sorted(path.name for path in args.models_dir.iterdir() if path.is_dir())
    server = Server(args.models_dir, models, RESULTS_DIR)
    try:
        server.wait_ready(300)
        probe = (f"{server.url}/v1/models/mnist:predict", BLANK_DIGIT, "application/json")
        results["open_gets"] = {}
        for path in OPEN_PATHS:
            pressed, probed = _press(
                f"{server.url}{path}", None, "", GET_CLIENTS, args.duration, probe
            )
            results["open_gets"][path] = {"fetches": pressed, "digit_probe": probed}
            print(
                f"{GET_CLIENTS} clients fetching {path} for {args.duration:g} s: {_tally(pressed)}"
            )
            print(f"  a digit to mnist every 100 ms: {_tally(probed)}")
    finally:
        server.stop()


SCENARIOS = {
    "slow_uploads": slow_uploads,
    "costly_pictures": costly_pictures,
    "plain_pictures": plain_pictures,
    "heavy_texts": heavy_texts,
    "bulk_in_small_bodies": bulk_in_small_bodies,
    "costly_model": costly_model,
    "open_gets": open_gets,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.starvation", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("-d", "--duration", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32, help="costly-picture clients")
    parser.add_argument("--slow-uploads", type=int, default=800)
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    results: dict = {"machine": machine_description(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(results["machine"])
    for name in args.scenarios.split(","):
        SCENARIOS[name](args, results)
    out = RESULTS_DIR / "starvation.json"
    out.write_text(json.dumps(results))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
