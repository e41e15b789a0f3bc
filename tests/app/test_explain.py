"""Explanations: Grad-CAM and activations of the image CNNs (exported signatures), occlusion
for text and tabular models, bounded apart from the predictions."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.errors import QueueFullError
from app.examples import SEVEN_PIXELS, SEVEN_PNG
from app.explain import Explainer, feature_grid, overlay, tokens
from app.main import create_app
from tests.paths import DATASETS_DIR, REPO_ROOT, make_settings


@pytest.fixture(scope="module")
def client():
    names = ["mnist", "sentiment", "churn", "spam", "simpsons", "movie_profit"]
    app = create_app(make_settings(models_dir=REPO_ROOT / "models", model_names=names))
    with TestClient(app) as test_client:
        yield test_client


def png_size(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def test_protocol_explain_of_a_seven(client):
    reply = client.post("/v1/models/mnist:explain", json={"instances": [SEVEN_PIXELS]})
    assert reply.status_code == 200, reply.text
    (explanation,) = reply.json()["explanations"]
    assert explanation["label"] == "7" and explanation["probability"] > 0.9
    heatmap = np.asarray(explanation["gradcam"]["heatmap"])
    assert heatmap.shape == (7, 7) and heatmap.min() >= 0 and heatmap.max() == pytest.approx(1)
    # The heat lies on the strokes: more of it where the (downscaled) digit has ink.
    ink = np.asarray(Image.fromarray(np.asarray(SEVEN_PIXELS, np.uint8)[..., 0]).resize((7, 7)))
    assert heatmap[ink > 64].mean() > 2 * heatmap[ink <= 64].mean()
    layers = {a["name"]: a for a in explanation["activations"]}
    assert layers["conv_1"]["shape"] == [14, 14, 32] and len(layers["conv_1"]["values"]) == 14
    assert png_size(layers["conv_2"]["png"]) == (8 * 58, 8 * 58)  # 64 maps, 8 x 8 tiles
    assert "png" not in layers["dense"] and len(layers["dense"]["values"]) == 128
    lean = client.post("/v1/models/mnist:explain?values=false", json={"instances": [SEVEN_PIXELS]})
    assert all("values" not in a for a in lean.json()["explanations"][0]["activations"])


def test_typed_image_explain_draws_the_heat_map(client):
    files = [("files", ("seven.png", SEVEN_PNG, "image/png"))]
    reply = client.post("/v1/images/mnist:explain", files=files)
    assert reply.status_code == 200, reply.text
    (explanation,) = reply.json()["explanations"]
    assert explanation["label"] == "7" and explanation["file"] == "seven.png"
    assert png_size(explanation["gradcam"]["png"]) == (224, 224)  # 28 x 28, enlarged 8 times
    assert all("values" not in a for a in explanation["activations"])


def test_simpsons_frames_are_explained_over_the_picture(client):
    folder = DATASETS_DIR / "simpsons-characters" / "simpsons_dataset" / "homer_simpson"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    frame = sorted(folder.glob("*.jpg"))[0]
    files = [("files", (frame.name, frame.read_bytes(), "image/jpeg"))]
    reply = client.post("/v1/images/simpsons:explain?values=true", files=files)
    assert reply.status_code == 200, reply.text
    (explanation,) = reply.json()["explanations"]
    classified = client.post("/v1/images/simpsons:classify", files=files).json()
    assert explanation["label"] == classified["predictions"][0]["label"]
    heatmap = np.asarray(explanation["gradcam"]["heatmap"])
    assert heatmap.shape == (8, 8) and heatmap.max() == pytest.approx(1)
    assert png_size(explanation["gradcam"]["png"]) == (512, 512)  # 64 x 64, enlarged 8 times
    layers = {a["name"]: a for a in explanation["activations"]}
    assert layers["conv_1"]["shape"] == [32, 32, 32] and "png" in layers["conv_1"]


def test_versions_without_signatures_are_refused_clearly(client):
    reply = client.post("/v1/models/mnist/versions/3:explain", json={"instances": [SEVEN_PIXELS]})
    assert reply.status_code == 400 and "training/explain.py" in reply.json()["error"]
    assert client.post("/v1/models/mnist:explode", json={}).status_code == 400


def test_explain_limits(client):
    too_many = {"instances": [SEVEN_PIXELS] * 17}
    assert client.post("/v1/models/mnist:explain", json=too_many).status_code == 413
    long_text = " ".join(["word"] * 201)
    assert client.post("/v1/sentiment:explain", json={"texts": [long_text]}).status_code == 400


def test_sentiment_tokens_move_the_score(client):
    text = "Absolutely wonderful, I loved it"
    reply = client.post("/v1/sentiment:explain", json={"texts": [text]})
    assert reply.status_code == 200, reply.text
    (explanation,) = reply.json()["explanations"]
    assert [t["token"] for t in explanation["tokens"]] == tokens(text)
    assert explanation["label"] == "positive"
    by_token = {t["token"]: t["contribution"] for t in explanation["tokens"]}
    # The words that carry the sentiment push towards "positive" more than the filler.
    assert max(by_token["wonderful"], by_token["loved"]) > max(by_token["I"], by_token["it"])
    predicted = client.post("/v1/sentiment:predict", json={"texts": [text]}).json()
    assert explanation["score"] == pytest.approx(predicted["predictions"][0]["score"], abs=1e-5)
    # The same occlusion in log-odds: same sign, readable when the score is near 0 or 1.
    by_odds = {t["token"]: t["log_odds_contribution"] for t in explanation["tokens"]}
    assert max(by_odds["wonderful"], by_odds["loved"]) > max(by_odds["I"], by_odds["it"])
    for t in explanation["tokens"]:
        assert np.sign(t["log_odds_contribution"]) == np.sign(t["contribution"]) or (
            abs(t["contribution"]) < 1e-4
        )


def test_churn_columns_are_ranked_by_contribution(client):
    from app.api.tasks.churn import EXAMPLE_CUSTOMER

    reply = client.post("/v1/churn:explain", json={"customers": [EXAMPLE_CUSTOMER]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["positive_class"] == "churn"
    assert body["method"] == "occlusion: P(churn) minus P(churn) with the column at its default"
    (explanation,) = body["explanations"]
    features = explanation["features"]
    contributions = [abs(f["contribution"]) for f in features]
    assert contributions == sorted(contributions, reverse=True) and len(features) >= 15
    # A column already at its default contributes nothing.
    assert all(f["contribution"] == 0 for f in features if f["value"] == f["baseline"])


def test_text_activations_show_the_terms_the_model_weighs(client):
    text = "WINNER! Claim your free prize now, call 09061701461"
    reply = client.post("/v1/spam:explain", json={"messages": [text]})
    assert reply.status_code == 200, reply.text
    # What the contributions are differences of, in the model's own class names.
    assert reply.json()["method"] == "occlusion: P(spam) minus P(spam) without the token"
    (explanation,) = reply.json()["explanations"]
    assert explanation["label"] == "spam"
    layers = {layer["name"]: layer for layer in explanation["activations"]}
    assert [layer["kind"] for layer in explanation["activations"]] == ["bag", "dense", "dense"]
    bag = layers["tfidf"]
    terms = [t["term"] for t in bag["top_terms"]]
    # The message's own words (lower-cased, punctuation stripped; "[UNK]" for those outside
    # the vocabulary), strongest first, no others.
    assert {"free", "prize", "claim"} <= set(terms)
    words = set(text.lower().replace("!", "").replace(",", "").split()) | {"[UNK]"}
    assert set(" ".join(terms).split()) <= words
    values = [t["value"] for t in bag["top_terms"]]
    assert values == sorted(values, reverse=True) and min(values) > 0
    assert bag["shape"] == [8000] and len(terms) <= 20
    assert layers["dense"]["shape"] == [16] and len(layers["dense"]["values"]) == 16
    # A version exported before the signature explains by occlusion only.
    old = client.post("/v1/spam:explain?version=1", json={"messages": [text]})
    assert old.status_code == 200 and old.json()["explanations"][0]["activations"] == []


def test_tabular_activations_show_the_encoded_customer(client):
    from app.api.tasks.churn import EXAMPLE_CUSTOMER

    reply = client.post("/v1/churn:explain", json={"customers": [EXAMPLE_CUSTOMER]})
    layers = reply.json()["explanations"][0]["activations"]
    assert [layer["kind"] for layer in layers][0] == "features"
    assert all(len(layer["values"]) == layer["shape"][0] for layer in layers)
    hidden = [layer for layer in layers if layer["kind"] == "dense"]
    assert hidden and all(min(layer["values"]) >= 0 for layer in hidden)  # ReLU outputs


def test_protocol_explain_of_text_and_tabular_models_matches_the_typed_endpoints(client):
    from app.api.tasks.churn import EXAMPLE_CUSTOMER

    text = "Absolutely wonderful, I loved it"
    typed = client.post("/v1/sentiment:explain", json={"texts": [text]}).json()
    protocol = client.post("/v1/models/sentiment:explain", json={"instances": [text]})
    assert protocol.status_code == 200, protocol.text
    assert protocol.json()["explanations"] == [
        {k: v for k, v in e.items() if k != "label"} for e in typed["explanations"]
    ]
    typed = client.post("/v1/churn:explain", json={"customers": [EXAMPLE_CUSTOMER]}).json()
    # The protocol takes the signature's inputs only (the typed endpoint ignores customerID).
    instance = {k: v for k, v in EXAMPLE_CUSTOMER.items() if k != "customerID"}
    protocol = client.post("/v1/models/churn:explain", json={"instances": [instance]})
    assert protocol.status_code == 200, protocol.text
    (got,) = protocol.json()["explanations"]
    (expected,) = typed["explanations"]
    assert got["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert [f["feature"] for f in got["features"]] == [f["feature"] for f in expected["features"]]
    assert got["activations"] == expected["activations"]


def test_explainer_refuses_past_its_limit():
    async def scenario() -> list[str]:
        explainer = Explainer(concurrency=1, max_waiting=1, timeout_s=5)
        release = threading.Event()
        calls = [asyncio.create_task(explainer.run(release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        outcomes = []
        try:
            await explainer.run(lambda: None)
        except QueueFullError:
            outcomes.append("refused")
        release.set()
        outcomes += [str(await call) for call in calls]
        explainer.close()
        return outcomes

    # In a thread of its own: a test run may hold an event loop in this one (Playwright's).
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, scenario()).result() == ["refused", "True", "True"]


def test_explanations_keep_their_own_deadline():
    """An explanation's deadline is explain_timeout_ms, not the predictions' request_timeout_ms:
    one that outlasts a prediction's deadline is answered; past its own, 504 saying which."""

    def explain_with(**settings) -> tuple[int, dict]:
        app = create_app(
            make_settings(models_dir=REPO_ROOT / "models", model_names=["sentiment"], **settings)
        )
        with TestClient(app) as test_client:
            reply = test_client.post(
                "/v1/sentiment:explain", json={"texts": [" ".join(["word"] * 150)] * 4}
            )
            return reply.status_code, reply.json()

    status, _ = explain_with(request_timeout_ms=1, explain_timeout_ms=60_000)
    assert status == 200
    status, problem = explain_with(explain_timeout_ms=1)
    assert status == 504 and "explain_timeout_ms" in problem["detail"]


