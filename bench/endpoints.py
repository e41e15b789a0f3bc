"""Typed endpoints against the protocol path, in one run: ``python -m bench.endpoints``.

One ``python -m app`` serves every model; wrk sends single-item requests. In each of
``--rounds`` rounds, every typed endpoint runs right after mnist's ``:predict`` (one digit, JSON)
and right before its own model's ``:predict`` with the same item (raw inputs, TF Serving JSON;
skip with ``--no-reference``): each ratio compares runs seconds apart, so the drift of a shared
machine does not decide it. The table gives medians over the rounds: req/s, p99, the server's
CPU per request and the part of it spent on its event loop (the main thread: HTTP, routing,
parsing, decoding, replies; the rest is the model's threads), how busy that loop was (1.00: a
whole core, the bound of one worker), failures, the ratios to mnist's ``:predict`` (throughput
and p99) and to the model's own ``:predict`` (the typed endpoint's own overhead, apart from its
model's cost).
The typed endpoints' goal: >= 70 % of ``:predict``'s req/s, p99 <= 2x its p99.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from pathlib import Path
from statistics import median

from bench import profiling
from bench.overload import Server, digit_body, encode_picture, multipart, wrk
from bench.run import (
    REPO_ROOT,
    RESULTS_DIR,
    cpu_seconds,
    event_loop_cpu_seconds,
    machine_description,
)

MODELS = ["mnist", "sentiment", "spam", "churn", "movie_profit", "sales"]


def digit_png(data_dir: Path) -> bytes:
    """The first MNIST test digit as a PNG (a drawn stroke without the datasets)."""
    import numpy as np

    pixels = np.asarray(json.loads(digit_body(data_dir))["instances"][0], dtype=np.uint8)
    return encode_picture(pixels[..., 0])


def cases(data_dir: Path) -> list[tuple[str, str, bytes, str]]:
    """(label, path, body, content type) of each single-item request."""
    from app.api.tasks.churn import EXAMPLE_CUSTOMER
    from app.api.tasks.movies import EXAMPLE_MOVIE
    from app.api.tasks.sales import EXAMPLE_HISTORY

    png = digit_png(data_dir)
    upload, upload_type = multipart(png, "digit.png")
    as_json = "application/json"
    return [
        ("predict", "/v1/models/mnist:predict", digit_body(data_dir), as_json),
        ("image upload", "/v1/images/mnist:classify", upload, upload_type),
        (
            "image base64",
            "/v1/images/mnist:classify",
            json.dumps(
                {"images": [{"b64": base64.b64encode(png).decode(), "name": "d.png"}]}
            ).encode(),
            as_json,
        ),
        (
            "sentiment",
            "/v1/sentiment:predict",
            json.dumps({"texts": ["The food was cold and the waiter was rude."]}).encode(),
            as_json,
        ),
        (
            "spam",
            "/v1/spam:predict",
            json.dumps({"messages": ["Are we still meeting for lunch tomorrow at 1?"]}).encode(),
            as_json,
        ),
        (
            "churn",
            "/v1/churn:predict",
            json.dumps({"customers": [EXAMPLE_CUSTOMER]}).encode(),
            as_json,
        ),
        ("movies", "/v1/movies:predict", json.dumps({"movies": [EXAMPLE_MOVIE]}).encode(), as_json),
        (
            "sales",
            "/v1/sales:forecast",
            json.dumps({"history": EXAMPLE_HISTORY, "horizon": 12}).encode(),
            as_json,
        ),
    ]


def reference_cases(models_dir: Path) -> list[tuple[str, str, bytes, str]]:
    """The same single items sent to each model's own ``:predict`` (TF Serving JSON, raw
    inputs): what the protocol path costs with that model, so a typed endpoint's own overhead
    shows apart from its model's."""
    from app.api.tasks.churn import EXAMPLE_CUSTOMER
    from app.api.tasks.movies import EXAMPLE_MOVIE
    from app.api.tasks.sales import EXAMPLE_HISTORY

    def predict(model: str, instance: object) -> tuple[str, str, bytes, str]:
        body = json.dumps({"instances": [instance]}).encode()
        return (f"{model} :predict", f"/v1/models/{model}:predict", body, "application/json")

    # The examples carry fields the models do not take (ids, names, links).
    customer = {k: v for k, v in EXAMPLE_CUSTOMER.items() if k in model_inputs(models_dir, "churn")}
    movie = {
        k: v for k, v in EXAMPLE_MOVIE.items() if k in model_inputs(models_dir, "movie_profit")
    }
    return [
        predict("sentiment", "The food was cold and the waiter was rude."),
        predict("spam", "Are we still meeting for lunch tomorrow at 1?"),
        predict("churn", customer),
        predict("movie_profit", movie),
        predict("sales", EXAMPLE_HISTORY[-24:]),
    ]


def model_inputs(models_dir: Path, name: str) -> set[str]:
    """The input names of the highest committed version of ``name``."""
    versions = [p for p in (models_dir / name).iterdir() if p.name.isdigit()]
    newest = max(versions, key=lambda p: int(p.name))
    return {spec["name"] for spec in json.loads((newest / "metadata.json").read_text())["inputs"]}


