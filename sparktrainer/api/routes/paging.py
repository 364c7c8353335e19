"""Query parameters every listing takes.

Reads answer with JSONResponse directly: the rows are plain JSON already, and FastAPI's
generic encoder costs more than the query on a page of 1,000 models.
"""

from __future__ import annotations

from fastapi import Query

from sparktrainer.registry.rows import MAX_PAGE

Limit = Query(50, ge=1, le=MAX_PAGE, description="Page size")
# SQLite takes 64-bit integers: a larger offset would be a 500, not an empty page.
MAX_OFFSET = 2**31
Offset = Query(0, ge=0, le=MAX_OFFSET, description="Items to skip")
