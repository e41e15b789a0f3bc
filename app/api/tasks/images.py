"""``POST /v1/images/{model}:classify``: classify uploaded pictures with any image model.

The body is either ``multipart/form-data`` with one or more files in field ``files`` (what a
browser form or ``curl -F`` sends), or JSON ``{"images": [{"b64": ...}, ...]}`` for clients that
cannot send multipart. Decoding and fitting to the model's input: ``app/imaging.py``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, TypeVar

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from PIL.Image import Image
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from app.admission import deadline_after
from app.api.deps import ExplainerDep, RepositoryDep, SettingsDep, off_loop_if_large
from app.api.routing import TaskRoute
from app.api.tasks.common import (
    IMAGE_CLASSIFICATION,
    RequestObject,
    TaskReply,
    VersionQuery,
    check_count,
    class_probabilities,
    problem_responses,
    task_model,
)
from app.api.tasks.explain_replies import ImageExplainReply
from app.classification import class_names, decide, rank_classes
from app.codec import json_response
from app.config import Settings
from app.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
)
from app.examples import SEVEN_B64
from app.explain import explain_images, require_signatures
from app.image_pool import ImagePool
from app.imaging import ImageSpec, Invert, open_image, prepare_image
from app.multipart import parse_form
from app.servable import ServedModel

router = APIRouter(route_class=TaskRoute, tags=["tasks"])
T = TypeVar("T")

IMAGE_MEDIA_TYPES = ("image/", "application/octet-stream")
MAX_FORM_FIELDS = 100  # text fields beside the files (none are read)
IMAGE_MODELS = ("mnist", "fashion_mnist", "greek_symbols", "simpsons", "chest_xray")


class Upload(NamedTuple):
    name: str | None  # the client's file name, when it gave one
    field: str  # where it was in the request: files[i] or images[i]
    data: bytes

    @property
    def label(self) -> str:
        return self.name or self.field


# ---- schemas ----------------------------------------------------------------------------------
class EncodedImage(RequestObject):
    b64: str = Field(
        min_length=1,
        description="The image file's bytes (PNG, JPEG, BMP, GIF, WebP) in base64; a "
        "`data:image/...;base64,` prefix is accepted.",
    )
    name: str | None = Field(
        default=None, max_length=256, description="Optional name, echoed in errors and replies."
    )


class ImagesRequest(RequestObject):
    images: list[EncodedImage] = Field(min_length=1)


class LabelProbability(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1)


class ImagePrediction(LabelProbability):
    top_k: list[LabelProbability] = Field(description="The top_k likeliest classes, best first.")
    file: str | None = Field(default=None, description="The file's name, when it had one.")


class ImageReply(TaskReply):
    predictions: list[ImagePrediction] = Field(description="One per image, in the order sent.")


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` references inlined (for ``openapi_extra``)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "minItems": 1,
                        # format: binary, so that Swagger UI shows a file picker (with OpenAPI
                        # 3.1's contentMediaType alone it shows text boxes: swagger-ui#10825).
                        "items": {"type": "string", "format": "binary"},
                        "description": "Images: PNG, JPEG, BMP, GIF (first frame), WebP.",
                    }
                },
            }
        },
        "application/json": {
            "schema": _inline(ImagesRequest.model_json_schema()),
            "example": {"images": [{"b64": SEVEN_B64, "name": "seven.png"}]},
        },
    },
}


# ---- endpoints --------------------------------------------------------------------------------
ModelPath = Annotated[
    str,
    Path(
        description="Image model name.",
        openapi_examples={name: {"value": name} for name in IMAGE_MODELS},
    ),
]


@router.post(
    "/v1/images/{model}:classify",
    response_model=ImageReply,
    responses=problem_responses(400, 404, 413, 415, 422, 429, 503, 504),
    openapi_extra={"requestBody": REQUEST_BODY},
    summary="Classify images with an image model",
    description="Send images as multipart files in field `files`, or as JSON "
    '`{"images": [{"b64": ...}]}`. Photos are squashed to the model\'s input size; digits '
    "and glyphs are cropped to their strokes and fitted keeping the aspect ratio. "
    "Image models: `mnist`, `fashion_mnist`, `greek_symbols`, `simpsons`, `chest_xray`.",
)
async def classify_images(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    model: ModelPath,
    top_k: Annotated[int, Query(ge=1, le=1000, description="Classes listed per image.")] = 3,
    invert: Annotated[
        Invert,
        Query(
            description="Digit/glyph models: invert the gray levels. `auto` inverts when the "
            "image's background (its border) is light and the model's is dark, or the other "
            "way round; photos are never inverted by `auto`."
        ),
    ] = Invert.auto,
    version: VersionQuery = None,
) -> Response:
    served = task_model(repository, model, IMAGE_CLASSIFICATION, version)
    files = await _read_images(request, settings)
    pixels = await _fit_images(request, served, files, invert, settings)
    outputs = await served.infer({next(iter(served.inputs)): pixels})
    probabilities = class_probabilities(outputs, served)
    labels = class_names(served.labels, probabilities.shape[1])
    ranks = rank_classes(probabilities, top_k)
    chosen = decide(probabilities, served.decision_threshold)
    # The reply as plain data, written by orjson: an ImageReply by construction (the model's
    # labels, finite probabilities in [0, 1]; tests validate it against the schema), for a
    # tenth of the CPU of building and serializing the pydantic objects per image.
    predictions = [
        {
            "label": labels[choice],
            "probability": float(row[choice]),
            "top_k": [{"label": labels[i], "probability": float(row[i])} for i in best],
            "file": upload.name,
        }
        for upload, row, best, choice in zip(files, probabilities, ranks, chosen, strict=True)
    ]
    return json_response(
        {"model": served.name, "version": served.version, "predictions": predictions}
    )


InvertQuery = Annotated[
    Invert, Query(description="As for :classify: invert the gray levels of digits and glyphs.")
]


@router.post(
    "/v1/images/{model}:explain",
    response_model=ImageExplainReply,
    responses=problem_responses(400, 404, 413, 415, 422, 429, 503, 504),
    openapi_extra={"requestBody": REQUEST_BODY},
    summary="Explain image predictions: Grad-CAM and activations",
    description="The same uploads as :classify. Per image: the predicted class, the Grad-CAM "
    "heat map of that class at the last convolution block (`gradcam.heatmap`, in [0, 1]) and "
    "drawn over the image (`gradcam.png`, base64 PNG), and every convolution block's feature "
    "maps as a PNG grid (`activations[].png`; their numbers too with `values=true`). Needs a "
    "model version exported with explanation signatures (training/explain.py): `mnist`, "
    "`fashion_mnist`, `greek_symbols`, `chest_xray`, `simpsons`.",
)
async def explain_images_endpoint(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    explainer: ExplainerDep,
    model: ModelPath,
    invert: InvertQuery = Invert.auto,
    values: Annotated[bool, Query(description="Include the activations' numbers.")] = False,
    version: VersionQuery = None,
) -> Response:
    served = task_model(repository, model, IMAGE_CLASSIFICATION, version)
    require_signatures(served)
    files = await _read_images(request, settings)
    check_count(len(files), settings.max_explain_instances, "files", "images")
    pixels = await _fit_images(request, served, files, invert, settings)
    explained = await explainer.run(explain_images, served, pixels, values)
    for upload, item in zip(files, explained, strict=True):
        item["file"] = upload.name
    return json_response(
        {"model": served.name, "version": served.version, "explanations": explained}
    )


async def _fit_images(
    request: Request, served: ServedModel, files: list[Upload], invert: Invert, settings: Settings
) -> np.ndarray:
    """The uploads decoded and fitted to the model's input, as one batch. Small files
    (``inline_image_bytes`` in all) have their headers read here, and small pictures
    (``inline_image_pixels`` in all) are fitted here, at once; anything larger is read, decoded
    and fitted in the app's image pool (``image_workers`` threads: memory stays bounded however
    many uploads arrive; ``app.image_pool``), inside the request's deadline."""
    spec = ImageSpec.from_metadata(served.metadata)
    max_pixels = settings.max_image_pixels
    opened: list[bytes] | list[Image] = [upload.data for upload in files]
    if sum(len(upload.data) for upload in files) <= settings.inline_image_bytes:
        opened = [
            _labelled(open_image, upload, upload.data, max_pixels=max_pixels) for upload in files
        ]
        if sum(image.width * image.height for image in opened) <= settings.inline_image_pixels:
            return _prepare_all(files, opened, spec, invert, max_pixels)
    pool: ImagePool = request.app.state.image_pool
    return await pool.run(
        _prepare_all,
        files,
        opened,
        spec,
        invert,
        max_pixels,
        model=served.name,
        deadline=deadline_after(served.batcher.timeout_s),
        state=request.scope.get("state"),
    )


