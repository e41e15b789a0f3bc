"""Triton's model load and unload reaching every worker process of ``python -m app``.

Each worker holds its own models. So the worker that receives a load or an unload publishes it
in a small file that the supervisor's workers share, ``control.json``: the models unloaded
through the API, and the generation of the last load (a load also re-reads the repository),
under a generation number that every change raises. Every worker follows the file (a ``stat``
every ``FOLLOW_INTERVAL_S``), applies a newer generation to its own models and writes the
generation it has applied (``ack-<pid>``). The receiving worker answers once every live worker
has applied the change. A worker that starts, or replaces one that died, reads the file before
its first load, so it never serves a model that was unloaded.

Writers take an exclusive ``flock`` (one read-modify-write at a time, across processes); the
files are replaced whole (``os.replace``), so readers never see half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

FOLLOW_INTERVAL_S = 0.1  # how soon the other workers see a change: a stat each time
_STATE = "control.json"
_LOCK = "control.lock"
_ACK = "ack-"


@dataclass(frozen=True)
class ControlState:
    generation: int = 0
    unloaded: frozenset[str] = frozenset()
    load_generation: int = 0  # the generation of the last load: each worker re-reads its models


class SharedControl:
    """The control files of one supervisor's workers, seen from the worker ``pid``."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = Path(directory)
        self.pid = pid if pid is not None else os.getpid()
        self._seen: tuple[int, int] | None = None  # (mtime_ns, inode) of the state last read

    # ---- the shared state
    def read(self) -> ControlState:
        path = self.directory / _STATE
        try:
            stat = path.stat()
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return ControlState()
        self._seen = (stat.st_mtime_ns, stat.st_ino)
        return ControlState(
            generation=int(raw["generation"]),
            unloaded=frozenset(raw["unloaded"]),
            load_generation=int(raw["load_generation"]),
        )

    def changed(self) -> bool:
        """Whether the state may differ from the one last read (cheap: one ``stat``)."""
        try:
            stat = (self.directory / _STATE).stat()
        except FileNotFoundError:
            return False
        return (stat.st_mtime_ns, stat.st_ino) != self._seen

    def publish(self, *, unload: str | None = None, load: str | None = None) -> int:
        """Record an unload or a load of a model; the new generation."""
        with open(self.directory / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            state = self.read()
            generation = state.generation + 1
            unloaded = set(state.unloaded)
            if unload is not None:
                unloaded.add(unload)
            if load is not None:
                unloaded.discard(load)
            _write_json(
                self.directory / _STATE,
                {
                    "generation": generation,
                    "unloaded": sorted(unloaded),
                    "load_generation": generation if load is not None else state.load_generation,
                },
            )
            return generation

    # ---- what each worker has applied
    def acknowledge(self, generation: int) -> None:
        _write_json(self.directory / f"{_ACK}{self.pid}", {"generation": generation})

    def lagging(self, generation: int) -> list[int]:
        """The other live workers that have not applied ``generation`` yet. A worker still
        starting has no acknowledgement yet and reads the state before it serves."""
        behind = []
        for path in self.directory.glob(f"{_ACK}*"):
            pid = int(path.name.removeprefix(_ACK))
            if pid == self.pid:
                continue
            if not _alive(pid):
                self.forget(pid)
                continue
            try:
                applied = json.loads(path.read_bytes())["generation"]
            except FileNotFoundError:
                continue  # it left meanwhile
            if applied < generation:
                behind.append(pid)
        return sorted(behind)

    def forget(self, pid: int | None = None) -> None:
        """A worker that stopped (or died) is no longer waited for."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{_ACK}{self.pid if pid is None else pid}").unlink()


def _write_json(path: Path, value: dict) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that number: alive
        return True
    return True