def test_pictures():
    heat = np.zeros((7, 7), np.float32)
    heat[3, 3] = 1
    image = Image.open(io.BytesIO(overlay(np.zeros((28, 28, 1), np.uint8), heat)))
    assert image.size == (224, 224) and image.getpixel((112, 112))[0] > image.getpixel((5, 5))[0]
    grid = Image.open(io.BytesIO(feature_grid(np.random.rand(5, 5, 3))))
    assert grid.size == (2 * 57, 2 * 57)  # 5 x 5 maps enlarged 11 times, 2-pixel gaps


def test_log_odds_stay_readable_when_the_probability_saturates():
    from app.explain import log_odds

    odds = log_odds(np.array([0.5, 0.9998, 0.9994, 0.0, 1.0]))
    assert odds[0] == pytest.approx(0.0)
    # 0.9998 -> 0.9994 is 0.04 points of probability but 1.1 units of log-odds.
    assert odds[1] - odds[2] == pytest.approx(1.1, abs=0.01)
    assert np.isfinite(odds).all()  # 0 and 1 are clipped


def test_typed_explain_replies_match_their_documented_schemas(client):
    """Each reply validates against the model the OpenAPI schema shows (extra fields forbidden,
    so a field added to app/explain.py without documenting it fails here)."""
    from app.api.tasks.churn import EXAMPLE_CUSTOMER
    from app.api.tasks.explain_replies import (
        ImageExplainReply,
        RowExplainReply,
        TextExplainReply,
    )
    from app.api.tasks.movies import EXAMPLE_MOVIE

    seven = [("files", ("seven.png", SEVEN_PNG, "image/png"))]
    cases = [
        ("/v1/images/mnist:explain", {"files": seven}, ImageExplainReply),
        ("/v1/images/mnist:explain?values=true", {"files": seven}, ImageExplainReply),
        ("/v1/sentiment:explain", {"json": {"texts": ["Loved it", "Awful"]}}, TextExplainReply),
        ("/v1/spam:explain", {"json": {"messages": ["Call now to win"]}}, TextExplainReply),
        ("/v1/spam:explain?version=1", {"json": {"messages": ["hi"]}}, TextExplainReply),
        ("/v1/churn:explain", {"json": {"customers": [EXAMPLE_CUSTOMER]}}, RowExplainReply),
        ("/v1/movies:explain", {"json": {"movies": [EXAMPLE_MOVIE]}}, RowExplainReply),
    ]
    schema = client.get("/openapi.json").json()
    for path, kwargs, reply_model in cases:
        reply = client.post(path, **kwargs)
        assert reply.status_code == 200, (path, reply.text)
        explained = reply_model.model_validate(reply.json())
        assert explained.explanations, path
        template = path.split("?")[0].replace("/images/mnist:", "/images/{model}:")
        documented = schema["paths"][template]["post"]["responses"]["200"]
        ref = documented["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{reply_model.__name__}", path
    # The layers each kind of model shows are in the reply, typed.
    text = TextExplainReply.model_validate(
        client.post("/v1/spam:explain", json={"messages": ["win a prize"]}).json()
    )
    assert {layer.kind for layer in text.explanations[0].activations} == {"bag", "dense"}
    movie = RowExplainReply.model_validate(
        client.post("/v1/movies:explain", json={"movies": [EXAMPLE_MOVIE]}).json()
    )
    assert movie.positive_class == "profitable" and movie.method.startswith("occlusion: P(profit")
    # Every column the model reads is ranked, the largest contribution first.
    contributions = [abs(f.contribution) for f in movie.explanations[0].features]
    assert contributions == sorted(contributions, reverse=True) and len(contributions) >= 5
