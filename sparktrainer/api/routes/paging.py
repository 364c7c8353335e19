"""Query parameters every listing takes.

Reads answer with JSONResponse directly: the rows are plain JSON already, and FastAPI's
generic encoder costs more than the query on a page of 1,000 models.
"""

from __future__ import annotations

from fastapi import Query

from sparktrainer.registry.rows import MAX_PAGE

Limit = Query(50, ge=1, le=MAX_PAGE, description="Page size")
Offset = Query(0, ge=0, description="Items to skip")
