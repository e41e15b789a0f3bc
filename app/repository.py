"""The model repository: the ``<name>/<int version>/`` SavedModels that the version policy
serves, loaded and warm, kept in step with the folder (or bucket) while the server runs.

- A version that fails to load is kept, not ready and with its error, and does not stop the
  others; a *reload* that fails never replaces the working copy.
- ``reconcile()`` brings the served set to what the folder and the policies say: new versions
  are loaded and warmed in a worker thread and take traffic only once ready (the default
  version is the highest *ready* one); versions that left the folder or the policy stop taking
  new requests at once and are unloaded once their queue is drained; versions whose files
  changed are reloaded beside the old copy, which is swapped out when the new one is ready.
- ``repository_poll_seconds`` runs it periodically (with a remote repository re-synced first);
  the Triton repository API (``load`` / ``unload``) runs it on demand, and with several worker
  processes publishes it to every worker (``app.worker_control``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from app.config import Settings
from app.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    clipped,
)
from app.model_config import ModelConfig, VersionPolicy, read_model_config
from app.runtime import configure_threads, select_device
from app.servable import ModelState, ServedModel
from app.storage import is_remote, local_root, sync
from app.worker_control import FOLLOW_INTERVAL_S, SharedControl

logger = logging.getLogger(__name__)


class RepositoryError(RuntimeError):
    """The models directory cannot be served at all (missing, or no model in it)."""


MAX_VERSION_DIGITS = 18  # a version fits in an int64, as TF Serving's and Triton's do


def version_number(text: str) -> int | None:
    """The version ``text`` names, when it is one: ASCII digits only (``str.isdigit`` takes
    "²", on which ``int`` fails, and other scripts' digits), and no more of them than a version
    has (``int`` refuses over 4,300)."""
    if text.isascii() and text.isdigit() and len(text) <= MAX_VERSION_DIGITS:
        return int(text)
    return None


def scan(
    models_dir: Path, names: list[str] | None = None
) -> tuple[list[tuple[str, int, Path]], list[str]]:
    """The version folders of ``models_dir`` and the model folders that have none.

    Raises :class:`RepositoryError` when ``models_dir`` is missing: serving nothing is never
    what was meant."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise RepositoryError(
            f"models directory '{models_dir}' does not exist (SERVING_MODELS_DIR; run from the "
            "repository root or set it to a folder of <name>/<version>/ SavedModels)"
        )
    found, empty = [], []
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        if model_dir.name.startswith(".") or (names and model_dir.name not in names):
            continue
        versions = [
            (model_dir.name, number, v)
            for v in model_dir.iterdir()
            if v.is_dir() and (number := version_number(v.name)) is not None
        ]
        if versions:
            found.extend(versions)
        else:
            empty.append(model_dir.name)
    return sorted(found, key=lambda item: (item[0], item[1])), empty


