"""The web dashboard: ``/`` serves its page; its script, styles and uPlot come from /static.

Plain files shipped in the package (no CDN, no build step); the page reads the same API as
everyone else, sending the token a user typed in as a bearer token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard's one page (it routes by the URL's #fragment)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
