"""What the API's handlers share: settings, the read model, the producer, the projector.

Each route module reads it through :func:`state_of`; ``app.py`` creates it per app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request

from sparktrainer.api.auth import MESSAGE, ApiCredentials, tenant_of
from sparktrainer.api.metrics import ApiMetrics
from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.bus.supervise import Faults, supervise
from sparktrainer.contracts.caps import check_shape
from sparktrainer.contracts.envelope import OutRecord, encode, strict_json
from sparktrainer.errors import ConfigurationError
from sparktrainer.registry.changes import Asker, ChangeRefused, resolved
from sparktrainer.registry.models import get_model
from sparktrainer.registry.runner import Projector
from sparktrainer.registry.store import RegistryStore
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.verdict import store_for

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/api"
RESTART_BACKOFF_MAX_S = 30.0
T = TypeVar("T")


class ApiError(Exception):
    """A request the API refuses: status code, a readable message, and optional details."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers


class ApiState:
    """What the handlers share: settings, the read model, the producer, the projector."""

    def __init__(
        self, settings: Settings, db_path: Path | str | None, with_projector: bool
    ) -> None:
        self.settings = settings
        self.credentials = ApiCredentials(settings)
        self.db_path = db_path or settings.registry_db_path
        self.registry = RegistryStore(self.db_path)
        self.faults = Faults()  # what the in-process projector survived (bus/supervise.py)
        self.metrics = ApiMetrics(self.db_path, self.faults)
        self.with_projector = with_projector
        self.projector: Projector | None = None
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._object_store: ObjectStore | None = None
        self._stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Start the in-process projector (if asked); stop it and the producer at shutdown."""
        task = asyncio.create_task(self._follow()) if self.with_projector else None
        try:
            yield
        finally:
            self._stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._producer is not None:
                await self._producer.stop()

    async def _follow(self) -> None:
        """Keep the projector running; a broker outage (or a bug) restarts it after a backoff,
        never fatal to the API; it returns once the API stops."""
        await supervise("projector", self._project, self.faults,
                        backoff_max_s=RESTART_BACKOFF_MAX_S)  # fmt: skip

    async def _project(self) -> None:
        self.projector = Projector(self.settings, self.db_path)
        try:
            await self.projector.start()
            await self.projector.run(self._stop)
        finally:
            await self.projector.close()

    async def publish(self, record: OutRecord) -> None:
        """Send one event and wait for the broker; 503 when Kafka cannot be reached."""
        try:
            async with self._producer_lock:
                if self._producer is None:
                    producer = make_producer(self.settings)
                    await producer.start()
                    self._producer = producer
            await send(self._producer, record)
        except ConfigurationError as e:
            raise ApiError(503, str(e)) from e
        except KafkaError as e:
            raise ApiError(
                503,
                f"Kafka is unavailable ({type(e).__name__}); nothing was published, retry later",
            ) from e

    def object_store(self) -> ObjectStore | None:
        """The object store the validation checks read (None without an S3 endpoint)."""
        if self._object_store is None:
            self._object_store = store_for(self.settings)
        return self._object_store


def state_of(request: Request) -> ApiState:
    """The state of the app serving this request."""
    return request.app.state.sparktrainer  # type: ignore[no-any-return]


def existing(found: T | None, kind: str, ident: str) -> T:
    """``found``, or a 404 for an id the read model does not know (yet)."""
    if found is None:
        raise ApiError(
            404,
            f"No {kind} '{ident[:128]}' in the registry (the read model follows the log: "
            "a job submitted a moment ago may not be there yet)",
        )
    return found


def model_of(request: Request, ref: str) -> dict[str, Any]:
    """The model a reference (ID, NAME:VERSION, NAME@ALIAS) names in the read model, or 4xx."""
    state = state_of(request)
    try:
        found = state.registry.read(resolved, ref)
    except ChangeRefused as e:
        raise ApiError(e.status, str(e)) from e
    return existing(state.registry.read(get_model, found.model_id), "model", ref)


def change_fields(request: Request, body: dict[str, Any]) -> tuple[Asker, str | None]:
    """Who asks for a registry change (the token's tenant, and the body's free-text ``actor``)
    and its ``reason``. A ``by`` is refused: who asked is what the token establishes."""
    if "by" in body:
        raise ApiError(
            422,
            "'by' is not taken from a request: a change is stamped with the tenant your token "
            "establishes; say who you are in 'actor' (free text, shown beside it)",
        )
    actor, reason = body.get("actor"), body.get("reason")
    if actor is not None and (not isinstance(actor, str) or not 0 < len(actor) <= 128):
        raise ApiError(422, "'actor' must be a string of 1 to 128 characters")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1024):
        raise ApiError(422, "'reason' must be a string of at most 1024 characters")
    return Asker(tenant_of(request), actor), reason


async def change_request(request: Request) -> tuple[Asker, str | None]:
    """Who asks and why, for a DELETE or POST change: from its JSON body, else its query."""
    body = await json_object(request, optional=True)
    names = ("by", "actor", "reason")
    query = {k: request.query_params[k] for k in names if k in request.query_params}
    return change_fields(request, {**query, **body})


async def publish_change(request: Request, plan: Callable[..., Any], *args: Any) -> Any:
    """Plan a registry change on the read model (4xx when refused), publish its event."""
    state = state_of(request)
    try:
        event = state.registry.read(plan, *args)
    except ChangeRefused as e:
        raise ApiError(e.status, str(e)) from e
    await state.publish(encode(event, SOURCE))
    return event


async def json_object(request: Request, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object: 413 when too large, 400 when not JSON, 422 when not an object.

    The size is counted while the body streams in (chunked bodies too), so an endless body is
    cut off at the limit; a document nested or sized beyond the submission caps is a 422.
    """
    limits = state_of(request).settings.limits
    raw = await _capped_body(request, limits.submission_bytes)
    if optional and not raw.strip():
        return {}
    try:
        body = strict_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ApiError(400, f"Request body is not valid JSON: {e}"[:300]) from e
    if not isinstance(body, dict):
        raise ApiError(
            422,
            f"Request body must be a JSON object, got {type(body).__name__} "
            '(a job looks like {"type": ..., "framework": ..., "config": {...}})',
        )
    shape = check_shape(body, limits)
    if shape:
        raise ApiError(422, "Request body is out of shape: " + "; ".join(shape)[:500], shape)
    return body


async def _capped_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body is {declared} bytes, above the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_token(request: Request) -> None:
    """The token even where reads are open (``api_open_reads``): a model's files are its
    weights, so downloads keep needing it. Every other route is guarded by ``auth.TokenGuard``."""
    credentials = state_of(request).credentials
    if credentials.tenant(request.headers.get("authorization", "")) is None:
        raise ApiError(401, MESSAGE, headers={"WWW-Authenticate": "Bearer"})
