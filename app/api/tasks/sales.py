"""``POST /v1/sales:forecast``: monthly sales forecast with model ``sales``.

The model reads a fixed window of the latest months (``metadata.json["forecast"]["window"]``) in
raw units (it scales them itself) and forecasts up to ``max_horizon`` months. A history longer
than the window is cut to its latest ``window`` values; one shorter than the window but at least
``min_history`` long is padded at the front with its oldest value.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter
from pydantic import Field
from starlette.responses import Response

from app.api.deps import RepositoryDep, SettingsDep
from app.api.routing import TaskRoute
from app.api.tasks.common import (
    COMMON_PROBLEMS,
    FORECASTING,
    RequestObject,
    TaskReply,
    VersionQuery,
    check_count,
    check_finite,
    problem_responses,
    task_model,
)
from app.codec import json_response
from app.errors import InvalidInputError

MODEL_NAME = "sales"
MAX_ABS_VALUE = 1e12  # far above any monthly figure, far below float32 overflow
router = APIRouter(route_class=TaskRoute, tags=["tasks"])

# Perrin Freres champagne sales, the 36 months before the held-out year.
EXAMPLE_HISTORY = [
    6922,
    9858,
    11331,
    4016,
    3957,
    4510,
    4276,
    4968,
    4677,
    3523,
    1821,
    5222,
    6872,
    10803,
    13916,
    2639,
    2899,
    3370,
    3740,
    2927,
    3986,
    4217,
    1738,
    5221,
    6424,
    9842,
    13076,
    3934,
    3162,
    4286,
    4676,
    5010,
    4874,
    4633,
    1659,
    5951,
]

Value = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)
]


class ForecastRequest(RequestObject):
    history: list[Value] = Field(
        min_length=1,
        description="Monthly values, oldest first, in their own units (JSON numbers). At least "
        "the model's `min_history` values (24 for the committed model).",
        examples=[EXAMPLE_HISTORY],
    )
    horizon: int = Field(
        default=12, ge=1, le=12, strict=True, description="Months to forecast (1-12)."
    )


class ForecastReply(TaskReply):
    horizon: int
    forecast: list[float] = Field(description="The next `horizon` months, in the history's units.")


@router.post(
    "/v1/sales:forecast",
    response_model=ForecastReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Forecast the next months of a monthly sales series",
)
async def forecast_sales(
    body: ForecastRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    check_count(len(body.history), settings.max_history_length, "history", "history values")
    model = task_model(repository, MODEL_NAME, FORECASTING, version)
    block = model.metadata.get("forecast", {})
    input_name = "history" if "history" in model.inputs else next(iter(model.inputs))
    window = int(block.get("window") or model.inputs[input_name].shape[-1])
    min_history = int(block.get("min_history", window))
    max_horizon = int(block.get("max_horizon", 12))
    if len(body.history) < min_history:
        raise InvalidInputError(
            f"history has {len(body.history)} values; model '{model.name}' needs at least "
            f"{min_history} monthly values, oldest first",
            field="history",
        )
    if body.horizon > max_horizon:
        raise InvalidInputError(
            f"horizon {body.horizon} is beyond model '{model.name}''s maximum of {max_horizon}",
            field="horizon",
        )
    series = np.asarray(body.history[-window:], dtype=np.float32)
    if series.size < window:
        series = np.pad(series, (window - series.size, 0), mode="edge")
    outputs = await model.infer({input_name: series[None, :]})
    forecast = check_finite(np.asarray(outputs["output_0"], dtype=np.float64)[0], model)
    # A ForecastReply by construction, written as plain data by orjson (as binary_reply).
    return json_response(
        {
            "model": model.name,
            "version": model.version,
            "horizon": body.horizon,
            "forecast": [float(v) for v in forecast[: body.horizon]],
        }
    )
