"""Service settings, read from the environment (prefix ``SERVING_``) or a ``.env`` file.

Complex values are JSON, e.g.
``SERVING_MODEL_OVERRIDES='{"mnist": {"max_batch_size": 64, "max_wait_ms": 5}}'``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    RootModel,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchingConfig(BaseModel):
    """The batching knobs of one model, declared once: their defaults are the global settings
    (``SERVING_MAX_BATCH_SIZE``, ... : :class:`Settings` inherits these fields), and a model's
    overrides (:class:`BatchingOverride`) are checked by the same rules."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: PositiveInt = Field(
        default=32, description="Instances in one model call (dynamic batching)."
    )
    # 0, as Triton's dynamic batcher by default: a batch takes what is queued when the model is
    # free, and requests that arrive during a model call make the next batch. A wait only adds
    # latency when few requests come (measured: one client at a time, 3 ms made each request
    # 4-5x slower) and did not raise throughput under load (64 connections: the same).
    max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="How long the oldest queued request waits for others before its batch runs "
        "(0: the batch takes what is queued when the model is free).",
    )
    max_queue_size: PositiveInt = Field(
        default=1024,
        description="Requests waiting per model version before 429 (a request is also refused "
        "when the queued work would outlast its deadline).",
    )
    request_timeout_ms: PositiveFloat = Field(
        default=5000.0,
        description="Deadline per request from its arrival: reading, parsing, queueing, inference "
        "(not the time spent waiting for body bytes the client has not sent yet).",
    )

    def merged(self, override: BatchingOverride | None) -> BatchingConfig:
        if override is None or not override.root:
            return self
        return BatchingConfig.model_validate({**self.model_dump(), **override.root})


class BatchingOverride(RootModel[dict[str, Any]]):
    """Some of :class:`BatchingConfig`'s fields, for one model (``model_overrides``, a
    ``config.json``'s ``batching``): unset ones keep the global values; unknown names and bad
    values are refused by BatchingConfig's own rules."""

    @model_validator(mode="after")
    def _check(self) -> BatchingOverride:
        BatchingConfig.model_validate(self.root)  # the fields not given take valid defaults
        return self


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Checked by app.model_config.VersionPolicy (which imports this module).
VersionPolicyDefault = dict[str, Any]


