"""The checked-in schemas/ must equal what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from sparktrainer.contracts.schemas import render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    expected = render()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run `sparktrainer schemas` and commit the result"
    stale = [name for name, text in expected.items() if on_disk[name] != text]
    assert not stale, f"stale schemas (run `sparktrainer schemas`): {stale}"


def test_asyncapi_names_every_topic_and_event() -> None:
    doc = json.loads(render()["asyncapi.json"])
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert "sparktrainer.jobs.submitted" in addresses and len(addresses) == 21
    assert len(doc["components"]["messages"]) == 25
    changes = doc["channels"]["models-changes"]["messages"]
    assert set(changes) == {
        "model-alias-set-v1",
        "model-alias-removed-v1",
        "model-archived-v1",
        "model-deleted-v1",
        "model-purged-v1",
    }
