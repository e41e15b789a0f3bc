"""``POST /v1/churn:predict`` and ``POST /v1/movies:predict`` with rows of the datasets' CSVs."""

from __future__ import annotations

import csv
import json

import pytest
from task_helpers import TEST_LIMITS, assert_problem, require_dataset, require_model

from app.api.tasks.common import BinaryReply

CHURN = "/v1/churn:predict"
MOVIES = "/v1/movies:predict"
CHURN_NUMERIC = {
    "SeniorCitizen": int,
    "tenure": int,
    "MonthlyCharges": float,
    "TotalCharges": float,
}
MOVIE_TEXT = {
    "color",
    "director_name",
    "actor_1_name",
    "actor_2_name",
    "actor_3_name",
    "genres",
    "movie_title",
    "plot_keywords",
    "movie_imdb_link",
    "language",
    "country",
    "content_rating",
}


def churn_rows(count: int) -> tuple[list[dict], list[str]]:
    """The first ``count`` customers as the API takes them, and their labels."""
    path = require_dataset("telco-churn/WA_Fn-UseC_-Telco-Customer-Churn.csv")
    customers, labels = [], []
    with path.open() as f:
        for row in csv.DictReader(f):
            labels.append("churn" if row.pop("Churn") == "Yes" else "stay")
            for name, kind in CHURN_NUMERIC.items():
                row[name] = kind(row[name]) if row[name].strip() else None
            customers.append(row)
            if len(customers) == count:
                break
    return customers, labels


def movie_rows(count: int) -> tuple[list[dict], list[str]]:
    """The first ``count`` movies with a budget and a gross, as the API takes them (``gross``
    left out, blanks as null), and whether each earned more than its budget."""
    path = require_dataset("imdb-5000-movies/movie_metadata.csv")
    movies, labels = [], []
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gross = row.pop("gross")
            if not gross or not row["budget"]:
                continue
            labels.append("profitable" if float(gross) > float(row["budget"]) else "not_profitable")
            movies.append(
                {
                    k: (v.strip() or None) if k in MOVIE_TEXT else (float(v) if v else None)
                    for k, v in row.items()
                }
            )
            if len(movies) == count:
                break
    return movies, labels


def accuracy(predictions: list[dict], labels: list[str]) -> float:
    return sum(p["label"] == y for p, y in zip(predictions, labels, strict=True)) / len(labels)


# ---- churn ------------------------------------------------------------------------------------
def test_churn_rows_from_the_csv(client):
    require_model("churn")
    customers, labels = churn_rows(TEST_LIMITS["max_items_per_request"])
    response = client.post(CHURN, json={"customers": customers})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "churn" and len(body["predictions"]) == len(customers)
    predictions = body["predictions"]
    assert accuracy(predictions, labels) >= 0.7
    churned = [p["score"] for p, y in zip(predictions, labels, strict=True) if y == "churn"]
    stayed = [p["score"] for p, y in zip(predictions, labels, strict=True) if y == "stay"]
    assert sum(churned) / len(churned) > sum(stayed) / len(stayed)  # score is P(churn)
    # The reply is written as plain data: it must still be what the documented schema says.
    assert BinaryReply.model_validate_json(response.content).model_dump(mode="json") == body


def test_churn_blank_total_charges_is_filled(client):
    require_model("churn")
    customer = churn_rows(1)[0][0] | {"tenure": 0, "TotalCharges": " "}
    response = client.post(CHURN, json={"customers": [customer]})
    assert response.status_code == 200, response.text


def test_churn_label_is_refused(client):
    customer = churn_rows(1)[0][0] | {"Churn": "Yes"}
    assert_problem(
        client.post(CHURN, json={"customers": [customer]}),
        422,
        field="customers.0.Churn",
        detail="'Churn' is what the model predicts",
    )


def test_churn_unknown_enum_value(client):
    customer = churn_rows(1)[0][0] | {"Contract": "Three year"}
    assert_problem(
        client.post(CHURN, json={"customers": [customer]}), 422, field="customers.0.Contract"
    )


def test_churn_missing_column(client):
    customer = churn_rows(1)[0][0]
    del customer["tenure"]
    assert_problem(
        client.post(CHURN, json={"customers": [customer]}), 422, field="customers.0.tenure"
    )


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"lots"'])
def test_churn_non_numeric_charges(client, value):
    customer = churn_rows(1)[0][0] | {"MonthlyCharges": "PLACEHOLDER"}
    body = json.dumps({"customers": [customer]}).replace('"PLACEHOLDER"', value)
    response = client.post(CHURN, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, field="customers.0.MonthlyCharges")


def test_churn_unknown_column(client):
    customer = churn_rows(1)[0][0] | {"favouriteColour": "blue"}
    assert_problem(
        client.post(CHURN, json={"customers": [customer]}), 422, field="customers.0.favouriteColour"
    )


def test_churn_empty_list(client):
    assert_problem(client.post(CHURN, json={"customers": []}), 422, field="customers")


def test_churn_too_many_customers(client):
    customer = churn_rows(1)[0][0]
    customers = [customer] * (TEST_LIMITS["max_items_per_request"] + 1)
    assert_problem(client.post(CHURN, json={"customers": customers}), 413, field="customers")


# ---- movies -----------------------------------------------------------------------------------
def test_movie_rows_from_the_csv(client):
    require_model("movie_profit")
    movies, labels = movie_rows(TEST_LIMITS["max_items_per_request"])
    response = client.post(MOVIES, json={"movies": movies})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "movie_profit" and len(body["predictions"]) == len(movies)
    assert accuracy(body["predictions"], labels) >= 0.6
    for prediction in body["predictions"]:  # score is P(profitable)
        assert (prediction["score"] >= 0.5) == (prediction["label"] == "profitable")
    assert BinaryReply.model_validate_json(response.content).model_dump(mode="json") == body


def test_movie_with_nulls_and_missing_fields(client):
    require_model("movie_profit")
    sparse = {"budget": 1_000_000, "genres": "Horror", "title_year": None, "color": None}
    response = client.post(MOVIES, json={"movies": [sparse, {}]})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_movie_gross_is_refused(client):
    movie = movie_rows(1)[0][0] | {"gross": 123.0}
    assert_problem(
        client.post(MOVIES, json={"movies": [movie]}), 422, field="movies.0.gross", detail="'gross'"
    )


def test_movie_unknown_content_rating(client):
    assert_problem(
        client.post(MOVIES, json={"movies": [{"content_rating": "PG-15"}]}),
        422,
        field="movies.0.content_rating",
    )


@pytest.mark.parametrize("value", ["NaN", "-Infinity", '"cheap"', "-5"])
def test_movie_bad_budget(client, value):
    body = f'{{"movies": [{{"budget": {value}}}]}}'
    response = client.post(MOVIES, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, field="movies.0.budget")


def test_movie_empty_list(client):
    assert_problem(client.post(MOVIES, json={"movies": []}), 422, field="movies")
