"""Events that always fit the broker's message limit: long lists and texts shortened, and said so.

An answer that is too large is refused by the broker for good (``MessageSizeTooLarge`` is not
retriable), so the job it answers would never hear back. Lists of messages are capped ("... and
N more") and texts cut where they are built; :func:`fit` is the last guard, applied to every
event as it is encoded.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from sparktrainer.settings import Limits

E = TypeVar("E", bound=BaseModel)
MESSAGE_BYTES: int = Limits.model_fields["message_bytes"].default
# Room for the CloudEvents headers, the key and Kafka's record and batch overhead.
HEADROOM_BYTES = 8 * 1024
MIN_CHARS = 16


def cut(text: str, chars: int) -> str:
    """``text`` in at most about ``chars`` characters, saying how much was left out."""
    if len(text) <= chars:
        return text
    return f"{text[:chars]}... ({len(text) - chars} more characters)"


def capped(messages: list[str], items: int = 50, chars: int = 1000) -> list[str]:
    """Distinct messages in order (linear), at most ``items`` of them, each cut to ``chars``."""
    distinct = list(dict.fromkeys(messages))
    kept = [cut(m, chars) for m in distinct[:items]]
    if len(distinct) > items:
        kept.append(f"... and {len(distinct) - items} more")
    return kept


def fit(event: E, max_bytes: int = MESSAGE_BYTES) -> E:
    """``event`` with its text and list-of-text fields shortened until its JSON fits.

    Raises ValueError when it cannot fit (its other fields alone are too large).
    """
    budget = max(1024, max_bytes - HEADROOM_BYTES)
    items, chars = 64, 4000
    while _size(event) > budget:
        if chars < MIN_CHARS:
            raise ValueError(
                f"a {type(event).__name__} of {_size(event)} bytes cannot be made to fit the "
                f"message limit of {max_bytes} bytes"
            )
        event = event.model_copy(update=_shortened(event, items, chars))
        items, chars = max(1, items // 2), chars // 2
    return event


def _size(event: BaseModel) -> int:
    return len(event.model_dump_json().encode())


def _shortened(event: BaseModel, items: int, chars: int) -> dict[str, Any]:
    update: dict[str, Any] = {}
    for name, value in event:
        if isinstance(value, str) and len(value) > chars:
            update[name] = cut(value, chars)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            update[name] = capped(value, items, chars)
    return update