# Each typed endpoint's model, for the ratio to that model's own :predict.
REFERENCE = {
    "sentiment": "sentiment :predict",
    "spam": "spam :predict",
    "churn": "churn :predict",
    "movies": "movie_profit :predict",
    "sales": "sales :predict",
    "image upload": "predict",
    "image base64": "predict",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=int, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--only", default="", help="comma-separated typed endpoints to run")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip each typed endpoint's own model's :predict",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="an endpoint label (e.g. 'image upload' or 'predict'): py-spy records the server "
        "during its first measured run (bench/results/pyspy-<label>.*; numbers of that run are "
        "perturbed by the sampler)",
    )
    args = parser.parse_args(argv)

    every = {case[0]: case for case in cases(args.data_dir) + reference_cases(args.models_dir)}
    typed = [label for label in REFERENCE if not args.only or label in args.only.split(",")]
    # Per typed endpoint and round: (mnist :predict, the endpoint, its model's :predict or None),
    # run one after the other, so that each ratio compares runs minutes apart at most.
    rounds: dict[str, list[tuple[dict, dict, dict | None]]] = {label: [] for label in typed}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.models_dir, MODELS, Path(tmp))
        body_file = Path(tmp) / "body"
        profiled: set[str] = set()

        def run(label: str) -> dict:
            _, path, body, content_type = every[label]
            body_file.write_bytes(body)
            url = server.url + path
            wrk(url, args.connections, args.warmup, body_file, content_type=content_type)
            pid = server.process.pid
            cpu, loop_cpu = cpu_seconds(pid), event_loop_cpu_seconds(pid)
            recording = None
            if label == args.profile and label not in profiled:
                profiled.add(label)
                RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                mode = label.replace(" ", "-")
                recording = profiling.start(
                    server.process.pid, args.duration, RESULTS_DIR, mode, native=False
                )
            result = wrk(url, args.connections, args.duration, body_file, content_type=content_type)
            if recording is not None:
                print(profiling.finish(recording), flush=True)
            served = max(result["requests"] - result["errors"]["status"], 1)
            result["cpu_ms"] = (cpu_seconds(pid) - cpu) / served * 1000
            loop_seconds = event_loop_cpu_seconds(pid) - loop_cpu
            result["loop_ms"] = loop_seconds / served * 1000
            result["loop_busy"] = loop_seconds / (result["duration_us"] / 1e6)
            print(
                f"{label:22s} {result['ok_per_s']:7.0f} req/s  p50 "
                f"{result['latency_us']['p50'] / 1000:6.1f} ms  p99 "
                f"{result['latency_us']['p99'] / 1000:6.1f} ms  failed {result['failed']}  "
                f"cpu {result['cpu_ms']:.2f} ms/req, event loop {result['loop_ms']:.2f} "
                f"(busy {result['loop_busy']:.2f})",
                flush=True,
            )
            return result

        try:
            server.wait_ready()
            for _ in range(args.rounds):
                for label in typed:
                    predict, endpoint = run("predict"), run(label)
                    own = None
                    if REFERENCE[label] != "predict" and not args.no_reference:
                        own = run(REFERENCE[label])
                    rounds[label].append((predict, endpoint, own))
        finally:
            server.stop()
    print(
        f"\n{machine_description()}; {args.connections} connections; {args.rounds} interleaved "
        f"rounds of {args.duration:g} s runs (after {args.warmup:g} s of load each); medians"
    )
    print(
        "| endpoint | req/s | p99 ms | server CPU ms/req | event loop CPU ms/req (busy) "
        "| failed | req/s vs mnist :predict "
        "| p99 vs mnist :predict | req/s vs its model's :predict | p99 vs its model's :predict "
        "| its model's :predict req/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    predicts = [predict for label in typed for predict, _, _ in rounds[label]]
    print(_row("`:predict` (mnist, one digit)", predicts, [], [], [], [], []))
    for label in typed:
        trio = rounds[label]
        endpoints = [endpoint for _, endpoint, _ in trio]
        vs_predict = [e["ok_per_s"] / p["ok_per_s"] for p, e, _ in trio]
        p99 = [e["latency_us"]["p99"] / p["latency_us"]["p99"] for p, e, _ in trio]
        owns = [own for _, _, own in trio if own is not None]
        vs_own = [e["ok_per_s"] / o["ok_per_s"] for _, e, o in trio if o is not None]
        p99_own = [e["latency_us"]["p99"] / o["latency_us"]["p99"] for _, e, o in trio if o]
        print(_row(label, endpoints, vs_predict, p99, vs_own or vs_predict, p99_own or p99, owns))
    return 0


def _row(
    label: str,
    results: list[dict],
    vs_predict: list[float],
    p99: list[float],
    vs_own: list[float],
    p99_own: list[float],
    owns: list[dict],
) -> str:
    def ratio(values: list[float], suffix: str = "") -> str:
        return f"{median(values):.2f}{suffix}" if values else ""

    own_rate = f"{median(o['ok_per_s'] for o in owns):,.0f}" if owns else ""
    return (
        f"| {label} | {median(r['ok_per_s'] for r in results):,.0f} | "
        f"{median(r['latency_us']['p99'] for r in results) / 1000:.1f} | "
        f"{median(r['cpu_ms'] for r in results):.2f} | "
        f"{median(r['loop_ms'] for r in results):.2f} "
        f"({median(r['loop_busy'] for r in results):.2f}) | {sum(r['failed'] for r in results)} | "
        f"{ratio(vs_predict)} | {ratio(p99, '×')} | {ratio(vs_own)} | {ratio(p99_own, '×')} | "
        f"{own_rate} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
