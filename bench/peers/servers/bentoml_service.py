"""BentoML 1.4: a service with adaptive batching (``batchable=True``; BentoML sizes its own
waits; ``max_latency_ms`` left at its default, so that the bulk load measures throughput rather
than refusals)."""

from __future__ import annotations

import bentoml
import numpy as np
from model import BATCH_SIZE, Model


@bentoml.service(workers=1)
class Mnist:
    def __init__(self) -> None:
        self.model = Model()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=BATCH_SIZE)
    def predict(self, instances: np.ndarray) -> np.ndarray:
        return self.model(instances)
