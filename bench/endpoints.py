"""Typed endpoints against the protocol path, in one run: ``python -m bench.endpoints``.

One ``python -m app`` serves every model; wrk sends single-item requests to each endpoint in
turn, ``:predict`` (one digit, JSON) first and last, so that a drift of the machine shows. Each
line gives req/s, p50 / p99, failures and the ratio to ``:predict``'s throughput (the mean of its
two runs), and to the same model's own ``:predict`` (run after the typed endpoints; skip with
``--no-reference``), which shows the typed endpoint's own overhead apart from its model's cost.
The typed endpoints' goal: >= 70 % of ``:predict``'s req/s, p99 <= 2x its p99.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from pathlib import Path

from bench.overload import Server, digit_body, multipart, wrk
from bench.run import REPO_ROOT, machine_description

MODELS = ["mnist", "sentiment", "spam", "churn", "movie_profit", "sales"]


def digit_png(data_dir: Path) -> bytes:
    """The first MNIST test digit as a PNG (a drawn stroke without the datasets)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(json.loads(digit_body(data_dir))["instances"][0], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buffer, "PNG")
    return buffer.getvalue()


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
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--only", default="", help="comma-separated labels to run (and predict)")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip each typed endpoint's own model's :predict",
    )
    args = parser.parse_args(argv)

    runs = cases(args.data_dir)
    if args.only:
        wanted = set(args.only.split(",")) | {"predict"}
        runs = [case for case in runs if case[0] in wanted]
    if not args.no_reference:
        chosen = {REFERENCE.get(case[0]) for case in runs}
        runs += [case for case in reference_cases(args.models_dir) if case[0] in chosen]
    runs.append(runs[0])  # :predict again at the end
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.models_dir, MODELS, Path(tmp))
        try:
            server.wait_ready()
            rows = []
            for label, path, body, content_type in runs:
                body_file = Path(tmp) / "body"
                body_file.write_bytes(body)
                wrk(server.url + path, args.connections, 2, body_file, content_type=content_type)
                result = wrk(
                    server.url + path,
                    args.connections,
                    args.duration,
                    body_file,
                    content_type=content_type,
                )
                rows.append((label, result))
                print(
                    f"{label:13s} {result['ok_per_s']:8.0f} req/s  p50 "
                    f"{result['latency_us']['p50'] / 1000:6.1f} ms  p99 "
                    f"{result['latency_us']['p99'] / 1000:6.1f} ms  failed {result['failed']}",
                    flush=True,
                )
        finally:
            server.stop()
    base = [r for label, r in rows if label == "predict"]
    base_rate = sum(r["ok_per_s"] for r in base) / len(base)
    base_p99 = sum(r["latency_us"]["p99"] for r in base) / len(base)
    print(f"\n{machine_description()}; {args.connections} connections, {args.duration:g} s each")
    by_label = dict(rows)
    print(
        "| endpoint | req/s | p50 ms | p99 ms | failed | req/s vs mnist :predict | "
        "p99 vs mnist :predict | req/s vs its model's :predict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        reference = by_label.get(REFERENCE.get(label, ""))
        if REFERENCE.get(label) == "predict":
            own = f"{r['ok_per_s'] / base_rate:.2f}"
        elif reference:
            own = f"{r['ok_per_s'] / reference['ok_per_s']:.2f}"
        else:
            own = ""
        print(
            f"| {label} | {r['ok_per_s']:,.0f} | {r['latency_us']['p50'] / 1000:.1f} | "
            f"{r['latency_us']['p99'] / 1000:.1f} | {r['failed']} | "
            f"{r['ok_per_s'] / base_rate:.2f} | {r['latency_us']['p99'] / base_p99:.2f}× | {own} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