class Settings(BaseSettings, BatchingConfig):
    model_config = SettingsConfigDict(
        env_prefix="SERVING_", env_file=".env", extra="ignore", populate_by_name=True
    )

    @field_validator("models_dir", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    # ---- repository
    models_dir: str = Field(
        default="models",
        validation_alias=AliasChoices("SERVING_MODELS_DIR", "STORAGE_URI", "models_dir"),
        description="The model repository: a folder of <name>/<version>/ SavedModels, or an "
        "fsspec URL (s3://bucket/prefix, gs://...) mirrored to model_cache_dir. KServe's "
        "STORAGE_URI is read when SERVING_MODELS_DIR is not set.",
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "tf-model-serving",
        description="Local mirror of a remote repository.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for a remote repository (JSON), e.g. "
        '{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}.',
    )
    repository_poll_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Re-scan the repository this often (0: never): new versions are loaded and "
        "warmed in the background, removed or out-of-policy versions drained and unloaded, "
        "changed ones reloaded.",
    )
    version_policy: VersionPolicyDefault = Field(
        default_factory=lambda: {"all": {}},
        description='Versions served per model: {"latest": N}, {"all": {}} or '
        '{"specific": [...]} (a model\'s config.json overrides it).',
    )
    unload_grace_seconds: float = Field(
        default=2.0,
        ge=0,
        description="A version leaving the policy stops taking new requests at once, and is "
        "unloaded once its queue is empty and this long has passed (requests that already "
        "chose it finish).",
    )
    model_control: bool = Field(
        default=False,
        description="Triton's POST /v2/repository/models/{name}/load and /unload answer (else "
        "403, as Triton refuses them outside its explicit mode): anyone who reaches them can "
        "stop every model, so turn them on where only operators do, or with api_keys. "
        "Repository polling changes models without them.",
    )
    model_control_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="With several workers: how long a Triton API load or unload waits for every "
        "worker to apply it; past it, 504 (the change stands, late workers apply it).",
    )
    model_names: list[str] = Field(
        default_factory=list, description="Serve only these models (empty: every folder)."
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    warmup: bool = True
    intra_op_threads: int = Field(
        default_factory=lambda: max(1, available_cores() - 1),
        ge=0,
        description="TensorFlow threads inside one op (0: TensorFlow's default, one per core). "
        "Default: the cores less one, which is left to the event loop (on 2 cores: as fast "
        "with batching, and overload and short deadlines handled far better).",
    )
    inter_op_threads: int = Field(
        default=0, ge=0, description="TensorFlow ops run in parallel (0: TensorFlow's default)."
    )
    load_in_background: bool = Field(
        default=False,
        description="Accept requests while models load (readiness 503 until warm) instead of "
        "finishing start-up first.",
    )
    readiness: Literal["all_versions", "each_model"] = Field(
        default="all_versions",
        description="When /v2/health/ready is 200: every discovered version loaded "
        "(all_versions, like Triton's --strict-readiness), or at least one version of each "
        "model (each_model).",
    )

    # ---- HTTP server (python -m app; see app/server.py)
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: PositiveInt = Field(
        default=1,
        description="Worker processes (python -m app) accepting on one socket, each with its own "
        "event loop and copy of the models: the HTTP side scales past one core.",
    )
    max_connections: PositiveInt = Field(
        default=1024, description="Open connections; one more is answered 503 and closed."
    )
    max_header_bytes: PositiveInt = Field(
        default=16 * 1024, description="Request line plus headers; larger: 431 and closed."
    )
    min_body_chunk_bytes: int = Field(
        default=1024,
        ge=0,
        description="A chunked request body may have 64 chunks and one more per this many "
        "bytes of its data (each chunk costs the event loop a callback however small it is); "
        "more: 400 and the connection ends. 0: no check.",
    )
    max_pipelined_requests: PositiveInt = Field(
        default=32,
        description="Requests one connection may send ahead of its answers (HTTP/1.1 "
        "pipelining) beyond the one in progress; the last one taken is answered with "
        "Connection: close and the rest are not read (the client resends them elsewhere).",
    )
    header_timeout_s: PositiveFloat = Field(
        default=10.0,
        description="Time to send a request's line and headers (and for a new connection to "
        "start one); slower: 408 and closed.",
    )
    body_timeout_s: PositiveFloat = Field(
        default=30.0,
        description="Time to send a request's whole body, plus 1 s for every "
        "body_min_rate_bytes received; slower: 408.",
    )
    body_min_rate_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        description="A body still coming after body_timeout_s gets one more second for every "
        "this many bytes received (Apache's mod_reqtimeout MinRate): an upload that keeps "
        "16 KiB/s is never cut off, a trickle still is. 0: body_timeout_s bounds the whole body.",
    )
    keep_alive_timeout_s: PositiveFloat = Field(
        default=5.0, description="An idle keep-alive connection is closed after this."
    )
    send_timeout_s: PositiveFloat = Field(
        default=30.0,
        description="python -m app: a response its client stops reading (more than the socket "
        "and the transport buffer) gets this long without progress, then the connection is "
        "aborted (nginx's send_timeout).",
    )
    drain_seconds: float = Field(
        default=5.0,
        ge=0,
        description="On SIGTERM: readiness answers 503 at once and requests are still served "
        "this long (so a load balancer takes the replica out), then no new connection.",
    )
    graceful_timeout_seconds: PositiveFloat = Field(
        default=30.0,
        description="On SIGTERM the process exits within this, drain included, whatever the "
        "clients do: requests still running then are cancelled.",
    )
    log_level: str = "info"
    access_log: bool = Field(
        default=False, description="Keep uvicorn's per-request access log (off: it costs CPU)."
    )
    metrics_max_age_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="/metrics is rendered at most once per this many seconds, and scrapes within "
        "it get the same text: rendering takes the event loop about 7 ms with ten models, so a "
        "flood of scrapes would otherwise hold every request back. 0: rendered on every scrape.",
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry request spans, metrics and logs (they need an "
        "OpenTelemetry SDK configured). Off: /metrics (Prometheus) only, and no per-request "
        "OpenTelemetry lookups.",
    )

    # ---- dynamic batching: the global defaults are BatchingConfig's fields (inherited)
    model_overrides: dict[str, BatchingOverride] = Field(default_factory=dict)

    refusal_delay_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="python -m app: a 429 decided at a request's headers is sent at once the "
        "first time; each further refusal in a row on the same connection is held this long, "
        "doubled each time up to refusal_max_delay_ms, and nothing more is read from that "
        "client meanwhile: clients that resend at once would otherwise spend the server's CPU "
        "on refusals. 0: never held.",
    )
    refusal_max_delay_ms: float = Field(
        default=1000.0,
        ge=0,
        le=10000,
        description="The longest a 429 is held for a connection refused again and again "
        "(see refusal_delay_ms); an admitted request resets it.",
    )
    max_inflight_requests: PositiveInt = Field(
        default=768,
        description="Requests being handled at once (health probes and /metrics excepted; one "
        "waiting for body bytes its client has not sent yet is not counted meanwhile); one more "
        "is answered 503 + Retry-After at once.",
    )

    # ---- payload limits
    max_body_bytes: PositiveInt = Field(
        default=20 * 1024 * 1024,
        description="Request body, after gzip/deflate decoding; larger: 413.",
    )
    max_body_memory_bytes: PositiveInt = Field(
        # Peak memory grows by about 3.5x this under many large bodies at once (parsing):
        # 64 MiB -> +218 MB per worker, which a 3 GiB pod of two workers with every model has.
        default=64 * 1024 * 1024,
        description="Request bodies held in memory at once, over every request in progress (as "
        "received and decoded); a request that would pass it: 503 + Retry-After (before its "
        "body is read when its Content-Length says so). A request alone always goes on.",
    )
    inline_parse_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Bodies up to this size are parsed on the event loop; larger ones in a "
        "worker thread, so that one big request never stalls the others. python -m app: a "
        "larger (or chunked) inference request is admitted at its headers in its model's bulk "
        "lane (its own adaptive cap, and judged as at least a batch of work).",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=1000, description="Nesting of arrays/objects in a JSON body."
    )
    max_tensor_rank: int = Field(
        default=8, ge=1, le=32, description="Dimensions of one input tensor."
    )
    max_instances_per_request: PositiveInt = Field(
        default=1024,
        description="Instances (batch rows) in one request; more: 413 before any tensor is "
        "made. A request above max_batch_size runs in max_batch_size slices.",
    )
    max_images_per_request: PositiveInt = 16
    max_file_bytes: PositiveInt = 10 * 1024 * 1024
    max_image_pixels: PositiveInt = Field(
        default=16_777_216,
        description="Pixels of one uploaded image (4096 x 4096); decoding a picture this size "
        "peaks at about 4 bytes per pixel.",
    )
    image_workers: PositiveInt = Field(
        default=2, description="Threads that decode and fit uploaded images (bounds memory)."
    )
    inline_image_pixels: int = Field(
        default=4096,
        ge=0,
        description="Requests whose images have this many pixels in all (64 x 64) or fewer, and "
        "inline_image_bytes, are decoded and fitted on the event loop (0.1 ms for a 28x28 "
        "digit, at most ~0.5 ms), larger ones in the image_workers pool; the size is read from "
        "each file's header first.",
    )
    inline_image_bytes: int = Field(
        default=1024,
        ge=0,
        description="Requests whose files have more bytes than this in all are read (header "
        "included) in the image_workers pool, never on the event loop: a hostile header "
        "(thousands of JPEG markers or GIF comments) costs Pillow about 0.3 ms per KB to read. "
        "python -m app: an upload whose Content-Length is over this is checked against the "
        "pool's queue at its headers (429 when it would be late).",
    )
    max_text_chars: PositiveInt = 10_000
    max_items_per_request: PositiveInt = 256
    max_history_length: PositiveInt = 1_000

    # ---- explanations (:explain): heavier than predictions, kept apart from them
    explain_concurrency: PositiveInt = Field(
        default=1,
        description="Explanation calls run at once, in their own threads (never in a model's "
        "batcher), so that they cannot take the predictions' turn.",
    )
    explain_max_waiting: int = Field(
        default=8, ge=0, description="Explanation requests waiting for a slot; one more: 429."
    )
    explain_timeout_ms: PositiveFloat = Field(
        default=30_000.0,
        description="Deadline of an explanation request from its arrival (504 past it): "
        "explanations run apart from the predictions, whose request_timeout_ms is too short "
        "for a full request of large images (16 X-rays: ~6.5 s on 2 vCPUs).",
    )
    max_explain_instances: PositiveInt = Field(
        default=16, description="Images, texts or rows in one explanation request."
    )
    max_explain_tokens: PositiveInt = Field(
        default=200, description="Tokens of one text to explain (each costs one model input)."
    )

    # ---- response compression, access control, browsers
    gzip_min_bytes: int = Field(
        default=1024,
        ge=0,
        description="Responses at least this large are gzip-compressed for clients that accept "
        "it (0: never).",
    )
    gzip_level: int = Field(
        default=1,
        ge=1,
        le=9,
        description="gzip level of compressed responses: 1 (nginx's default) is 4-7 times "
        "cheaper in CPU than 6 for replies 3-7 % larger.",
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="When set, inference and admin endpoints need 'Authorization: Bearer "
        "<key>' with one of these keys (JSON list). Health probes stay open.",
    )
    auth_metrics: bool = Field(default=False, description="/metrics needs a key too.")
    auth_docs: bool = Field(default=False, description="/docs, /redoc, /openapi.json too.")
    cors_allow_origins: list[str] = Field(
        default_factory=list,
        description='Origins browsers may call from (JSON list; ["*"] for any); empty: no CORS.',
    )

    def batching_for(
        self, model_name: str, model_config: BatchingOverride | None = None
    ) -> BatchingConfig:
        """The global batching values with the model's overrides applied: ``model_overrides``,
        then the batching block of the model's ``config.json`` (``model_config``)."""
        defaults = BatchingConfig.model_validate(
            {name: getattr(self, name) for name in BatchingConfig.model_fields}
        )
        return defaults.merged(self.model_overrides.get(model_name)).merged(model_config)


@lru_cache
def get_settings() -> Settings:
    return Settings()
