"""Committed model versions are immutable: ``models/MANIFEST.sha256`` records every file of every
version, the files match it, and no line once committed has changed since (git history)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.paths import REPO_ROOT
from training.common import manifest
from training.common.export import export_model
from training.config import TrainConfig

MODELS = REPO_ROOT / "models"


def version_folders() -> list[tuple[str, str]]:
    return [
        (model.name, version.name)
        for model in sorted(MODELS.iterdir())
        if model.is_dir()
        for version in sorted(model.iterdir())
        if version.is_dir() and version.name.isdigit()
    ]


def test_every_version_matches_the_manifest():
    recorded = manifest.read(MODELS)
    assert recorded, f"{MODELS / manifest.MANIFEST} is missing or empty"
    on_disk: dict[str, str] = {}
    for name, version in version_folders():
        on_disk.update(manifest.version_digests(MODELS, name, version))
    changed = sorted(p for p in on_disk if p in recorded and recorded[p] != on_disk[p])
    unrecorded = sorted(set(on_disk) - set(recorded))
    missing = sorted(set(recorded) - set(on_disk))
    assert not changed, f"committed model files changed (export a new version instead): {changed}"
    assert not unrecorded, f"files not in the manifest (export with training/): {unrecorded}"
    assert not missing, f"manifest lines with no file (a deleted version: drop them): {missing}"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_no_committed_line_ever_changes():
    """Each commit's manifest agrees with today's on every file both list: a version can be
    deleted, never rewritten."""
    try:
        commits = _git("log", "--format=%H", "--", f"models/{manifest.MANIFEST}").split()
    except (subprocess.CalledProcessError, OSError):
        pytest.skip("not a git checkout")
    current = manifest.read(MODELS)
    for commit in commits:
        earlier = manifest.parse(_git("show", f"{commit}:models/{manifest.MANIFEST}"))
        rewritten = sorted(p for p in earlier if p in current and current[p] != earlier[p])
        assert not rewritten, f"since {commit[:10]}, these committed files changed: {rewritten}"


def test_an_export_never_overwrites_a_recorded_version(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"weights")
    manifest.record(tmp_path, "m", 1)
    with pytest.raises(manifest.ImmutableVersionError, match="export a new version"):
        export_model(
            None,  # refused before the model is touched
            name="m",
            cfg=TrainConfig(out_dir=tmp_path, version=1),
            task="image_classification",
            data={},
            splits={},
            metrics={},
        )
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_bytes() == b"weights"
