"""The models folder's checksum manifest: what makes a committed version immutable.

``models/MANIFEST.sha256`` lists every file of every version as ``sha256sum`` writes it
(``<digest>  <name>/<version>/<path>``), so ``cd models && sha256sum -c MANIFEST.sha256`` checks
it too. An export records its version here; the tests fail when a recorded file changes, and
when a line once committed is changed (git history), so ``?version=N`` means the same weights
in every commit. A retrain is a new version; deleting a whole version (and its lines) is allowed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST = "MANIFEST.sha256"


class ImmutableVersionError(RuntimeError):
    """An export would overwrite a version that the manifest records."""


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def version_digests(models_dir: Path, name: str, version: int | str) -> dict[str, str]:
    """``{"<name>/<version>/<path>": sha256}`` of every file of the version folder."""
    root = Path(models_dir)
    folder = root / name / str(version)
    return {
        file.relative_to(root).as_posix(): digest(file)
        for file in sorted(folder.rglob("*"))
        if file.is_file()
    }


def parse(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        if line.strip():
            checksum, path = line.split(maxsplit=1)
            entries[path.lstrip("*")] = checksum
    return entries


def read(models_dir: Path) -> dict[str, str]:
    path = Path(models_dir) / MANIFEST
    return parse(path.read_text()) if path.is_file() else {}


def write(models_dir: Path, entries: dict[str, str]) -> None:
    lines = [f"{checksum}  {path}\n" for path, checksum in sorted(entries.items())]
    (Path(models_dir) / MANIFEST).write_text("".join(lines))


def is_recorded(models_dir: Path, name: str, version: int | str) -> bool:
    prefix = f"{name}/{version}/"
    return any(path.startswith(prefix) for path in read(models_dir))


def record(models_dir: Path, name: str, version: int | str) -> None:
    """Write (or rewrite, while it is being exported) the version's lines of the manifest."""
    prefix = f"{name}/{version}/"
    entries = {p: c for p, c in read(models_dir).items() if not p.startswith(prefix)}
    entries.update(version_digests(models_dir, name, version))
    write(models_dir, entries)
