"""The HTTP API: a publisher of job events and a reader of the registry read model.

Writes (submit, cancel) are events on Kafka; reads come from the SQLite read model the
registry projector keeps, either in this process (``with_projector=True``) or in a separate
projector writing the same file. Bad requests get a 4xx whose body says what to fix. Each
resource has its module under ``api/routes/``; what they share is ``api/state.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparktrainer.api.auth import TokenGuard
from sparktrainer.api.door import DoorGuard
from sparktrainer.api.routes import (
    api_docs,
    compare,
    dashboard,
    health,
    job_logs,
    job_metrics,
    jobs,
    metrics,
    model_files,
    models,
    queue,
    registered_models,
    sweeps,
    usage,
)
from sparktrainer.api.state import ApiError, ApiState
from sparktrainer.registry.ids import AmbiguousId
from sparktrainer.settings import Settings

# One module per resource under api/routes/: a new resource is a module and an entry here.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    compare.router,
    jobs.router,
    models.router,
    model_files.router,
    registered_models.router,
    job_metrics.router,
    job_logs.router,
    metrics.router,
    queue.router,
    sweeps.router,
    usage.router,
    dashboard.router,
    api_docs.router,
)


def _error(
    status: int, detail: str, errors: list[str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    content: dict[str, Any] = {"detail": detail}
    if errors:
        content["errors"] = errors
    return JSONResponse(content, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.detail, e.errors, e.headers)

    @app.exception_handler(AmbiguousId)
    async def ambiguous_id(_: Request, e: AmbiguousId) -> JSONResponse:
        return _error(409, str(e), e.matches)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        return _error(422, "Invalid request parameters: " + "; ".join(errors)[:500], errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), headers=getattr(e, "headers", None))


def create_app(
    settings: Settings, *, with_projector: bool = False, db_path: Path | str | None = None
) -> FastAPI:
    """The FastAPI app; ``with_projector`` folds the log into the read model in this process."""
    state = ApiState(settings, db_path, with_projector)
    app = FastAPI(
        title="SparkTrainer",
        description="Submit training jobs, follow them, and browse the models they register.",
        version="1",
        lifespan=state.lifespan,
        docs_url=None,  # routes/api_docs.py serves /docs from local files
        redoc_url=None,
    )
    app.state.sparktrainer = state
    app.add_middleware(
        TokenGuard, credentials=state.credentials, open_reads=settings.api_open_reads
    )
    app.add_middleware(DoorGuard, settings=settings)  # outside the token: shape before identity
    _install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    api_docs.install(app)
    app.middleware("http")(state.metrics.measure)
    return app
