"""Settings shared by every training module (CLI flags map onto these)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The one default for the datasets folder (the CLI, the tests): $TRAINING_DATA_DIR, else the
# shared datasets beside the repository, wherever the command runs from.
DEFAULT_DATA_DIR = Path(
    os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")
)
DEFAULT_OUT_DIR = Path(os.environ.get("TRAINING_OUT_DIR", "models"))
DEFAULT_SEED = 42


@dataclass
class TrainConfig:
    """What one training run needs to know.

    ``epochs=None`` means the module's own default. ``limit`` caps the number of training examples
    (smoke tests train on a tiny slice); a limited run is marked as such in ``metadata.json``.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    out_dir: Path = DEFAULT_OUT_DIR
    epochs: int | None = None
    seed: int = DEFAULT_SEED
    limit: int | None = None
    version: int | None = None
    variant: str | None = None
    extra: dict = field(default_factory=dict)

    def epochs_or(self, default: int) -> int:
        return self.epochs if self.epochs is not None else default
