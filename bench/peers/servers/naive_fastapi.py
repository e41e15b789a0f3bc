"""The naive baseline: FastAPI, the model called in the route, no batching."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI, Request
from model import HOST, PORT, Model, as_digits

app = FastAPI()
model = Model()


@app.post("/predict")
async def predict(request: Request) -> dict:
    body = await request.json()
    return {"predictions": model(as_digits(body["instances"])).tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host=HOST, port=PORT, log_level="warning", access_log=False)
