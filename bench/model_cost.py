"""CPU per instance of SavedModels alone, alternated: ``python -m bench.model_cost A B ...``.

Each model's ``serving_default`` is called on the same batch (default 32 zero-filled instances
shaped like its signature; string inputs get ``--text``, a review-sized sentence) for
``--seconds``; the process CPU time (all threads) is divided by the instances. Rounds alternate
the models so that a drift of the machine shows in every one.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="+", help="SavedModel folders, e.g. models/mnist/2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per model and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--text",
        default="The room was clean and the staff friendly, but breakfast was cold and slow.",
        help="the value of every string input",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    functions, batches = {}, {}
    for path in args.models:
        fn = tf.saved_model.load(path).signatures["serving_default"]
        _, specs = fn.structured_input_signature
        batches[path] = {
            name: tf.fill([args.batch, *spec.shape[1:]], args.text)
            if spec.dtype == tf.string
            else tf.constant(np.zeros([args.batch, *spec.shape[1:]], spec.dtype.as_numpy_dtype))
            for name, spec in specs.items()
        }
        functions[path] = fn
        for _ in range(20):
            fn(**batches[path])  # warm-up
    per_instance: dict[str, list[float]] = {path: [] for path in args.models}
    for _ in range(args.rounds):
        for path, fn in functions.items():
            calls, cpu_start, end = 0, time.process_time(), time.monotonic() + args.seconds
            while time.monotonic() < end:
                fn(**batches[path])
                calls += 1
            cpu_ms = (time.process_time() - cpu_start) * 1000
            per_instance[path].append(cpu_ms / (calls * args.batch))
    first = np.median(per_instance[args.models[0]])
    print(
        f"batch {args.batch}, {args.rounds} alternated rounds of {args.seconds:g} s, "
        f"{os.cpu_count()} cores; CPU ms per instance (median; each round):"
    )
    for path, values in per_instance.items():
        rounds = ", ".join(f"{v:.3f}" for v in values)
        ratio = np.median(values) / first
        print(f"  {path}: {np.median(values):.3f} ({rounds}); {ratio:.2f}x the first")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