def fingerprint(path: Path) -> tuple:
    """What identifies a version's files: each file's relative path, size and modification
    time (a re-export or a re-sync changes it)."""
    entries = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        entries.append((str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class ModelRepository:
    """Every served model version, by name and version (and label)."""

    def __init__(self, settings: Settings, control: SharedControl | None = None) -> None:
        self.settings = settings
        # Several workers of one supervisor: loads and unloads published to all of them.
        self.control = control
        self._control_applied = 0  # the generation of the shared state applied here
        self._control_lock = asyncio.Lock()
        # One API load or unload at a time here: each answer is about its own change.
        self._operations = asyncio.Lock()
        self.source = settings.models_dir
        self.root = local_root(self.source, settings.model_cache_dir)
        self.default_policy = VersionPolicy.model_validate(settings.version_policy)
        self.device = "/CPU:0"
        self._models: dict[str, dict[int, ServedModel]] = {}
        self._configs: dict[str, ModelConfig] = {}
        self._config_errors: dict[str, str] = {}
        # A reload that failed (its files and error): the loaded copy keeps serving.
        self._reload_errors: dict[tuple[str, int], tuple[tuple, str]] = {}
        self._available: dict[str, list[int]] = {}  # versions in the folder, served or not
        self._startup: set[tuple[str, int]] = set()  # versions of the first load (readiness)
        self._retiring: set[asyncio.Task] = set()
        self.empty_models: list[str] = []  # model folders with no numbered version
        self.unloaded: set[str] = set()  # unloaded through the API: not reloaded by polling
        self.loaded = False  # True once the first load has tried every version
        # Models found at start-up (a bucket's: the ones named, until its first sync): until the
        # first load has registered them, a request for one is "not ready yet" (503), not
        # "no such model" (404).
        self._expected: set[str] = (
            set(settings.model_names or ()) if is_remote(self.source) else set()
        )
        self._runtime_ready = False
        self._lock = asyncio.Lock()  # one reconcile or unload at a time

    # ---- lifecycle
    def discover(self) -> None:
        """Check that there is something to serve; :class:`RepositoryError` when not.

        A local folder is scanned here (start-up fails at once when it is missing or empty);
        a remote repository is checked after its first sync, in :meth:`load`."""
        if is_remote(self.source):
            return
        self._scan_or_fail()

    def _scan_or_fail(self) -> list[tuple[str, int, Path]]:
        found, self.empty_models = scan(self.root, self.settings.model_names)
        self._expected.update(name for name, _, _ in found)
        for name in self.empty_models:
            logger.error(
                "model folder '%s' has no numbered version folder (<name>/<version>/): not served",
                name,
            )
        if not found:
            wanted = f" among {self.settings.model_names}" if self.settings.model_names else ""
            raise RepositoryError(
                f"no model version found in '{self.source}'{wanted}: expected "
                "<name>/<version>/saved_model.pb folders"
            )
        return found

    async def load(self) -> None:
        """The first load: sync, scan, load and warm every version the policies serve."""
        if self.control is not None:  # what the other workers were told to unload, first
            state = await asyncio.to_thread(self.control.read)
            self.unloaded = set(state.unloaded)
            self._control_applied = state.generation
        await self.refresh(first=True)
        if self.control is not None:
            await self.follow_control_once()  # a change published while this one loaded
        self.loaded = True
        ready = sum(m.ready for m in self.all())
        logger.info("%d of %d model versions ready", ready, len(self.all()))

    async def refresh(self, *, first: bool = False) -> None:
        """Re-sync a remote repository, then :meth:`reconcile`."""
        if is_remote(self.source):
            await asyncio.to_thread(
                sync, self.source, self.settings.model_cache_dir, self.settings.storage_options
            )
            if first:
                self._scan_or_fail()  # a local folder was checked by discover()
        await self.reconcile(first=first)

    async def poll(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` until cancelled; an error is logged, never fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("repository poll failed; serving what is loaded")

    async def reconcile(self, *, first: bool = False) -> None:
        """Bring the served versions to what the folder and the version policies say."""
        async with self._lock:
            if not self._runtime_ready:
                configure_threads(self.settings.intra_op_threads, self.settings.inter_op_threads)
                self.device = await asyncio.to_thread(select_device, self.settings.device)
                logger.info("serving on %s", self.device)
                self._runtime_ready = True
            desired = await asyncio.to_thread(self._desired)  # file system walks: off the loop
            for name, versions in sorted(desired.items()):
                for version, path in sorted(versions.items()):
                    await self._ensure(name, version, path, first=first)
            # Availability first (TF Serving's availability-preserving policy): a version that
            # left the policy is retired only once a version the policy wants is ready; until
            # then the highest ready one keeps serving.
            for name, versions in list(self._models.items()):
                wanted = desired.get(name, {})
                wanted_ready = any(m.ready for v, m in versions.items() if v in wanted)
                default = self.default_version(name)
                keep = default.version if default and not wanted_ready and name in desired else None
                for version in list(versions):
                    if version not in wanted and version != keep:
                        self._retire(name, version)

    def _desired(self) -> dict[str, dict[int, Path]]:
        found, self.empty_models = scan(self.root, self.settings.model_names)
        by_model: dict[str, dict[int, Path]] = {}
        for name, version, path in found:
            by_model.setdefault(name, {})[version] = path
        self._available = {name: sorted(versions) for name, versions in by_model.items()}
        desired = {}
        for name, versions in by_model.items():
            config, error = read_model_config(self.root / name)
            self._configs[name] = config
            if error:
                self._config_errors[name] = error
            else:
                self._config_errors.pop(name, None)
            if name in self.unloaded:
                continue
            policy = config.version_policy or self.default_policy
            desired[name] = {v: versions[v] for v in policy.select(list(versions))}
        return desired

    async def _ensure(self, name: str, version: int, path: Path, *, first: bool) -> None:
        """Load ``name``/``version`` unless the same files are loaded already."""
        print_ = await asyncio.to_thread(fingerprint, path)
        current = self._models.get(name, {}).get(version)
        if current is not None and current.fingerprint == print_:
            return
        failed = self._reload_errors.get((name, version))
        if failed is not None and failed[0] == print_:
            return  # these files failed to load already: the working copy stays
        model = ServedModel(
            name,
            version,
            path,
            device=self.device,
            batching=self.settings.batching_for(name, self._configs[name].batching),
            max_instances=self.settings.max_instances_per_request,
        )
        model.fingerprint = print_
        if current is None:
            self._models.setdefault(name, {})[version] = model  # listed as LOADING meanwhile
            if first:
                self._startup.add((name, version))
        await asyncio.to_thread(model.load, warmup=self.settings.warmup)
        if model.ready:
            await model.start()
            logger.info(
                "model %s/%s ready on %s (task=%s, loaded and warmed up in %.2fs)",
                name,
                version,
                model.device,
                model.task,
                model.load_seconds,
            )
            self._reload_errors.pop((name, version), None)
            if current is not None:
                self._models[name][version] = model
                self._retire_model(current)
        elif current is not None and current.ready:
            logger.error("reload of %s/%s failed; the loaded copy keeps serving", name, version)
            self._reload_errors[(name, version)] = (print_, model.error or "load failed")
        elif current is not None:
            self._models[name][version] = model

    def _retire(self, name: str, version: int) -> None:
        model = self._models[name].pop(version)
        if not self._models[name]:
            del self._models[name]
        logger.info("model %s/%s leaves the repository: drained, then unloaded", name, version)
        self._retire_model(model)

    def _retire_model(self, model: ServedModel) -> None:
        """No new request reaches ``model`` (it is out of the lookup tables); the ones that
        already chose it finish, then it is stopped."""
        task = asyncio.get_running_loop().create_task(self._drain_and_stop(model))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain_and_stop(self, model: ServedModel) -> None:
        if model.ready:
            model.state = ModelState.UNLOADING  # still serves the requests that chose it
        await asyncio.sleep(self.settings.unload_grace_seconds)
        await model.batcher.drain(self.settings.request_timeout_ms / 1000)
        await model.stop()
        model.state = ModelState.END

    async def load_model(self, name: str) -> None:
        """Triton's ``load``: serve ``name`` again (after an unload) and reload changed files."""
        async with self._operations:
            if self.control is None:
                self.unloaded.discard(name)
            await self.refresh()  # (with workers: a model folder added since the last poll)
            if name not in self._available:
                raise ModelNotFoundError(f"model '{name}' is not in the repository")
            if self.control is not None:
                generation = await asyncio.to_thread(self.control.publish, load=name)
                await self.follow_control_once()  # loads it here as in every worker
            # Unloaded again: another worker's unload, published after this load, is applied
            # too. Not a failed load.
            undone = name in self.unloaded
            versions = self._models.get(name, {})
            if not undone and not any(m.ready for m in versions.values()):
                errors = "; ".join(m.error or m.state for m in versions.values())
                raise InvalidInputError(f"failed to load model '{name}': {errors or 'no version'}")
        if self.control is not None:
            await self._await_workers(generation, f"the load of '{name}'")

    async def unload_model(self, name: str) -> None:
        """Triton's ``unload``: stop serving ``name`` (drained) until it is loaded again."""
        async with self._operations:
            if name not in self._available and name not in self._models:
                raise ModelNotFoundError(f"model '{name}' is not in the repository")
            if self.control is None:
                self.unloaded.add(name)
                await self._unload_here({name})
                return
            generation = await asyncio.to_thread(self.control.publish, unload=name)
            await self.follow_control_once()
        await self._await_workers(generation, f"the unload of '{name}'")

    async def _unload_here(self, names: set[str]) -> None:
        async with self._lock:
            for name in names:
                for version in list(self._models.get(name, {})):
                    self._retire(name, version)

    # ---- several workers (app.worker_control)
    async def follow_control(self) -> None:
        """Apply what the other workers publish, as soon as they do, until cancelled."""
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            if not self.control.changed():
                continue
            try:
                await self.follow_control_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("applying the workers' shared model control failed")

    async def follow_control_once(self) -> None:
        """Bring this worker's models to the shared state, then say which generation it has."""
        async with self._control_lock:
            state = await asyncio.to_thread(self.control.read)
            if state.generation > self._control_applied:
                newly_unloaded = state.unloaded - self.unloaded
                loaded_again = self.unloaded - state.unloaded
                self.unloaded = set(state.unloaded)
                if newly_unloaded:
                    logger.info("unloading %s, as the workers were told", sorted(newly_unloaded))
                    await self._unload_here(newly_unloaded)
                if loaded_again or state.load_generation > self._control_applied:
                    try:
                        await self.refresh()
                    except Exception:  # as a failed poll: what is loaded serves on
                        logger.exception("reloading the repository for the workers failed")
                self._control_applied = state.generation
            await asyncio.to_thread(self.control.acknowledge, self._control_applied)

    async def _await_workers(self, generation: int, change: str) -> None:
        timeout_s = self.settings.model_control_timeout_s
        end = time.monotonic() + timeout_s
        while lagging := await asyncio.to_thread(self.control.lagging, generation):
            if time.monotonic() > end:
                raise DeadlineExceededError(
                    f"{change} is recorded, but worker processes {lagging} have not applied it "
                    f"within {timeout_s:g} s (model_control_timeout_s); they will when they can"
                )
            await asyncio.sleep(FOLLOW_INTERVAL_S / 2)

    def leave_control(self) -> None:
        """This worker stops: the others no longer wait for it."""
        if self.control is not None:
            self.control.forget()

    async def drain(self, timeout_s: float) -> None:
        """Let every queued request finish (up to ``timeout_s`` in all)."""
        end = time.monotonic() + timeout_s
        for model in self.all():
            await model.batcher.drain(max(0.0, end - time.monotonic()))

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for model in self.all():
            await model.stop()

    # ---- readiness
    @property
    def ready(self) -> bool:
        return not self.not_ready_reasons()

    def not_ready_reasons(self) -> list[str]:
        """Why the repository is not ready (empty when it is).

        ``all_versions``: every version of the first load is ready (a version that appears
        later and fails is reported in the index, not here: the served ones still work);
        ``each_model``: each model has a ready version. Never ready with no model, nor with a
        model folder that has no version."""
        if not self.loaded:
            return ["models are still loading"]
        reasons = [f"model '{name}' has no version folder" for name in self.empty_models]
        if not self._models and not self.unloaded:
            reasons.append("no model is served")
        for name, versions in self._models.items():
            if not any(m.ready for m in versions.values()):
                reasons.append(f"model '{name}' has no ready version")
            elif self.settings.readiness == "all_versions":
                reasons.extend(
                    m.not_ready_reason()
                    for m in versions.values()
                    if not m.ready and (name, m.version) in self._startup
                )
        return reasons

    # ---- lookup
    def has(self, name: str) -> bool:
        return name in self._models

    def all(self) -> list[ServedModel]:
        return [m for versions in self._models.values() for m in versions.values()]

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ServedModel]:
        """Every version of ``name``, oldest first; :class:`ModelNotFoundError` if unknown."""
        models = self._versions_of(name)
        return [models[v] for v in sorted(models)]

    def _versions_of(self, name: str) -> dict[int, ServedModel]:
        models = self._models.get(name)
        if models is None:
            if not self.loaded and name in self._expected:
                # Loading in the background: its versions are registered as their turn comes.
                raise ModelNotReadyError(
                    f"model '{name}' has no ready version yet: the server is loading its models"
                )
            raise ModelNotFoundError(f"model '{clipped(name)}' not found; serving: {self.names()}")
        return models

    def labels_of(self, name: str) -> dict[str, int]:
        config = self._configs.get(name)
        return dict(config.labels) if config else {}

    def policy_of(self, name: str) -> VersionPolicy:
        config = self._configs.get(name)
        return (config.version_policy if config else None) or self.default_policy

    def default_version(self, name: str) -> ServedModel | None:
        """The version that answers when none is named: the highest ready one (None if none)."""
        models = self._versions_of(name)
        newest = max((number for number, m in models.items() if m.ready), default=None)
        return None if newest is None else models[newest]

    def get(
        self, name: str, version: int | str | None = None, *, ready: bool = True
    ) -> ServedModel:
        """The requested version (a number or a label), or the default one.

        Raises :class:`ModelNotFoundError` (unknown name, version or label), and with ``ready``
        (what inference needs) :class:`ModelNotReadyError` for a version that is not loaded
        and warm or a model with no ready version. ``ready=False`` (status pages) returns any
        version, the highest one when none is ready.
        """
        if version is None or version == "":
            model = self.default_version(name)
            if model is not None:
                return model
            versions = self.versions(name)
            if ready:
                raise ModelNotReadyError(
                    f"model '{name}' has no ready version: "
                    + "; ".join(f"{m.version}: {m.error or m.state}" for m in versions)
                )
            return versions[-1]
        models = self._versions_of(name)
        model = models.get(self.resolve_version(name, version))
        if model is None:
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}; versions: {sorted(models)}"
            )
        if ready and not model.ready:
            raise ModelNotReadyError(model.not_ready_reason())
        return model

    def resolve_version(self, name: str, version: int | str) -> int:
        """A version number, or a label of the model's ``config.json``."""
        if isinstance(version, int):
            return version
        number = version_number(version)
        if number is not None:
            return number
        labels = self.labels_of(name)
        if version not in labels:
            raise ModelNotFoundError(
                f"model '{name}' has no version label '{clipped(version)}'; labels: "
                f"{sorted(labels)}"
            )
        return labels[version]

    # ---- the Triton repository index
    def index(self) -> list[dict]:
        """Every model version of the folder with its state, as Triton's repository index."""
        rows = []
        for name in sorted(set(self._available) | set(self._models)):
            served = self._models.get(name, {})
            for version in sorted(set(self._available.get(name, [])) | set(served)):
                model = served.get(version)
                if model is not None:
                    state = {"AVAILABLE": "READY", "LOADING": "LOADING", "START": "LOADING"}.get(
                        model.state, "UNAVAILABLE"
                    )
                    reason = model.error or ""
                    if (name, version) in self._reload_errors:
                        reason = (
                            "reload failed, the loaded copy serves: "
                            + (self._reload_errors[(name, version)][1])
                        )
                elif name in self.unloaded:
                    state, reason = "UNAVAILABLE", "unloaded"
                else:
                    state, reason = "UNAVAILABLE", "not in the version policy"
                row = {"name": name, "version": str(version), "state": state, "reason": reason}
                rows.append(row)
            if name in self._config_errors:
                rows.append(
                    {
                        "name": name,
                        "version": "",
                        "state": "UNAVAILABLE",
                        "reason": self._config_errors[name],
                    }
                )
        return rows
