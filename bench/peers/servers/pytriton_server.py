"""Triton Inference Server through PyTriton 0.7: dynamic batching, KServe v2 protocol."""

from __future__ import annotations

import numpy as np
from model import BATCH_SIZE, HOST, PORT, WAIT_MS, Model
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

model = Model()


@batch
def infer(pixels: np.ndarray) -> dict[str, np.ndarray]:
    return {"output_0": model(pixels)}


if __name__ == "__main__":
    config = TritonConfig(
        http_address=HOST,
        http_port=PORT,
        grpc_address=HOST,
        grpc_port=PORT + 1,
        metrics_port=PORT + 2,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="mnist",
            infer_func=infer,
            inputs=[Tensor(name="pixels", dtype=np.uint8, shape=(28, 28, 1))],
            outputs=[Tensor(name="output_0", dtype=np.float32, shape=(10,))],
            config=ModelConfig(
                max_batch_size=BATCH_SIZE,
                batcher=DynamicBatcher(max_queue_delay_microseconds=int(WAIT_MS * 1000)),
            ),
            strict=False,
        )
        triton.serve()
