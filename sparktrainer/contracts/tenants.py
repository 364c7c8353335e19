"""Tenants: the teams that share one runner, what each may ask for and take, and its credentials.

A tenant is established by a credential a publisher cannot forge with its own: on Kafka, the
submission topic it writes (``sparktrainer.tenants.{name}.jobs.submitted``, which prefixed ACLs
give only that tenant's Kafka users, see ``topics.submission_topic``); on HTTP, an API token
whose sha256 the file lists. Records without one (the plain ``sparktrainer.jobs.submitted``,
the single ``SPARKTRAINER_API_TOKEN``) belong to the ``default`` tenant, which always exists.

The whole configuration is one file named by ``SPARKTRAINER_TENANTS_FILE`` (JSON, or TOML when
the name ends in ``.toml``); with no file there is one tenant, ``default``, with no quota and
every priority, which is how the embedded stack ran before tenants existed. Plain pydantic, no
Kafka: the validator, the trainer's picker, the API and infra/acls.py all read this model.

What each field means, for the scheduler (quotas, fair share) and the doors:

- ``weight``: the tenant's fair share against the others (dominant-resource share / weight).
- ``cohort``: tenants of one cohort lend each other idle nominal quota (as Kueue's cohorts);
  None: it neither lends nor borrows.
- ``quotas[class]``: per resource class (contracts/scheduling.py ``CLASS_NAMES``), the nominal
  running jobs and GPUs, and how much beyond them it may borrow; a class not listed, or a None
  field, is unlimited.
- ``max_priority``: the highest priority its jobs may ask for (a higher one is rejected).
- ``kafka_users``: the Kafka (SASL) user names that may write its submission topic.
- ``token_sha256``: the hex sha256 of each of its API tokens (the tokens themselves are never
  stored; ``token_digest`` computes one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from sparktrainer.contracts.scheduling import CLASS_NAMES, Priority

DEFAULT_TENANT = "default"
# One topic-name segment and one ACL prefix: no dots, so no tenant's prefix covers another's.
_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def check_tenant_name(value: str) -> str:
    """A tenant name is one lowercase topic segment: letters, digits, '_' and '-'."""
    if not _TENANT_RE.fullmatch(value):
        raise ValueError(
            f"'{value[:80]}' is not a tenant name: 1-63 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit (it becomes part of a topic name)"
        )
    return value


def _check_digest(value: str) -> str:
    if not _SHA256_RE.fullmatch(value):
        raise ValueError(
            "token_sha256 holds hex sha256 digests of tokens (64 lowercase hex digits), never "
            "the tokens: `python -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1]"
            ".encode()).hexdigest())' TOKEN`"
        )
    return value


TenantName = Annotated[str, AfterValidator(check_tenant_name)]
TokenDigest = Annotated[str, AfterValidator(_check_digest)]
Count = Annotated[StrictInt, Field(ge=0)]


def token_digest(token: str) -> str:
    """The hex sha256 of an API token, as the tenants file stores it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ClassQuota(BaseModel):
    """A tenant's share of one resource class: nominal quota, borrowing limit (None: no cap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running_jobs: Count | None = Field(default=None, description="Jobs it may run at once")
    gpus: Count | None = Field(default=None, description="GPUs its running jobs may hold")
    borrow_jobs: Count | None = Field(
        default=None, description="Running jobs beyond running_jobs it may borrow in its cohort"
    )
    borrow_gpus: Count | None = Field(
        default=None, description="GPUs beyond gpus it may borrow in its cohort"
    )


class Tenant(BaseModel):
    """One team: its fair-share weight, quotas, priority ceiling and credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TenantName
    weight: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1e6)] = 1
    cohort: TenantName | None = None
    quotas: dict[str, ClassQuota] = Field(default_factory=dict)
    max_priority: Priority = "normal"
    kafka_users: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] = ()
    token_sha256: tuple[TokenDigest, ...] = ()
    description: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _known_classes(self) -> Tenant:
        unknown = sorted(set(self.quotas) - set(CLASS_NAMES))
        if unknown:
            raise ValueError(
                f"tenant '{self.name}': quotas name unknown resource classes {unknown} "
                f"(the classes are {list(CLASS_NAMES)})"
            )
        return self

    def quota(self, resource_class: str) -> ClassQuota:
        """Its quota of one class (unlimited when the file lists none)."""
        return self.quotas.get(resource_class, _UNLIMITED)


_UNLIMITED = ClassQuota()
# Without a file the one tenant may ask anything, as every submitter could before tenants.
IMPLICIT_DEFAULT = Tenant(name=DEFAULT_TENANT, max_priority="high")


class Tenants(BaseModel):
    """A tenants file: every tenant, ``default`` always among them (added when not listed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: tuple[Tenant, ...] = (IMPLICIT_DEFAULT,)

    @model_validator(mode="after")
    def _unique_and_default(self) -> Tenants:
        names = [t.name for t in self.tenants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tenants listed twice: {twice}")
        _no_shared_credentials(self.tenants)
        if DEFAULT_TENANT not in names:
            object.__setattr__(self, "tenants", (Tenant(name=DEFAULT_TENANT), *self.tenants))
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Every tenant's name, ``default`` first when it was added."""
        return tuple(t.name for t in self.tenants)

    def get(self, name: str) -> Tenant | None:
        """The tenant called ``name`` (None when it is not configured)."""
        return next((t for t in self.tenants if t.name == name), None)

    @property
    def default(self) -> Tenant:
        """The tenant of records no credential establishes."""
        tenant = self.get(DEFAULT_TENANT)
        assert tenant is not None  # the validator above adds it
        return tenant

    def by_token(self, token: str) -> Tenant | None:
        """The tenant one of whose tokens this is (compared in constant time), or None."""
        digest = token_digest(token)
        for tenant in self.tenants:
            if any(hmac.compare_digest(digest, d) for d in tenant.token_sha256):
                return tenant
        return None

    def has_tokens(self) -> bool:
        """Whether any tenant has an API token (then the HTTP door asks for one)."""
        return any(t.token_sha256 for t in self.tenants)


def _no_shared_credentials(tenants: tuple[Tenant, ...]) -> None:
    """One Kafka user or token identifies one tenant, or it would establish two."""
    for field in ("kafka_users", "token_sha256"):
        seen: dict[str, str] = {}
        for tenant in tenants:
            for credential in getattr(tenant, field):
                if credential in seen and seen[credential] != tenant.name:
                    shown = credential if field == "kafka_users" else credential[:12] + "..."
                    raise ValueError(
                        f"{field} '{shown}' is listed by tenants '{seen[credential]}' and "
                        f"'{tenant.name}': a credential establishes one tenant"
                    )
                seen[credential] = tenant.name


def load_tenants(path: Path | None) -> Tenants:
    """The tenants file at ``path`` (JSON, or TOML by suffix); None: one implicit default tenant.

    Raises ValueError naming the file and every problem when it cannot be read or is invalid.
    """
    if path is None:
        return Tenants()
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return Tenants.model_validate(data)
    except (OSError, UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError) as e:
        detail = e.errors(include_url=False) if isinstance(e, ValidationError) else e
        raise ValueError(f"SPARKTRAINER_TENANTS_FILE {path}: {detail}") from e
