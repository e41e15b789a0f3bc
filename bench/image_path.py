"""Where the image upload's extra time goes, against ``:predict``: ``python -m bench.image_path``.

Issue 15's point 1 asks the typed endpoints for 70 % of ``:predict``'s throughput; the image
upload stayed near two thirds until small plain PNGs went to libspng (``app.plain_png``). This
drives the ASGI app in process (as ``bench.inprocess``: no sockets, 64 concurrent callers,
mnist) with a single digit through ``:predict`` and through
``/v1/images/mnist:classify``, the latter three ways, alternated in rounds:

- **as served**;
- **decoding replaced**: the upload is read, and the fitted pixels of that same digit are used
  instead of decoding and fitting its PNG (``_fit_images`` patched);
- **decoding and form replaced**: the multipart body is not parsed either (``_read_images``).

Per request: process CPU, the event loop thread's CPU (the bound: one loop per worker) and wall
time. The differences between the three are what the PNG's decoding and fitting, and the form
parsing, cost in the server's context; the same steps are timed alone for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import timeit
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app.imaging import ImageSpec  # noqa: E402
from bench.endpoints import cases, digit_png  # noqa: E402
from bench.inprocess import _drive  # noqa: E402
from bench.run import REPO_ROOT, machine_description  # noqa: E402

VARIANTS = ("as served", "decoding replaced", "decoding and form replaced")


async def _run(app, case: tuple[str, bytes, str], callers: int, seconds: float) -> dict:
    """The statuses of ``callers`` sending ``case`` (path, body, content type) for ``seconds``."""
    path, body, content_type = case
    outcome = await _drive(app, body, path, callers, seconds, content_type)
    return outcome["statuses"]


def _replaced(variant: str, png: bytes, pixels: np.ndarray):
    """(name, replacement) of ``app.api.tasks.images`` functions for ``variant``."""
    from app.api.tasks.images import Upload

    async def fitted(request, served, files, invert, settings):
        return pixels

    async def read(request, settings):
        await request.body()
        return [Upload("digit.png", "files[0]", png)]

    replaced = []
    if variant != "as served":
        replaced.append(("_fit_images", fitted))
    if variant == "decoding and form replaced":
        replaced.append(("_read_images", read))
    return replaced


async def _measure(args: argparse.Namespace) -> tuple[dict[str, list[dict]], ImageSpec]:
    """Each path's rounds, and the served mnist's image spec (for the steps timed alone)."""
    from app.api.tasks import images
    from app.config import Settings
    from app.main import create_app

    by_label = {label: (path, body, kind) for label, path, body, kind in cases(args.data_dir)}
    png = digit_png(args.data_dir)  # the file in the image upload's body
    pixels = np.asarray(json.loads(by_label["predict"][1])["instances"], dtype=np.uint8)
    settings = Settings(models_dir=args.models_dir, model_names=["mnist"], log_level="warning")
    app = create_app(settings)
    runs: dict[str, list[dict]] = {}
    async with app.router.lifespan_context(app):
        spec = ImageSpec.from_metadata(app.state.repository.get("mnist").metadata)
        for label in ("predict", "image upload"):  # warm-up
            await _run(app, by_label[label], args.concurrency, min(args.duration, 1.0))
        for _ in range(args.rounds):
            for variant in ("predict", *VARIANTS):
                label = "predict" if variant == "predict" else "image upload"
                originals = {}
                for name, replacement in (
                    _replaced(variant, png, pixels) if label != "predict" else []
                ):
                    originals[name] = getattr(images, name)
                    setattr(images, name, replacement)
                try:
                    cpu, loop_cpu, wall = (
                        time.process_time(),
                        time.thread_time(),
                        time.perf_counter(),
                    )
                    statuses = await _run(app, by_label[label], args.concurrency, args.duration)
                    cpu = time.process_time() - cpu
                    loop_cpu = time.thread_time() - loop_cpu
                    wall = time.perf_counter() - wall
                finally:
                    for name, original in originals.items():
                        setattr(images, name, original)
                answered = sum(statuses.values())
                if set(statuses) != {200}:
                    raise SystemExit(f"{variant}: not every answer was a 200: {statuses}")
                runs.setdefault(variant, []).append(
                    {
                        "requests": answered,
                        "cpu_ms": 1000 * cpu / answered,
                        "loop_cpu_ms": 1000 * loop_cpu / answered,
                        "wall_ms": 1000 * wall / answered,
                    }
                )
    return runs, spec


def _isolated_costs(args: argparse.Namespace, spec: ImageSpec) -> dict[str, float]:
    """Microseconds per call of each step alone, in a loop (hot caches, no other thread)."""
    from app.imaging import open_image, prepare_image
    from app.multipart import parse_form

    _, body, content_type = next(c[1:] for c in cases(args.data_dir) if c[0] == "image upload")
    png = digit_png(args.data_dir)
    steps = {
        "parse the form": lambda: parse_form(body, content_type, 16, 16),
        "open the PNG": lambda: open_image(png, max_pixels=1 << 24),
        "open, decode and fit": lambda: prepare_image(
            open_image(png, max_pixels=1 << 24), spec, max_pixels=1 << 24
        ),
    }
    return {
        name: 1e6 * min(timeit.repeat(step, number=5000, repeat=3)) / 5000
        for name, step in steps.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image_path", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")),
    )
    parser.add_argument("--concurrency", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        f"{machine_description()}; mnist, {args.concurrency} callers in process, "
        f"{args.rounds} rounds of {args.duration:g} s each"
    )
    runs, spec = asyncio.run(_measure(args))
    predict_wall = statistics.median(r["wall_ms"] for r in runs["predict"])
    print(
        "| path | requests/round | CPU ms/req | event loop CPU ms/req | wall ms/req | vs :predict |"
    )
    print("|---|---|---|---|---|---|")
    for variant, rounds in runs.items():
        median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"| {':predict' if variant == 'predict' else 'image upload, ' + variant} "
            f"| {median['requests']:,.0f} | {median['cpu_ms']:.3f} | {median['loop_cpu_ms']:.3f} "
            f"| {median['wall_ms']:.3f} | {predict_wall / median['wall_ms']:.2f} |"
        )
    print("\nthe same steps alone (µs per call):")
    for name, micros in _isolated_costs(args, spec).items():
        print(f"  {name}: {micros:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
