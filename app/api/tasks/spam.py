"""``POST /v1/spam:predict``: SMS spam filter with model ``spam``."""

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

MODEL_NAME = "spam"
router = APIRouter(route_class=TaskRoute, tags=["tasks"])


class SpamRequest(RequestObject):
    messages: list[Text] = texts_field(
        "Short messages (SMS-like), raw text.",
        [
            [
                "WINNER!! As a valued network customer you have been selected to receive a £900 "
                "prize reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
                "Are we still meeting for lunch tomorrow at 1?",
            ]
        ],
    )


@router.post(
    "/v1/spam:predict",
    response_model=BinaryReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Spam filter: spam or ham",
    description="One prediction per message, in order: `label` is `spam` or `ham`, "
    "`score` is P(spam).",
)
async def predict_spam(
    body: SpamRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    return await classify_texts(
        repository,
        settings,
        model_name=MODEL_NAME,
        texts=body.messages,
        field="messages",
        version=version,
    )


@router.post(
    "/v1/spam:explain",
    response_model=TextExplainReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Why a message is spam or ham",
    description="Per message: the prediction and each token's contribution to P(spam) (occlusion: "
    "the message without that token).",
)
async def explain_spam(
    body: SpamRequest,
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
            texts=body.messages,
            field="messages",
            version=version,
        )
    )
