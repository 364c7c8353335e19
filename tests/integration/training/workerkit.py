"""A warm worker on the real embedded S3 (``stack``), and a recorder of the events it forwards.

The conftests of tests/integration/training and tests/integration/training/hf import these fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from sparktrainer.settings import Settings
from sparktrainer.training.worker.warm import WarmWorker


@pytest_asyncio.fixture(scope="module")
async def worker(stack: Settings) -> AsyncIterator[WarmWorker]:
    """One warm worker for a test module (progress every 0.1 s so tests see steps)."""
    warm = WarmWorker(stack.model_copy(update={"progress_every_s": 0.1}))
    await warm.start()
    yield warm
    await warm.stop()


class Recorder:
    """An async on_event that keeps every event, with an optional reaction."""

    def __init__(self, react: Callable[[Any], None] | None = None) -> None:
        self.events: list[Any] = []
        self.react = react

    async def __call__(self, event: Any) -> None:
        self.events.append(event)
        if self.react is not None:
            self.react(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def recorder() -> Callable[..., Recorder]:
    return Recorder
