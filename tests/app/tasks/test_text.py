"""``POST /v1/sentiment:predict`` and ``POST /v1/spam:predict``."""

from __future__ import annotations

import pytest
from task_helpers import TEST_LIMITS, assert_problem, require_model

from app.api.tasks.common import BinaryReply

SENTIMENT = "/v1/sentiment:predict"
SPAM = "/v1/spam:predict"

REVIEWS = [
    (
        "Me encantó el hotel, el personal fue muy amable y la comida estaba deliciosa. "
        "¡Volvería sin dudarlo!",
        "positive",
    ),
    (
        "Pésimo servicio, la habitación estaba sucia y el personal fue grosero. "
        "No lo recomiendo para nada.",
        "negative",
    ),
    ("Absolutely loved it! The best purchase I have made this year, works perfectly.", "positive"),
    (
        "Terrible product. It broke after two days and customer support never answered. "
        "A complete waste of money.",
        "negative",
    ),
]
SPAM_TEXT = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only."
)
HAM_TEXT = "Sorry, I'll be late for dinner tonight. See you around eight."


def test_sentiment_in_spanish_and_english(client):
    require_model("sentiment")
    response = client.post(SENTIMENT, json={"texts": [text for text, _ in REVIEWS]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "sentiment" and isinstance(body["version"], int)
    assert [p["label"] for p in body["predictions"]] == [label for _, label in REVIEWS]
    for prediction in body["predictions"]:  # score is P(positive)
        assert (prediction["score"] >= 0.5) == (prediction["label"] == "positive")
    # The reply is written as plain data: it must still be what the documented schema says.
    assert BinaryReply.model_validate_json(response.content).model_dump(mode="json") == body


def test_spam_and_ham(client):
    require_model("spam")
    response = client.post(SPAM, json={"messages": [SPAM_TEXT, HAM_TEXT]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "spam"
    spam, ham = body["predictions"]
    assert spam["label"] == "spam" and spam["score"] > 0.5
    assert ham["label"] == "ham" and ham["score"] < 0.5
    assert BinaryReply.model_validate_json(response.content).model_dump(mode="json") == body


@pytest.mark.parametrize(("url", "field"), [(SENTIMENT, "texts"), (SPAM, "messages")])
def test_empty_list(client, url, field):
    assert_problem(client.post(url, json={field: []}), 422, field=field)


@pytest.mark.parametrize(("url", "field"), [(SENTIMENT, "texts"), (SPAM, "messages")])
def test_blank_text(client, url, field):
    assert_problem(client.post(url, json={field: ["ok", "   "]}), 422, field=f"{field}.1")


@pytest.mark.parametrize(("url", "field"), [(SENTIMENT, "texts"), (SPAM, "messages")])
def test_non_string_item(client, url, field):
    assert_problem(client.post(url, json={field: ["fine", 42]}), 422, field=f"{field}.1")


@pytest.mark.parametrize(("url", "field"), [(SENTIMENT, "texts"), (SPAM, "messages")])
def test_overlong_text(client, url, field):
    text = "a" * (TEST_LIMITS["max_text_chars"] + 1)
    assert_problem(
        client.post(url, json={field: ["fine", text]}),
        413,
        field=f"{field}[1]",
        detail="characters",
    )


@pytest.mark.parametrize(("url", "field"), [(SENTIMENT, "texts"), (SPAM, "messages")])
def test_too_many_items(client, url, field):
    texts = ["hello"] * (TEST_LIMITS["max_items_per_request"] + 1)
    assert_problem(client.post(url, json={field: texts}), 413, field=field)


def test_unknown_field(client):
    assert_problem(client.post(SENTIMENT, json={"text": ["hola"]}), 422)


def test_malformed_json(client):
    response = client.post(
        SENTIMENT, content=b'{"texts": ["unterminated', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_json_endpoint_with_wrong_content_type(client, content_type):
    response = client.post(
        SPAM, content=b'{"messages": ["hi"]}', headers={"content-type": content_type}
    )
    problem = assert_problem(response, 415, field="body")
    assert "application/json" in problem["detail"] and content_type in problem["detail"]
