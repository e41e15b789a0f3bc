"""LitServe 0.2: a LitAPI with server-side batching."""

from __future__ import annotations

import litserve as ls
import numpy as np
from model import BATCH_SIZE, HOST, PORT, WAIT_MS, Model, as_digits


class MnistAPI(ls.LitAPI):
    def setup(self, device) -> None:
        self.model = Model()
        self.sizes: list[int] = []

    def decode_request(self, request: dict) -> np.ndarray:
        return as_digits(request["instances"])

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        self.sizes = [len(x) for x in inputs]
        return np.concatenate(inputs)

    def predict(self, digits: np.ndarray) -> np.ndarray:
        return self.model(digits)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return np.split(output, np.cumsum(self.sizes)[:-1])

    def encode_response(self, output: np.ndarray) -> dict:
        return {"predictions": output.tolist()}


if __name__ == "__main__":
    api = MnistAPI(max_batch_size=BATCH_SIZE, batch_timeout=WAIT_MS / 1000)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host=HOST, port=PORT, log_level="warning", generate_client_file=False)
