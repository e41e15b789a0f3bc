"""The documented shapes of the typed ``:explain`` replies (``app/explain.py`` builds them).

The endpoints write their replies as plain data (orjson, like ``:classify``): these models are
what the OpenAPI schema and Swagger UI show, and what the tests validate each reply against.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.tasks.common import TaskReply


class _Strict(BaseModel):
    # A field the code adds without documenting it here fails the tests' validation.
    model_config = ConfigDict(extra="forbid")


# ---- the model's layers -----------------------------------------------------------------------
class Term(_Strict):
    term: str = Field(
        description="A word, word pair or character n-gram; `[UNK]`: out of the vocabulary."
    )
    value: float = Field(description="Its TF-IDF weight in this text.")


class LayerActivation(_Strict):
    name: str = Field(description="The layer's name in the model.")
    kind: str = Field(
        description="`bag`: a text's bag of terms; `features`: the encoded row the model "
        "reads (one-hot categories, standardised numbers); `dense`: hidden units."
    )
    shape: list[int] | None = Field(description="The layer's size.")
    values: list[float] | None = Field(
        default=None, description="The layer's values (not for a bag)."
    )
    top_terms: list[Term] | None = Field(
        default=None, description="A bag's terms of non-zero weight, strongest first (up to 20)."
    )


class ImageLayerActivation(_Strict):
    name: str = Field(description="The layer's name in the model.")
    shape: list[int] = Field(
        description="The layer's shape: height, width and channels for a convolution block."
    )
    png: str | None = Field(
        default=None, description="A convolution block's feature maps as a grid, a base64 PNG."
    )
    values: list[Any] | None = Field(
        default=None, description="Its numbers, nested in `shape` (with `values=true`)."
    )


# ---- text and tabular models: occlusion -------------------------------------------------------
class _Occlusion(_Strict):
    contribution: float = Field(
        description="P(positive class) minus P(positive class) without it (at its default, for "
        "a column)."
    )
    log_odds_contribution: float = Field(
        description="The same difference in log-odds, log(P / (1 - P)): still ranks the "
        "features when P is near 0 or 1."
    )


class TokenContribution(_Occlusion):
    token: str


class FeatureContribution(_Occlusion):
    feature: str = Field(description="The column.")
    value: str | float | int | bool = Field(description="The column's value in the request.")
    baseline: str | float | int | bool = Field(
        description="What it was replaced by: the training data's most common value or median."
    )


class _Explained(_Strict):
    label: str = Field(description="The predicted class, as `:predict` answers.")
    score: float = Field(ge=0, le=1, description="P(positive class).")
    activations: list[LayerActivation] = Field(
        description="The model's intermediate layers (empty for a version exported without them)."
    )


class TextExplanation(_Explained):
    tokens: list[TokenContribution] = Field(description="Each token, in the text's order.")


class RowExplanation(_Explained):
    features: list[FeatureContribution] = Field(
        description="Each column, the largest contribution first."
    )


class _OcclusionReply(TaskReply):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="What the contributions are differences of.")
    positive_class: str = Field(description="The class whose probability `score` is.")


class TextExplainReply(_OcclusionReply):
    explanations: list[TextExplanation] = Field(description="One per text, in the order sent.")


class RowExplainReply(_OcclusionReply):
    explanations: list[RowExplanation] = Field(description="One per row, in the order sent.")


# ---- image models: Grad-CAM -------------------------------------------------------------------
class GradCam(_Strict):
    layer: str | None = Field(description="The convolution block the heat map is taken at.")
    heatmap: list[list[float]] = Field(
        description="Where the predicted class was seen, in [0, 1], rows of the block's size."
    )
    png: str = Field(description="The heat map drawn over the image, a base64 PNG.")


class ImageExplanation(_Strict):
    label: str = Field(description="The predicted class.")
    class_index: int = Field(description="Its index in the model's labels.")
    probability: float = Field(ge=0, le=1)
    gradcam: GradCam
    activations: list[ImageLayerActivation] = Field(
        description="Every convolution block's feature maps, first block first."
    )
    file: str | None = Field(default=None, description="The file's name, when it had one.")


class ImageExplainReply(TaskReply):
    model_config = ConfigDict(extra="forbid")

    explanations: list[ImageExplanation] = Field(description="One per image, in the order sent.")
