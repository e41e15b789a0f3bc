"""Does loading a model stall the others? ``python -m bench.reload``

Serves ``mnist`` and ``chest_xray`` from a temporary copy of ``models/`` with
``repository_poll_seconds`` set, loads single-digit ``:predict`` on mnist with wrk (64
connections), and runs the same load twice: once quiet, once while a new chest_xray version is
dropped into the repository (loaded and warmed in the background, twice in the window). Prints
mnist's throughput and latency percentiles for both, and how long each reload took.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.overload import Server, digit_body, wrk
from bench.run import REPO_ROOT, RESULTS_DIR, machine_description


def _versions(url: str, name: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/v1/models/{name}", timeout=5) as reply:
        status = json.loads(reply.read())["model_version_status"]
    return sorted(s["version"] for s in status if s["state"] == "AVAILABLE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("-d", "--duration", type=float, default=15.0)
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    body_file = RESULTS_DIR / "reload-digit.json"
    body_file.write_bytes(digit_body(args.data_dir))
    print(machine_description())
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        for name in ("mnist", "chest_xray"):
            source = REPO_ROOT / "models" / name
            (models / name).mkdir()
            newest = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
            shutil.copytree(source / str(newest), models / name / "1")
        server = Server(
            models,
            "mnist",
            RESULTS_DIR,
            repository_poll_seconds="0.5",
            unload_grace_seconds="0.5",
            drain_seconds="0",
            model_names=json.dumps(["mnist", "chest_xray"]),
        )
        try:
            server.wait_ready()
            url = f"{server.url}/v1/models/mnist:predict"
            wrk(url, 64, 3, body_file)
            quiet = wrk(url, 64, args.duration, body_file)
            reloads: list[float] = []

            def drop_versions() -> None:
                for version in (2, 3):
                    time.sleep(2)
                    start = time.monotonic()
                    staging = models / "chest_xray" / f"incoming-{version}"
                    shutil.copytree(models / "chest_xray" / "1", staging)
                    staging.rename(models / "chest_xray" / str(version))
                    while str(version) not in _versions(server.url, "chest_xray"):
                        time.sleep(0.05)
                    reloads.append(time.monotonic() - start)

            dropper = threading.Thread(target=drop_versions)
            dropper.start()
            busy = wrk(url, 64, args.duration, body_file)
            dropper.join(120)
        finally:
            server.stop()
    for label, result in (("quiet", quiet), ("during reloads", busy)):
        lat = result["latency_us"]
        print(
            f"mnist {label}: {result['ok_per_s']:.0f} req/s, p50 {lat['p50'] / 1000:.1f} ms, "
            f"p99 {lat['p99'] / 1000:.1f} ms, max {lat['max'] / 1000:.1f} ms, "
            f"failed {result['failed']}"
        )
    print("chest_xray versions live after (s): " + ", ".join(f"{s:.2f}" for s in reloads))
    (RESULTS_DIR / "reload.json").write_text(
        json.dumps({"quiet": quiet, "during_reloads": busy, "reload_seconds": reloads}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
