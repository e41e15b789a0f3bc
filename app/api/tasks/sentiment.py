"""``POST /v1/sentiment:predict``: polarity of reviews (Spanish, English), model ``sentiment``."""

from __future__ import annotations

from fastapi import APIRouter
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
from app.api.tasks.explain_replies import TextExplainReply
from app.api.tasks.text import Text, classify_texts, explain_texts_reply, texts_field
from app.codec import json_response

MODEL_NAME = "sentiment"
router = APIRouter(route_class=TaskRoute, tags=["tasks"])


class SentimentRequest(RequestObject):
    texts: list[Text] = texts_field(
        "Reviews or opinions, in Spanish or English (raw text, any length up to the limit).",
        [
            [
                "Me encantó el producto, llegó rápido y funciona perfecto.",
                "The food was cold and the waiter was rude. Never again.",
            ]
        ],
    )


@router.post(
    "/v1/sentiment:predict",
    response_model=BinaryReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Sentiment of reviews: positive or negative",
    description="One prediction per text, in order: `label` is `positive` or `negative`, "
    "`score` is P(positive).",
)
async def predict_sentiment(
    body: SentimentRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    return await classify_texts(
        repository,
        settings,
        model_name=MODEL_NAME,
        texts=body.texts,
        field="texts",
        version=version,
    )


@router.post(
    "/v1/sentiment:explain",
    response_model=TextExplainReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Why a review is positive or negative",
    description="Per text: the prediction and each token's contribution to P(positive) "
    "(occlusion: the text without that token).",
)
async def explain_sentiment(
    body: SentimentRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    explainer: ExplainerDep,
    version: VersionQuery = None,
) -> Response:
    return json_response(
        await explain_texts_reply(
            repository,
            settings,
            explainer,
            model_name=MODEL_NAME,
            texts=body.texts,
            field="texts",
            version=version,
        )
    )
