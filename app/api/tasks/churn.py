"""``POST /v1/churn:predict``: will a telecom customer leave? Model ``churn``.

A customer is a row of the IBM Telco CSV (``WA_Fn-UseC_-Telco-Customer-Churn.csv``) by its column
names, categorical columns limited to the CSV's values. ``customerID`` is optional and ignored;
``Churn`` is what the model predicts and is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from app.api.deps import ExplainerDep, RepositoryDep, SettingsDep
from app.api.routing import TaskRoute
from app.api.tasks.common import (
    COMMON_PROBLEMS,
    BinaryReply,
    RequestObject,
    VersionQuery,
    problem_responses,
)
from app.api.tasks.explain_replies import RowExplainReply
from app.api.tasks.tabular import classify_rows, explain_rows_reply
from app.codec import json_response

MODEL_NAME = "churn"
router = APIRouter(route_class=TaskRoute, tags=["tasks"])

YesNo = Literal["Yes", "No"]
PhoneExtra = Literal["Yes", "No", "No phone service"]
InternetExtra = Literal["Yes", "No", "No internet service"]
Money = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]

# The first row of the CSV (a customer who churned: month-to-month, one month of tenure).
EXAMPLE_CUSTOMER = {
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
}


class Customer(RequestObject):
    """One customer, by the Telco CSV's column names and values."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_CUSTOMER]})

    customerID: str | None = Field(default=None, max_length=64, description="Optional; ignored.")
    gender: Literal["Female", "Male"]
    SeniorCitizen: Literal[0, 1]
    Partner: YesNo
    Dependents: YesNo
    tenure: int = Field(ge=0, le=1200, description="Months with the company.")
    PhoneService: YesNo
    MultipleLines: PhoneExtra
    InternetService: Literal["DSL", "Fiber optic", "No"]
    OnlineSecurity: InternetExtra
    OnlineBackup: InternetExtra
    DeviceProtection: InternetExtra
    TechSupport: InternetExtra
    StreamingTV: InternetExtra
    StreamingMovies: InternetExtra
    Contract: Literal["Month-to-month", "One year", "Two year"]
    PaperlessBilling: YesNo
    PaymentMethod: Literal[
        "Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"
    ]
    MonthlyCharges: Money
    TotalCharges: Money | None = Field(
        default=None, description="Blank in the CSV for new customers: null (or omitted) here."
    )
    # The label; declared only to refuse it with a clear message (hidden from the schema).
    Churn: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator("TotalCharges", mode="before")
    @classmethod
    def blank_is_missing(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("Churn", mode="before")
    @classmethod
    def refuse_label(cls, value: Any) -> Any:
        raise PydanticCustomError(
            "label_not_accepted",
            "'Churn' is what the model predicts; leave it out of the request",
        )


class ChurnRequest(RequestObject):
    customers: list[Customer] = Field(min_length=1, examples=[[EXAMPLE_CUSTOMER]])


@router.post(
    "/v1/churn:predict",
    response_model=BinaryReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Churn risk of telecom customers",
    description="One prediction per customer, in order: `label` is `churn` or `stay`, `score` "
    "is P(churn).",
)
async def predict_churn(
    body: ChurnRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    return await classify_rows(
        repository,
        settings,
        model_name=MODEL_NAME,
        rows=[c.model_dump(exclude={"customerID"}) for c in body.customers],
        field="customers",
        version=version,
    )


@router.post(
    "/v1/churn:explain",
    response_model=RowExplainReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Why a customer is likely to churn",
    description="Per customer: the prediction and each column's contribution to P(churn) "
    "(occlusion: the column at its default, the training data's most common value or "
    "median), largest first.",
)
async def explain_churn(
    body: ChurnRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    explainer: ExplainerDep,
    version: VersionQuery = None,
) -> Response:
    return json_response(
        await explain_rows_reply(
            repository,
            settings,
            explainer,
            model_name=MODEL_NAME,
            rows=[c.model_dump(exclude={"customerID"}) for c in body.customers],
            field="customers",
            version=version,
        )
    )
