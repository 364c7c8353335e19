"""The client's transport over the HTTP API: no Kafka or S3 credentials, one bearer token.

Every answer's status becomes a typed exception here (``client/errors.py``); every body a
typed view (``client/types.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from sparktrainer.client.errors import Unreachable, error_for
from sparktrainer.client.types import (
    JobState,
    JobVerdict,
    Listing,
    Model,
    ModelFile,
    Submitted,
    TenantUsage,
)

MAX_ERROR_CHARS = 2000  # of an error answer's body: enough for the API's message and errors


class HttpTransport:
    """One request per call, on one connection pool (``close`` it, or use the client's ``with``)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _answer(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise Unreachable(f"API at {self.http.base_url} unreachable: {e!r}") from e
        if r.status_code >= 400:
            try:
                answer: object = r.json()
            except ValueError:
                answer = r.text[:MAX_ERROR_CHARS]
            raise error_for(r.status_code, answer)
        return r

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        return (await self._answer(method, path, **kw)).json()

    async def submit(self, body: dict[str, Any]) -> Submitted:
        return Submitted.model_validate(await self._json("POST", "/api/jobs", json=body))

    async def validate(self, body: dict[str, Any]) -> JobVerdict:
        return JobVerdict.model_validate(await self._json("POST", "/api/jobs/validate", json=body))

    async def job(self, job_id: str) -> JobState:
        return JobState.model_validate(await self._json("GET", f"/api/jobs/{_seg(job_id)}"))

    async def cancel(self, job_id: str, reason: str) -> None:
        await self._json("POST", f"/api/jobs/{_seg(job_id)}/cancel", json={"reason": reason})

    async def jobs(self, status: str | None, limit: int, offset: int) -> Listing:
        params = _given(status=status, limit=limit, offset=offset)
        found = await self._json("GET", "/api/jobs", params=params)
        return Listing(items=found["jobs"], total=found["total"])

    async def curves(self, job_id: str) -> dict[str, Any]:
        return dict(await self._json("GET", f"/api/jobs/{_seg(job_id)}/metrics"))

    async def models(self, filters: dict[str, Any]) -> Listing:
        found = await self._json("GET", "/api/models", params=_given(**filters))
        return Listing(items=found["models"], total=found["total"])

    async def model(self, ref: str) -> Model:
        return Model.model_validate(await self._json("GET", f"/api/models/{_seg(ref)}"))

    async def lineage(self, ref: str) -> dict[str, Any]:
        return dict(await self._json("GET", f"/api/models/{_seg(ref)}/lineage"))

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        path = f"/api/registered-models/{_seg(name)}/aliases/{_seg(alias)}"
        await self._json("PUT", path, json={"version": version})

    async def files(self, ref: str) -> list[ModelFile]:
        found = await self._json("GET", f"/api/models/{_seg(ref)}/files")
        return [ModelFile.model_validate(f) for f in found["files"]]

    async def read_file(self, ref: str, path: str) -> bytes:
        return (await self._answer("GET", f"/api/models/{_seg(ref)}/files/{quote(path)}")).content

    async def queue(self) -> dict[str, Any]:
        return dict(await self._json("GET", "/api/queue"))

    async def usage(self, tenant: str | None, days: int) -> list[TenantUsage]:
        if tenant is not None:
            path = f"/api/tenants/{_seg(tenant)}/usage"
            return [
                TenantUsage.model_validate(await self._json("GET", path, params={"days": days}))
            ]
        found = await self._json("GET", "/api/usage", params={"days": days})
        return [TenantUsage.model_validate(t) for t in found["tenants"]]

    async def logs(self, job_id: str, attempt: int | None) -> str:
        path = f"/api/jobs/{_seg(job_id)}/logs"
        return (await self._answer("GET", path, params=_given(attempt=attempt))).text


def _seg(text: str) -> str:
    """One path segment: an id or ref never reaches another route ('/', '?', '#' quoted)."""
    return quote(text, safe=":@")


def _given(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
