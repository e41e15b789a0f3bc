"""The TensorFlow runtime of the process: its thread pools and the device the models run on.

Both are set once, before the first model loads (``ModelRepository.reconcile``).
"""

from __future__ import annotations

import contextlib
import logging

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
