"""Model references (``ID``, ``NAME:VERSION``, ``NAME@ALIAS``) and what one resolves to.

The grammar is in ``jobspec.py`` (the configs use it); this is the parsed form, the answer
of a lookup, and the :class:`ModelDirectory` protocol that the validation checks call and the
registry implements (``registry/directory.py``), so validation never imports the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from sparktrainer.contracts.events import ParentRef
from sparktrainer.contracts.jobspec import split_ref
from sparktrainer.errors import SparkTrainerError

Status = Literal["live", "archived", "deleted"]


class UnknownModelError(SparkTrainerError):
    """A reference names no model in the registry (unknown name, version or alias)."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model id, or a name with a version or an alias."""

    text: str
    model_id: str | None = None
    name: str | None = None
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``ID``, ``NAME:VERSION`` or ``NAME@ALIAS`` (ValueError says what is wrong)."""
        first, version, alias = split_ref(text)
        if version is None and alias is None:
            return cls(text, model_id=first)
        return cls(text, name=first, version=version, alias=alias)

    @property
    def is_id(self) -> bool:
        """True for a plain model id (no registry lookup needed to know which model)."""
        return self.model_id is not None


@dataclass(frozen=True)
class FoundModel:
    """The model a reference names, and where it stands in the registry."""

    model_id: str
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    status: Status | None = None  # None: the registry does not know the id (S3 may)
    retired_by: str | None = None
    retired_at: str | None = None
    reason: str | None = None

    def parent_ref(self, ref: str) -> ParentRef:
        """What a validated fine-tune records about its parent."""
        return ParentRef(
            ref=ref, model_id=self.model_id, name=self.name, version=self.version, alias=self.alias
        )

    def described(self) -> str:
        """``'ID'`` or ``'ID' (NAME version N)``, for messages."""
        named = f" ({self.name} version {self.version})" if self.name else ""
        return f"'{self.model_id}'{named}"

    def deleted_message(self) -> str:
        """Why a deleted model cannot be used, with who deleted it and when."""
        by = f" by {self.retired_by}" if self.retired_by else ""
        why = f": {self.reason}" if self.reason else ""
        return f"Model {self.described()} was deleted{by} at {self.retired_at}{why}"


class ModelDirectory(Protocol):
    """Resolves references against the registry (raises UnknownModelError when it cannot)."""

    def resolve(self, ref: ModelRef) -> FoundModel:
        """The model ``ref`` names; a plain id the registry does not know has status None."""

    def name_owner(self, name: str) -> str | None:
        """The tenant that owns a model name (contracts/ownership.py); None: nobody yet."""
