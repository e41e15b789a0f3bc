"""``python -m training <name>... | all | compare-optimizers`` — train, evaluate and export."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from training.common.data import MissingTrainingInputError
from training.config import DEFAULT_DATA_DIR, DEFAULT_OUT_DIR, DEFAULT_SEED, TrainConfig

# Exercise name -> module under training/. Each module has ``train(cfg) -> Path``.
EXERCISES = [
    "spam",
    "mnist",
    "chest_xray",
    "sales",
    "sentiment",
    "churn",
    "greek_symbols",
    "simpsons",
    "movie_profit",
    "fashion_mnist",
]
EXTRA_COMMANDS = {"compare-optimizers": "training.compare_optimizers"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help=f"exercise(s) to train: {', '.join(EXERCISES)}, 'all', or 'compare-optimizers'",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder holding the datasets (default: %(default)s or $TRAINING_DATA_DIR)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="models folder to export to (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the module's epochs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: 42)")
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="version folder to write (default: one above the highest)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="train on at most this many examples (smoke runs)"
    )
    parser.add_argument("--variant", default=None, help="model variant, where a module has several")
    return parser.parse_args(argv)


def resolve(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == "all":
            out.extend(EXERCISES)
        elif name in EXERCISES or name in EXTRA_COMMANDS:
            out.append(name)
        else:
            raise SystemExit(f"unknown exercise {name!r}; choose from {EXERCISES + ['all']}")
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in resolve(args.names):
        cfg = TrainConfig(
            data_dir=args.data_dir,
            out_dir=args.out,
            epochs=args.epochs,
            seed=args.seed,
            limit=args.limit,
            version=args.version,
            variant=args.variant,
        )
        module = importlib.import_module(EXTRA_COMMANDS.get(name, f"training.{name}"))
        try:
            path = module.train(cfg)
        except MissingTrainingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: exported to {path}")
    return 0
