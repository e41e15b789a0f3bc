"""Binary text classification shared by the sentiment and spam endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints
from starlette.responses import Response

from app.api.tasks.common import (
    TEXT_CLASSIFICATION,
    binary_reply,
    check_count,
    check_text_length,
    occlusion_reply,
    task_model,
)
from app.config import Settings
from app.explain import Explainer, explain_texts
from app.repository import ModelRepository

# At least one non-blank character; the length limit is a setting (checked per request).
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


def texts_field(description: str, examples: list[list[str]]):
    return Field(min_length=1, description=description, examples=examples)


async def classify_texts(
    repository: ModelRepository,
    settings: Settings,
    *,
    model_name: str,
    texts: list[str],
    field: str,
    version: int | None,
) -> Response:
    """Score ``texts`` with the binary text classifier ``model_name`` (raw UTF-8 in)."""
    check_count(len(texts), settings.max_items_per_request, field, field)
    check_text_length(texts, settings.max_text_chars, field)
    model = task_model(repository, model_name, TEXT_CLASSIFICATION, version)
    input_name = next(iter(model.inputs))
    outputs = await model.infer({input_name: list(texts)})
    return binary_reply(model, outputs)


async def explain_texts_reply(
    repository: ModelRepository,
    settings: Settings,
    explainer: Explainer,
    *,
    model_name: str,
    texts: list[str],
    field: str,
    version: int | None,
) -> dict[str, Any]:
    """Per text: the prediction and each token's occlusion contribution (``app.explain``)."""
    check_count(len(texts), settings.max_explain_instances, field, field)
    check_text_length(texts, settings.max_text_chars, field)
    model = task_model(repository, model_name, TEXT_CLASSIFICATION, version)
    explained = await explainer.run(explain_texts, model, list(texts), settings.max_explain_tokens)
    return occlusion_reply(model, "without the token", explained)
