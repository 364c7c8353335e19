"""Every event of the contract, by CloudEvents type: what the envelope decodes and schemas list.

``events.py`` holds the job events and ``model.registered``; ``model_events.py`` the registry's
changes. This module only puts them side by side (so neither imports the other's).
"""

from __future__ import annotations

from pydantic import BaseModel

from sparktrainer.contracts.events import EVENT_TYPES, OWNED_EVENTS, JobSubmitted
from sparktrainer.contracts.model_events import MODEL_EVENTS

CONTRACT_EVENTS: tuple[type[BaseModel], ...] = (JobSubmitted, *OWNED_EVENTS, *MODEL_EVENTS)
EVENT_CLASSES: dict[str, type[BaseModel]] = {
    **EVENT_TYPES,
    **{cls.ce_type: cls for cls in MODEL_EVENTS},
}
