"""What an invalid typed request costs is bounded by what a valid one could be: a list longer
than any endpoint takes is refused before validation, an object of far more fields than it has
is one error, and a 422 lists its first errors with their count (before, 200,000 wrong values
in 1 MB took 1 s and a 18 MB reply; 256 customers of 2,000 unknown fields, 6 MB, 3.4 s and a
53 MB reply)."""

from __future__ import annotations

import pytest
from task_helpers import TEST_LIMITS, assert_problem, require_model

from app.api.tasks.churn import EXAMPLE_CUSTOMER
from app.errors import MAX_LISTED_ERRORS

LONGEST = max(TEST_LIMITS["max_history_length"], TEST_LIMITS["max_items_per_request"])


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/v1/sales:forecast", "history", {"history": ["x"] * (LONGEST + 1), "horizon": 1}),
        ("/v1/spam:predict", "messages", {"messages": [1] * 100_000}),
        ("/v1/churn:predict", "customers", {"customers": [{"x": 1}] * (LONGEST + 1)}),
    ],
)
def test_a_list_longer_than_any_endpoint_takes_is_refused_before_validation(
    client, path, field, body
):
    problem = assert_problem(client.post(path, json=body), 413, field=field)
    assert "more than any endpoint takes" in problem["detail"]
    assert "errors" not in problem  # not one validation error per wrong item


def test_an_object_of_far_more_fields_than_it_has_is_one_error(client):
    require_model("churn")
    flooded = {**EXAMPLE_CUSTOMER, **{f"k{i}": 1 for i in range(5_000)}}
    problem = assert_problem(
        client.post("/v1/churn:predict", json={"customers": [flooded] * 3}), 422
    )
    assert [e["loc"] for e in problem["errors"]] == [["body", "customers", i] for i in range(3)]
    assert f"{len(flooded)} fields" in problem["errors"][0]["msg"]
    # A few unknown fields are still named one by one (a typo says which).
    typo = {**EXAMPLE_CUSTOMER, "tenur": 3}
    problem = assert_problem(client.post("/v1/churn:predict", json={"customers": [typo]}), 422)
    assert problem["errors"][0]["loc"] == ["body", "customers", 0, "tenur"]


def test_a_422_lists_its_first_errors_and_says_how_many_there_are(client):
    require_model("spam")
    count = TEST_LIMITS["max_items_per_request"]
    problem = assert_problem(
        client.post("/v1/spam:predict", json={"messages": [1] * count}), 422, field="messages.0"
    )
    assert len(problem["errors"]) == MAX_LISTED_ERRORS and problem["error_count"] == count
    assert problem["errors"][-1]["loc"] == ["body", "messages", MAX_LISTED_ERRORS - 1]
    few = assert_problem(client.post("/v1/spam:predict", json={"messages": [1, 2]}), 422)
    assert len(few["errors"]) == 2 and "error_count" not in few


def test_an_integer_of_thousands_of_digits_is_a_400_that_says_so(client):
    require_model("churn")
    body = '{"customers": [{"tenure": %s}]}' % ("9" * 5000)
    reply = client.post(
        "/v1/churn:predict", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(reply, 400, field="body")
    assert "4,300 digits" in problem["detail"]