def _prepare_all(
    files: list[Upload],
    opened: list[bytes] | list[Image],
    spec: ImageSpec,
    invert: Invert,
    max_pixels: int,
) -> np.ndarray:
    """Decode and fit every image, from its file's bytes or its opened header (CPU work,
    bounded by the pixel limits)."""
    return np.stack(
        [
            _labelled(prepare_image, upload, image, spec, invert=invert, max_pixels=max_pixels)
            for upload, image in zip(files, opened, strict=True)
        ]
    )


def _labelled(step: Callable[..., T], upload: Upload, *args: Any, **kwargs: Any) -> T:
    """``step`` on one upload; its errors name the upload's field and file."""
    try:
        return step(*args, name=upload.label, **kwargs)
    except ServingError as exc:
        exc.field = exc.field or upload.field
        raise


async def _read_images(request: Request, settings: Settings) -> list[Upload]:
    """Every image in the body, in order, with the request's limits checked."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _read_multipart(request, settings)
    if media_type == "application/json" or media_type.endswith("+json"):
        return await _read_json(request, settings)
    raise UnsupportedMediaTypeError(
        f"content type '{media_type or 'none'}' is not accepted; send multipart/form-data with "
        'files in field \'files\', or application/json {"images": [{"b64": ...}]}',
        field="body",
    )


async def _read_multipart(request: Request, settings: Settings) -> list[Upload]:
    body = await request.body()
    parts = await off_loop_if_large(
        request,
        len(body),
        parse_form,
        body,
        request.headers["content-type"],
        settings.max_images_per_request,
        MAX_FORM_FIELDS,
    )
    uploads = [part for part in parts if part.name == "files"]
    if not uploads:
        raise InvalidInputError(
            "no files: send the images in the multipart field 'files' (received fields: "
            f"{sorted({part.name for part in parts}) or 'none'})",
            field="files",
        )
    files = []
    for i, upload in enumerate(uploads):
        field = f"files[{i}]"
        if upload.filename is None:
            raise InvalidInputError(f"{field} is text, not a file", field=field)
        name = upload.filename or field
        content_type = upload.content_type.lower()
        if content_type and not content_type.startswith(IMAGE_MEDIA_TYPES):
            raise UnsupportedMediaTypeError(
                f"file '{name}' has content type '{content_type}', not an image",
                field=field,
                file=name,
            )
        if len(upload.data) > settings.max_file_bytes:
            raise PayloadTooLargeError(
                f"file '{name}' has {len(upload.data)} bytes, more than the limit of "
                f"{settings.max_file_bytes}",
                field=field,
                file=name,
            )
        files.append(Upload(upload.filename or None, field, upload.data))
    return files


async def _read_json(request: Request, settings: Settings) -> list[Upload]:
    raw = await request.body()
    try:
        body = await off_loop_if_large(request, len(raw), ImagesRequest.model_validate_json, raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    check_count(len(body.images), settings.max_images_per_request, "images", "images")
    files = []
    for i, image in enumerate(body.images):
        field = f"images[{i}].b64"
        name = image.name or f"images[{i}]"
        text = image.b64.strip()
        if text.startswith("data:"):
            text = text.partition(",")[2]
        if len(text) > (settings.max_file_bytes + 2) // 3 * 4 + 4:
            raise PayloadTooLargeError(
                f"image '{name}' is larger than the limit of {settings.max_file_bytes} bytes",
                field=field,
                file=name,
            )
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInputError(
                f"image '{name}' is not valid base64 ({exc})", field=field, file=name
            ) from None
        files.append(Upload(image.name, f"images[{i}]", data))
    return files
