"""The Kafka ACLs in infra/ are the table of contracts/topics.py, and the checks catch a drift.

No network, no Docker: these read infra/docker-compose.yml and infra/k8s/*.yaml as files, the
way infra/check.py does.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparktrainer.contracts import topics as t

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _load(name: str) -> Any:
    sys.path.insert(0, str(INFRA))
    spec = importlib.util.spec_from_file_location(f"infra_{name}", INFRA / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


acls = _load("acls")


def _writers_in_strimzi() -> dict[str, set[str]]:
    """topic -> the users the rendered KafkaUsers let write it."""
    out: dict[str, set[str]] = {}
    for doc in yaml.safe_load_all(acls.render_strimzi()):
        role = doc["metadata"]["name"].removeprefix("sparktrainer-kafka-")
        for acl in doc["spec"]["authorization"]["acls"]:
            if acl["resource"]["type"] == "topic" and "Write" in acl["operations"]:
                out.setdefault(acl["resource"]["name"], set()).add(role)
    return out


def _compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]


def _k8s() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_table_covers_every_topic() -> None:
    assert set(t.WRITERS) == set(t.ALL_TOPICS) == set(t.READERS)
    assert all(t.WRITERS[x] and t.READERS[x] for x in t.ALL_TOPICS)


def test_committed_acl_files_are_the_table() -> None:
    assert all(ok for ok, _ in acls.mismatches()), acls.mismatches()


def test_only_the_validator_writes_verdicts_only_trainers_register() -> None:
    writers = _writers_in_strimzi()
    for topic in (*t.VALIDATED_TOPICS, t.JOBS_REJECTED):
        assert writers[topic] == {"validator"}, topic
    # the sweep controller writes for its own sweep jobs (a sweep is a job: start, end, model)
    assert writers[t.MODELS_REGISTERED] == {"trainer", "sweep-controller"}
    assert writers[t.JOBS_LIFECYCLE] == {"trainer", "sweep-controller"}
    script = acls.render_script()
    assert "User:api --operation Read --operation Write"
    lifecycle_writes = [
        line
        for line in script.splitlines()
        if "Write" in line and line.endswith(f"--topic {t.JOBS_LIFECYCLE}")
    ]
    assert {line.split()[2] for line in lifecycle_writes} == {
        "User:trainer",
        "User:sweep-controller",
    }


def test_a_table_change_not_regenerated_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(t.WRITERS, t.JOBS_VALIDATED, ("validator", "api"))
    assert not any(ok for ok, _ in acls.mismatches())
    assert "api" in _writers_in_strimzi()[t.JOBS_VALIDATED]


def test_compose_services_sign_in_as_their_own_user() -> None:
    services = _compose()
    results = acls.compose_users(services)
    assert results and all(ok for ok, _ in results), results
    stolen = copy.deepcopy(services)
    stolen["api"]["environment"]["SPARKTRAINER_KAFKA_SASL_USERNAME"] = "trainer"
    assert not all(ok for ok, _ in acls.compose_users(stolen))
    forgotten = copy.deepcopy(services)
    del forgotten["kafka-init"]["environment"]["KAFKA_USER_SWEEP_CONTROLLER_PASSWORD"]
    assert not all(ok for ok, _ in acls.compose_users(forgotten))


def test_k8s_workloads_read_their_own_users_secret() -> None:
    docs = _k8s()
    results = acls.k8s_users(docs)
    assert len(results) >= 8 and all(ok for ok, _ in results), results
    validator = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("validator")
    )
    env = acls.pools.container(validator)["env"]
    password = next(e for e in env if e["name"] == "SPARKTRAINER_KAFKA_SASL_PASSWORD")
    password["valueFrom"]["secretKeyRef"]["name"] = "sparktrainer-kafka-trainer"
    assert not all(ok for ok, _ in acls.k8s_users(docs))


def test_each_tenants_users_write_only_their_own_door(tmp_path: Path) -> None:
    from sparktrainer.contracts.tenants import load_tenants
    from tests.tenants_kit import write_two_teams

    tenants = load_tenants(write_two_teams(tmp_path).path)
    docs = list(yaml.safe_load_all(acls.render_tenant_strimzi(tenants)))
    grants = {d["metadata"]["name"]: d["spec"]["authorization"]["acls"] for d in docs}
    assert grants == {
        f"{team}-ci": [{"resource": {"type": "topic", "name": f"sparktrainer.tenants.{team}.",
                                     "patternType": "prefix"},
                        "operations": ["Write", "Describe"]}]
        for team in ("vision", "speech")
    }  # fmt: skip
    for team in ("vision", "speech"):  # a door lies under its own prefix and no other's
        door = t.submission_topic(team)
        assert [u for u, _, a in acls.tenant_users(tenants) if door.startswith(a[0][1])] == [
            f"{team}-ci"
        ]
    script = acls.render_tenant_script(tenants)
    assert "User:vision-ci --operation Write --operation Describe --resource-pattern-type " \
           "prefixed --topic sparktrainer.tenants.vision." in script  # fmt: skip
    # the trusted roles: api and operator write every door, the validator reads (and makes) them
    prefixed = {r: a for r in acls.roles() for a in acls.acls_of(r) if a[2] == "prefix"
                and a[1] == t.TENANT_TOPIC_PREFIX}  # fmt: skip
    assert {r for r, a in prefixed.items() if "Write" in a[3]} == {"api", "operator"}
    assert prefixed["validator"][3] == ("Read", "Create", "Describe")


def test_a_kafka_user_name_strimzi_cannot_hold_is_refused(tmp_path: Path) -> None:
    from sparktrainer.contracts.tenants import Tenants

    bad = Tenants.model_validate({"tenants": [{"name": "vision", "kafka_users": ["Vision CI"]}]})
    with pytest.raises(ValueError, match="kafka_users 'Vision CI' of tenant 'vision'"):
        acls.render_tenant_strimzi(bad)
