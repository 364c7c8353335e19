"""LoRA target checks the validator runs without torch (sparktrainer.contracts.hf_modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sparktrainer.contracts.hf_modules import (
    FAMILIES,
    check_lora_targets,
    default_targets,
    model_type_of,
)
from tests import guide


def _guide_lora_targets() -> list[str]:
    """target_modules of the guide's LoRA example, read from the guide itself."""
    for example in guide.examples() if guide.GUIDE.exists() else _shared_examples():
        lora = example.get("config", {}).get("lora")
        if lora:
            return list(lora["target_modules"])
    raise AssertionError("the guide has no LoRA example")


def _shared_examples() -> list[dict]:
    import json
    import re

    text = guide.SHARED_GUIDE.read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    out = []
    for block in blocks:
        lines = [ln for ln in block.splitlines() if not ln.startswith(("POST ", "GET "))]
        out.append(json.loads("\n".join(lines)))
    return out


def test_guide_lora_example_on_bert_says_what_to_use() -> None:
    targets = _guide_lora_targets()
    assert targets == ["q_proj", "v_proj"]
    errors, warnings = check_lora_targets("bert", None, targets)
    assert errors == [
        "lora.target_modules ['q_proj', 'v_proj'] not found in bert model; its attention "
        "projections are named ['query', 'key', 'value'] — use e.g. ['query', 'value'] or "
        "leave target_modules out to use the default"
    ]
    assert warnings == []


def test_guide_lora_example_fits_llama() -> None:
    assert check_lora_targets("llama", None, _guide_lora_targets()) == ([], [])


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        ("bert", ["query", "value"]),
        ("roberta", ["query", "value"]),
        ("gpt2", ["c_attn"]),
        ("llama", ["q_proj", "v_proj"]),
        ("mistral", ["q_proj", "v_proj"]),
        ("distilbert", ["q_lin", "v_lin"]),
        ("t5", ["q", "v"]),
        ("gpt_neox", ["query_key_value"]),
        ("xlm_roberta", ["query", "value"]),
        ("no-such-family", None),
        (None, None),
    ],
)
def test_default_targets_per_family(model_type: str | None, expected: list[str] | None) -> None:
    assert default_targets(model_type) == expected


def test_every_family_default_is_among_its_modules() -> None:
    for name, fam in FAMILIES.items():
        assert set(fam.default) <= set(fam.modules), name


def test_partial_miss_names_only_the_missing_targets() -> None:
    errors, _ = check_lora_targets("gpt2", None, ["c_attn", "q_proj"])
    assert len(errors) == 1 and errors[0].startswith("lora.target_modules ['q_proj'] not found")
    assert "['c_attn']" in errors[0]


def test_real_module_names_win_over_the_family_table() -> None:
    names = {
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.value",
        "classifier",
    }
    assert check_lora_targets("bert", names, ["query"]) == ([], [])
    assert check_lora_targets("bert", names, ["attention.self.query"]) == ([], [])
    errors, _ = check_lora_targets("bert", names, ["key"])
    assert errors and "['key'] not found in bert model" in errors[0]


def test_unknown_family_suggests_from_scanned_names() -> None:
    names = {"model.layers.0.attn.Wqkv", "model.layers.0.attn.out", "model.layers.0.mlp.fc1"}
    errors, _ = check_lora_targets("mystery", names, ["q_proj"])
    assert errors == [
        "lora.target_modules ['q_proj'] not found in mystery model; its attention projections "
        "are named ['Wqkv'] — use e.g. ['Wqkv'] or leave target_modules out to use the default"
    ]


def test_uninspectable_model_only_warns() -> None:
    errors, warnings = check_lora_targets(None, None, ["q_proj"])
    assert errors == [] and len(warnings) == 1 and "could not be checked" in warnings[0]
    errors, warnings = check_lora_targets("mystery", None, None)
    assert errors == [] and "scanning module names" in warnings[0]
    assert check_lora_targets("bert", None, None) == ([], [])


def test_empty_target_list_is_an_error() -> None:
    errors, _ = check_lora_targets("bert", None, [])
    assert errors == ["lora.target_modules is empty: name at least one module or leave it out"]


def test_model_type_of_config() -> None:
    assert model_type_of({"model_type": "bert", "hidden_size": 32}) == "bert"
    assert model_type_of({}) is None
    assert model_type_of({"model_type": 3}) is None


def test_module_does_not_import_torch() -> None:
    code = (
        "import sys, sparktrainer.contracts.hf_modules as m; "
        "m.check_lora_targets('bert', None, ['q_proj']); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_model_type_for_each_source(tmp_path: Path) -> None:
    from sparktrainer.contracts.hf_modules import model_type_for
    from sparktrainer.contracts.jobspec import HuggingFaceConfig

    registered = HuggingFaceConfig(model_source="model_id", model_id="m1")
    assert model_type_for(registered, {"model_type": "gpt2"}) == "gpt2"
    assert model_type_for(registered, None) is None
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert (
        model_type_for(HuggingFaceConfig(model_source="local", model_path=str(tmp_path)), None)
        == "llama"
    )
    missing = HuggingFaceConfig(model_source="local", model_path=str(tmp_path / "nope"))
    assert model_type_for(missing, None) is None
    for name, expected in [
        ("bert-base-uncased", "bert"),
        ("meta-llama/Llama-3.2-1B", "llama"),
        ("sentence-transformers/all-MiniLM-L6-v2", None),
    ]:
        assert model_type_for(HuggingFaceConfig(model_name=name), None) == expected
