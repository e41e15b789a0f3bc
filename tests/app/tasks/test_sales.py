"""``POST /v1/sales:forecast``."""

from __future__ import annotations

import csv

import pytest
from task_helpers import TEST_LIMITS, assert_problem, require_dataset, require_model

from app.api.tasks.sales import ForecastReply

URL = "/v1/sales:forecast"


def champagne() -> list[float]:
    path = require_dataset("monthly-sales/monthly_champagne_sales.csv")
    with path.open() as f:
        return [float(row["Sales"]) for row in csv.DictReader(f)]


def min_history(client) -> int:
    model = client.app.state.repository.get("sales")
    block = model.metadata["forecast"]
    return int(block.get("min_history", block["window"]))


def test_forecast_has_the_horizon_and_the_series_scale(client):
    require_model("sales")
    series = champagne()
    history = series[-48:]
    response = client.post(URL, json={"history": history, "horizon": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "sales" and body["horizon"] == 6
    forecast = body["forecast"]
    assert len(forecast) == 6
    # Same scale as the input (thousands of bottles a month), not normalised units.
    low, high = min(history), max(history)
    assert all(0.3 * low <= v <= 1.5 * high for v in forecast), forecast
    # The reply is written as plain data: it must still be what the documented schema says.
    assert ForecastReply.model_validate_json(response.content).model_dump(mode="json") == body
    mean = sum(history[-12:]) / 12
    assert 0.5 * mean < sum(forecast) / 6 < 2 * mean


def test_forecast_scales_with_the_input(client):
    """Raw units in, raw units out: the same series in other units gives a scaled forecast."""
    require_model("sales")
    history = champagne()[-36:]
    one = client.post(URL, json={"history": history, "horizon": 3}).json()["forecast"]
    thousand = client.post(URL, json={"history": [v * 1000 for v in history], "horizon": 3})
    ratio = [b / a for a, b in zip(one, thousand.json()["forecast"], strict=True)]
    assert all(500 < r < 2000 for r in ratio), ratio


def test_history_too_short(client):
    require_model("sales")
    short = champagne()[: min_history(client) - 1]
    assert_problem(
        client.post(URL, json={"history": short}), 400, field="history", detail="at least"
    )


def test_history_too_long(client):
    history = [100.0] * (TEST_LIMITS["max_history_length"] + 1)
    assert_problem(client.post(URL, json={"history": history}), 413, field="history")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values(client, value):
    body = f'{{"history": [1, 2, {value}, 4], "horizon": 1}}'
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, field="history.2")


@pytest.mark.parametrize("value", ['"12"', "true", "null", '"abc"'])
def test_non_numeric_values(client, value):
    body = f'{{"history": [1, 2, {value}, 4]}}'
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, field="history.2")


def test_absurd_magnitude(client):
    assert_problem(client.post(URL, json={"history": [1e300] * 30}), 422, field="history.0")


@pytest.mark.parametrize("horizon", [0, 13, 2.5, "3"])
def test_bad_horizon(client, horizon):
    response = client.post(URL, json={"history": [1.0] * 30, "horizon": horizon})
    assert_problem(response, 422, field="horizon")


def test_empty_history(client):
    assert_problem(client.post(URL, json={"history": []}), 422, field="history")
