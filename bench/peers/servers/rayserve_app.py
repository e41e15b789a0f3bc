"""Ray Serve 2: a FastAPI ingress deployment with ``@serve.batch``.

``max_ongoing_requests`` is raised from its default of 5 (which caps every batch at 5), and the
runner sets ``RAY_worker_niceness=0`` so that the replica is not deprioritised."""

# No ``from __future__ import annotations``: Ray's class ingress resolves FastAPI's
# annotations (``Request``) at run time.
import time

import numpy as np
import ray
from fastapi import FastAPI, Request
from model import BATCH_SIZE, HOST, PORT, WAIT_MS, Model, as_digits
from ray import serve

app = FastAPI()


@serve.deployment(max_ongoing_requests=1024)
@serve.ingress(app)
class Mnist:
    def __init__(self) -> None:
        self.model = Model()

    @serve.batch(max_batch_size=BATCH_SIZE, batch_wait_timeout_s=WAIT_MS / 1000)
    async def run(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.model(np.concatenate(batches))
        return np.split(outputs, np.cumsum([len(b) for b in batches])[:-1])

    @app.post("/predict")
    async def predict(self, request: Request) -> dict:
        body = await request.json()
        return {"predictions": (await self.run(as_digits(body["instances"]))).tolist()}


if __name__ == "__main__":
    ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": HOST, "port": PORT})
    serve.run(Mnist.bind(), route_prefix="/")
    while True:
        time.sleep(3600)
