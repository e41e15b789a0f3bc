"""Where the model repository lives: a local folder, or object storage mirrored to a local cache.

``SERVING_MODELS_DIR`` (or KServe's ``STORAGE_URI``) may be ``s3://bucket/prefix``,
``gs://bucket/prefix`` or any fsspec URL. TensorFlow loads SavedModels from local files, so a
remote repository is mirrored into ``model_cache_dir`` (only the files whose size or ETag
changed are downloaded; files gone from the bucket are deleted) before each scan: at start-up
and on every poll (``repository_poll_seconds``). fsspec with s3fs / gcsfs (``pip install
'.[cloud]'``), not tensorflow-io: it does not work with TensorFlow >= 2.18.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_STATE_FILE = ".remote-state.json"


def is_remote(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def local_root(source: str, cache_dir: Path) -> Path:
    """The local folder that holds (or will hold) the repository's files."""
    if not is_remote(source):
        return Path(source.removeprefix("file://"))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return cache_dir / digest


def sync(source: str, cache_dir: Path, storage_options: dict[str, Any]) -> tuple[Path, int]:
    """Mirror a remote repository into the cache; ``(local root, files downloaded)``.

    Blocking (network): call it in a worker thread. A local source is returned as it is."""
    root = local_root(source, cache_dir)
    if not is_remote(source):
        return root, 0
    import fsspec

    fs, path = fsspec.core.url_to_fs(source, **storage_options)
    path = path.rstrip("/")
    remote = {}
    for name, info in fs.find(path, detail=True).items():
        if info.get("type") == "directory" or name.endswith("/"):
            continue
        relative = name[len(path) :].lstrip("/")
        remote[relative] = f"{info.get('size')}:{info.get('ETag') or info.get('etag') or ''}"
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / _STATE_FILE
    try:
        known = json.loads(state_path.read_text())
    except (OSError, ValueError):
        known = {}
    downloaded = 0
    for relative, signature in sorted(remote.items()):
        target = root / relative
        if known.get(relative) == signature and target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        fs.get_file(f"{path}/{relative}", str(partial))
        partial.replace(target)  # a reader never sees half a file
        downloaded += 1
    for relative in set(known) - set(remote):
        (root / relative).unlink(missing_ok=True)
    _remove_empty_folders(root)
    state_path.write_text(json.dumps(remote))
    if downloaded:
        logger.info("synced %s: %d file(s) downloaded", source, downloaded)
    return root, downloaded


def _remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
