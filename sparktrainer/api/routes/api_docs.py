"""The API's reference: ``/docs`` (Swagger UI) and ``/openapi.json``, usable offline.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so it is blank where the CDN cannot be
reached. This page loads the copy of Swagger UI 5 (it reads FastAPI's OpenAPI 3.1) that the
``fastapi-offline`` package ships, mounted at ``/docs/assets``, and our ``static/docs.js``. The
schema names the bearer token, so Swagger's "Authorize" asks for it; the page and the schema
hold no data, so they stay open (api/auth.py).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from sparktrainer.api.routes.dashboard import STATIC_DIR

DOCS_PATH, ASSETS_PATH, SCHEMA_PATH = "/docs", "/docs/assets", "/openapi.json"
SWAGGER_UI_DIR = str(files("fastapi_offline").joinpath("static"))  # its bundle, css, favicon
router = APIRouter(tags=["dashboard"])


@router.get(DOCS_PATH, include_in_schema=False)
def api_docs() -> FileResponse:
    """Swagger UI over /openapi.json."""
    return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve Swagger UI's files and name the bearer token in the app's OpenAPI schema."""
    app.mount(ASSETS_PATH, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            found = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            found.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            found["security"] = [{"bearer": []}]
            app.openapi_schema = found
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
