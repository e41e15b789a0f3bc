"""``/metrics`` is rendered at most once per ``metrics_max_age_s``: a flood of scrapes costs one
render a second, not one each (about 7 ms of the event loop with ten models)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import metrics
from app.main import create_app
from tests.app.conftest import make_settings


def _live_requests(text: str) -> float:
    prefix = 'serving_http_requests_total{endpoint="/v2/health/live",method="GET"'
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_a_rendering_is_reused_until_it_is_max_age_s_old(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: now[0])
    renders = []
    monkeypatch.setattr(metrics, "render", lambda: (renders.append(now[0]) or b"text", "type"))
    exposition = metrics.Exposition(max_age_s=1.0)
    body, content_type = exposition.get()
    assert (body.body, content_type) == (b"text", "type")
    now[0] += 0.99
    exposition.get()
    assert renders == [1000.0]
    now[0] += 0.01
    exposition.get()
    assert renders == [1000.0, 1001.0]


def test_max_age_zero_renders_every_scrape(monkeypatch):
    renders = []
    monkeypatch.setattr(metrics, "render", lambda: (renders.append(1) or b"", "type"))
    exposition = metrics.Exposition(max_age_s=0)
    for _ in range(3):
        exposition.get()
    assert len(renders) == 3


@pytest.mark.parametrize("max_age_s", [0.0, 60.0])
def test_the_setting_decides_whether_a_scrape_sees_the_requests_since_the_last(
    max_age_s, tiny_models_dir
):
    app = create_app(
        make_settings(
            models_dir=tiny_models_dir, model_names=["tiny_multi"], metrics_max_age_s=max_age_s
        )
    )
    with TestClient(app) as client:
        before = _live_requests(client.get("/metrics").text)
        for _ in range(3):
            assert client.get("/v2/health/live").status_code == 200
        after = _live_requests(client.get("/metrics").text)
    assert after - before == (3 if max_age_s == 0 else 0)
