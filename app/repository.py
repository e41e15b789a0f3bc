"""The model repository: every ``models/<name>/<int version>/`` SavedModel, loaded and warm.

A model that fails to load is kept, not ready and with its error, and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from app.config import Settings
from app.errors import ModelNotFoundError, ModelNotReadyError
from app.servable import ServedModel

logger = logging.getLogger(__name__)


def configure_threads(intra_op: int, inter_op: int) -> None:
    """TensorFlow's thread pools (0 keeps its default); only possible before its runtime starts."""
    import tensorflow as tf

    # RuntimeError: already initialised (a second app in the same process keeps the first's).
    with contextlib.suppress(RuntimeError):
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def select_device(preference: str = "auto") -> str:
    """``/GPU:0`` when TensorFlow sees a GPU (memory growth on, so it does not take the whole
    card), else ``/CPU:0``."""
    import tensorflow as tf

    if preference == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # RuntimeError: already initialised (a second app in the same process).
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        return "/GPU:0"
    if preference == "gpu":
        logger.warning("SERVING_DEVICE=gpu but TensorFlow sees no GPU: serving on the CPU")
    return "/CPU:0"


class RepositoryError(RuntimeError):
    """The models directory cannot be served at all (missing, or no model in it)."""


def scan(
    models_dir: Path, names: list[str] | None = None
) -> tuple[list[tuple[str, int, Path]], list[str]]:
    """The version folders of ``models_dir`` and the model folders that have none.

    Raises :class:`RepositoryError` when ``models_dir`` is missing: serving nothing is never
    what was meant."""
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
            (model_dir.name, int(v.name), v)
            for v in model_dir.iterdir()
            if v.is_dir() and v.name.isdigit()
        ]
        if versions:
            found.extend(versions)
        else:
            empty.append(model_dir.name)
    return sorted(found, key=lambda item: (item[0], item[1])), empty


class ModelRepository:
    """Every served model version, by name and version."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models_dir = Path(settings.models_dir)
        self.device = "/CPU:0"
        self._models: dict[str, dict[int, ServedModel]] = {}
        self.empty_models: list[str] = []  # model folders with no numbered version
        self.loaded = False  # True once every discovered version has been tried

    # ---- lifecycle
    def discover(self) -> None:
        """Find every version to load; :class:`RepositoryError` when there is none at all."""
        found, self.empty_models = scan(self.models_dir, self.settings.model_names)
        for name in self.empty_models:
            logger.error(
                "model folder '%s' has no numbered version folder (<name>/<version>/): "
                "not served", name
            )
        if not found:
            wanted = f" among {self.settings.model_names}" if self.settings.model_names else ""
            raise RepositoryError(
                f"no model version found in '{self.models_dir}'{wanted}: expected "
                "<name>/<version>/saved_model.pb folders"
            )
        for name, version, path in found:
            self._models.setdefault(name, {})[version] = ServedModel(
                name,
                version,
                path,
                device=self.device,
                batching=self.settings.batching_for(name),
                max_instances=self.settings.max_instances_per_request,
            )

    async def load(self) -> None:
        """Discover, load and warm up every model version (in a thread: TF calls block)."""
        if not self._models:
            self.discover()
        configure_threads(self.settings.intra_op_threads, self.settings.inter_op_threads)
        self.device = await asyncio.to_thread(select_device, self.settings.device)
        logger.info("serving on %s", self.device)
        for model in self.all():
            model.device = self.device
            await asyncio.to_thread(model.load, warmup=self.settings.warmup)
            if model.ready:
                await model.start()
                logger.info(
                    "model %s/%s ready on %s (task=%s, loaded and warmed up in %.2fs)",
                    model.name,
                    model.version,
                    model.device,
                    model.task,
                    model.load_seconds,
                )
        self.loaded = True
        ready = sum(m.ready for m in self.all())
        logger.info("%d of %d model versions ready", ready, len(self.all()))

    async def drain(self, timeout_s: float) -> None:
        """Let every queued request finish (up to ``timeout_s`` in all)."""
        end = time.monotonic() + timeout_s
        for model in self.all():
            await model.batcher.drain(max(0.0, end - time.monotonic()))

    async def close(self) -> None:
        for model in self.all():
            await model.stop()

    @property
    def ready(self) -> bool:
        """Start-up is over and the readiness policy holds: every discovered version ready
        (``all_versions``), or one of each model (``each_model``); never with no model, nor
        with a model folder that has no version."""
        return not self.not_ready_reasons()

    def not_ready_reasons(self) -> list[str]:
        """Why the repository is not ready (empty when it is)."""
        if not self.loaded:
            return ["models are still loading"]
        reasons = [f"model '{name}' has no version folder" for name in self.empty_models]
        if not self._models:
            reasons.append("no model is served")
        for name, versions in self._models.items():
            failed = [m for m in versions.values() if not m.ready]
            if self.settings.readiness == "each_model":
                if len(failed) == len(versions):
                    reasons.append(f"model '{name}' has no ready version")
            else:
                reasons.extend(m.not_ready_reason() for m in failed)
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
        if name not in self._models:
            raise ModelNotFoundError(f"model '{name}' not found; serving: {self.names()}")
        return [self._models[name][v] for v in sorted(self._models[name])]

    def get(self, name: str, version: int | str | None = None) -> ServedModel:
        """The requested version, or the highest ready one.

        Raises :class:`ModelNotFoundError` (unknown name or version) or
        :class:`ModelNotReadyError` (known but not loaded/warm, or none ready).
        """
        versions = self.versions(name)
        if version is None or version == "":
            ready = [m for m in versions if m.ready]
            if not ready:
                raise ModelNotReadyError(
                    f"model '{name}' has no ready version: "
                    + "; ".join(f"{m.version}: {m.error or m.state}" for m in versions)
                )
            return ready[-1]
        number = _parse_version(version)
        model = self._models[name].get(number) if number is not None else None
        if model is None:
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}; versions: "
                f"{[m.version for m in versions]}"
            )
        if not model.ready:
            raise ModelNotReadyError(model.not_ready_reason())
        return model

    def find(self, name: str, version: int | str | None = None) -> ServedModel:
        """Like :meth:`get` but also returns a version that is not ready (for status pages)."""
        versions = self.versions(name)
        if version is None or version == "":
            ready = [m for m in versions if m.ready]
            return (ready or versions)[-1]
        number = _parse_version(version)
        model = self._models[name].get(number) if number is not None else None
        if model is None:
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}; versions: "
                f"{[m.version for m in versions]}"
            )
        return model


def _parse_version(version: int | str) -> int | None:
    if isinstance(version, int):
        return version
    return int(version) if version.isdigit() else None
