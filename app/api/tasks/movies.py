"""``POST /v1/movies:predict``: will a film earn more than its budget? Model ``movie_profit``.

A movie is a row of IMDB 5000's ``movie_metadata.csv`` by its column names; every field may be
null or left out (the model's default for the column fills it), columns the model does not use
are accepted and ignored, and ``gross`` (which decides the label) is refused.
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

MODEL_NAME = "movie_profit"
router = APIRouter(route_class=TaskRoute, tags=["tasks"])

Count = Annotated[float | None, Field(default=None, ge=0, le=1e13, allow_inf_nan=False)]
Name = Annotated[str | None, Field(default=None, max_length=500)]
ContentRating = Literal[
    "G",
    "PG",
    "PG-13",
    "R",
    "NC-17",
    "X",
    "M",
    "GP",
    "Approved",
    "Passed",
    "Not Rated",
    "Unrated",
    "TV-Y",
    "TV-Y7",
    "TV-G",
    "TV-PG",
    "TV-14",
    "TV-MA",
]

# A row of the CSV (gross left out).
EXAMPLE_MOVIE = {
    "color": "Color",
    "director_name": "David Gordon Green",
    "num_critic_for_reviews": 125,
    "duration": 107,
    "director_facebook_likes": 234,
    "actor_3_facebook_likes": 660,
    "actor_2_name": "Zoe Kazan",
    "actor_1_facebook_likes": 1000,
    "genres": "Comedy|Drama",
    "actor_1_name": "Dominic Flores",
    "movie_title": "Our Brand Is Crisis",
    "num_voted_users": 11476,
    "cast_total_facebook_likes": 3944,
    "actor_3_name": "Scoot McNairy",
    "facenumber_in_poster": 2,
    "plot_keywords": "bolivia|box office flop|inspired by documentary|political campaign|"
    "political consultant",
    "movie_imdb_link": "http://www.imdb.com/title/tt1018765/?ref_=fn_tt_tt_1",
    "num_user_for_reviews": 50,
    "language": "English",
    "country": "USA",
    "content_rating": "R",
    "budget": 28000000,
    "title_year": 2015,
    "actor_2_facebook_likes": 962,
    "imdb_score": 6.1,
    "aspect_ratio": 1.85,
    "movie_facebook_likes": 0,
}


class Movie(RequestObject):
    """One film, by ``movie_metadata.csv``'s column names; all fields optional."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_MOVIE]})

    color: Literal["Color", "Black and White"] | None = None
    director_name: Name
    num_critic_for_reviews: Count
    duration: Annotated[
        float | None,
        Field(default=None, ge=0, le=10_000, allow_inf_nan=False, description="Minutes."),
    ]
    director_facebook_likes: Count
    actor_3_facebook_likes: Count
    actor_2_name: Name
    actor_1_facebook_likes: Count
    genres: Annotated[
        str | None,
        Field(default=None, max_length=500, description="`|`-separated, e.g. `Comedy|Drama`."),
    ]
    actor_1_name: Name
    movie_title: Name
    num_voted_users: Count
    cast_total_facebook_likes: Count
    actor_3_name: Name
    facenumber_in_poster: Count
    plot_keywords: Annotated[str | None, Field(default=None, max_length=2000)]
    movie_imdb_link: Name
    num_user_for_reviews: Count
    language: Name
    country: Name
    content_rating: ContentRating | None = None
    budget: Annotated[
        float | None,
        Field(
            default=None,
            ge=0,
            le=1e13,
            allow_inf_nan=False,
            description="In the film's own currency, like the CSV.",
        ),
    ]
    title_year: Annotated[float | None, Field(default=None, ge=1870, le=2100, allow_inf_nan=False)]
    actor_2_facebook_likes: Count
    imdb_score: Annotated[float | None, Field(default=None, ge=0, le=10, allow_inf_nan=False)]
    aspect_ratio: Annotated[float | None, Field(default=None, ge=0, le=100, allow_inf_nan=False)]
    movie_facebook_likes: Count
    # Decides the label (gross > budget); declared only to refuse it (hidden from the schema).
    gross: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator("color", "content_rating", mode="before")
    @classmethod
    def strip_text(cls, value: Any) -> Any:
        """The CSV writes `" Black and White"` with a leading space."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("gross", mode="before")
    @classmethod
    def refuse_label(cls, value: Any) -> Any:
        raise PydanticCustomError(
            "label_not_accepted",
            "'gross' decides the label the model predicts; leave it out of the request",
        )


class MoviesRequest(RequestObject):
    movies: list[Movie] = Field(min_length=1, examples=[[EXAMPLE_MOVIE]])


@router.post(
    "/v1/movies:predict",
    response_model=BinaryReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Will a film be profitable (gross above budget)?",
    description="One prediction per movie, in order: `label` is `profitable` or "
    "`not_profitable`, `score` is P(profitable). Null or missing fields get the model's "
    "defaults; fields the model does not use are ignored.",
)
async def predict_movies(
    body: MoviesRequest,
    repository: RepositoryDep,
    settings: SettingsDep,
    version: VersionQuery = None,
) -> Response:
    return await classify_rows(
        repository,
        settings,
        model_name=MODEL_NAME,
        rows=[m.model_dump() for m in body.movies],
        field="movies",
        version=version,
    )


@router.post(
    "/v1/movies:explain",
    response_model=RowExplainReply,
    responses=problem_responses(*COMMON_PROBLEMS),
    summary="Why a film is likely to be profitable",
    description="Per movie: the prediction and each column's contribution to P(profitable) "
    "(occlusion: the column at its default), largest first.",
)
async def explain_movies(
    body: MoviesRequest,
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
            rows=[m.model_dump() for m in body.movies],
            field="movies",
            version=version,
        )
    )
