"""Which modules LoRA can target in a transformers model family, without importing torch.

The validator calls :func:`check_lora_targets` when it can read a model's ``config.json``
(a local path, or a registered model's config in S3); the Hugging Face recipe runs the same
check on the loaded model's real module names before peft sees the config, because peft's
own error for a missing target is hard to act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparktrainer.contracts.jobspec import HuggingFaceConfig


@dataclass(frozen=True)
class Family:
    """The linear layers of one model family: attention projections, the rest, the default."""

    attention: tuple[str, ...]
    other: tuple[str, ...]
    default: tuple[str, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        """Every targetable module name of the family."""
        return self.attention + self.other


_BERT = Family(("query", "key", "value"), ("dense",), ("query", "value"))
_LLAMA = Family(
    ("q_proj", "k_proj", "v_proj", "o_proj"),
    ("gate_proj", "up_proj", "down_proj"),
    ("q_proj", "v_proj"),
)
_FUSED_QKV = Family(
    ("query_key_value",), ("dense", "dense_h_to_4h", "dense_4h_to_h"), ("query_key_value",)
)
_OPT = Family(("q_proj", "k_proj", "v_proj", "out_proj"), ("fc1", "fc2"), ("q_proj", "v_proj"))
_T5 = Family(("q", "k", "v", "o"), ("wi", "wi_0", "wi_1", "wo"), ("q", "v"))

FAMILIES: dict[str, Family] = {
    **dict.fromkeys(
        (
            "bert",
            "roberta",
            "xlm-roberta",
            "camembert",
            "electra",
            "ernie",
            "albert",
            "megatron-bert",
        ),
        _BERT,
    ),
    "distilbert": Family(
        ("q_lin", "k_lin", "v_lin", "out_lin"), ("lin1", "lin2"), ("q_lin", "v_lin")
    ),
    "deberta": Family(("in_proj",), ("dense",), ("in_proj",)),
    "deberta-v2": Family(
        ("query_proj", "key_proj", "value_proj"), ("dense",), ("query_proj", "value_proj")
    ),
    "mpnet": Family(("q", "k", "v", "o"), ("dense",), ("q", "v")),
    "gpt2": Family(("c_attn",), ("c_proj", "c_fc"), ("c_attn",)),
    **dict.fromkeys(("gpt_neox", "bloom", "falcon"), _FUSED_QKV),
    "gptj": Family(
        ("q_proj", "k_proj", "v_proj", "out_proj"), ("fc_in", "fc_out"), ("q_proj", "v_proj")
    ),
    "gpt_neo": Family(
        ("q_proj", "k_proj", "v_proj", "out_proj"), ("c_fc", "c_proj"), ("q_proj", "v_proj")
    ),
    **dict.fromkeys(("opt", "bart", "mbart", "marian", "pegasus", "whisper"), _OPT),
    **dict.fromkeys(
        (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "olmo",
            "olmo2",
            "smollm3",
            "granite",
            "cohere",
            "starcoder2",
        ),
        _LLAMA,
    ),
    "phi": Family(("q_proj", "k_proj", "v_proj", "dense"), ("fc1", "fc2"), ("q_proj", "v_proj")),
    "phi3": Family(("qkv_proj", "o_proj"), ("gate_up_proj", "down_proj"), ("qkv_proj",)),
    **dict.fromkeys(("t5", "mt5", "umt5"), _T5),
}

# Names that mark an attention projection when the family is unknown (scanned module names).
ATTENTION_HINTS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "query",
    "key",
    "value",
    "c_attn",
    "qkv_proj",
    "query_key_value",
    "Wqkv",
    "qkv",
    "q_lin",
    "v_lin",
    "query_proj",
    "value_proj",
    "in_proj",
    "q",
    "v",
)


def family(model_type: str | None) -> Family | None:
    """The known family of a config's ``model_type`` (case and '_'/'-' insensitive)."""
    if not model_type:
        return None
    key = model_type.lower()
    return (
        FAMILIES.get(key)
        or FAMILIES.get(key.replace("_", "-"))
        or FAMILIES.get(key.replace("-", "_"))
    )


def default_targets(model_type: str | None) -> list[str] | None:
    """The LoRA target modules used when a job names none; None for an unknown family."""
    fam = family(model_type)
    return list(fam.default) if fam else None


def model_type_of(config: dict[str, Any]) -> str | None:
    """The ``model_type`` of a parsed ``config.json``, if it says."""
    value = config.get("model_type")
    return value if isinstance(value, str) and value else None


def model_type_for(config: HuggingFaceConfig, hf_config: dict[str, Any] | None) -> str | None:
    """The job's model family, when it can be known before the model loads.

    From the registered model's ``config.json`` (``hf_config``), a local ``model_path`` this
    process can read, or a hub name that starts with a family (``bert-base-uncased``,
    ``meta-llama/Llama-3.2-1B``, ``gpt2-medium``); otherwise None (nothing to check).
    """
    if hf_config is not None:
        return model_type_of(hf_config)
    if config.model_source == "local" and config.model_path:
        try:
            parsed = json.loads((Path(config.model_path) / "config.json").read_text())
        except (OSError, ValueError):
            return None
        return model_type_of(parsed) if isinstance(parsed, dict) else None
    if config.model_source == "huggingface" and config.model_name:
        return family_from_hub_name(config.model_name)
    return None


def family_from_hub_name(name: str) -> str | None:
    """A family named by the first word of a hub repo's name, e.g. 'roberta' in 'roberta-base'."""
    first = re.split(r"[-_.]", name.rsplit("/", 1)[-1].lower(), maxsplit=1)[0]
    return first if first in FAMILIES else None


def _matches(target: str, names: set[str]) -> bool:
    # peft matches a target against a module's full name or any dotted suffix of it.
    return any(n == target or n.endswith("." + target) or target.endswith("." + n) for n in names)


def check_lora_targets(
    model_type: str | None,
    module_names: set[str] | None,
    target_modules: list[str] | None,
) -> tuple[list[str], list[str]]:
    """Check LoRA targets against a model's module names (or its family's); (errors, warnings).

    ``module_names`` are the model's real module names (full dotted or last segments) when it
    is loaded; otherwise the family of ``model_type`` supplies them. With neither, nothing can
    be checked and a warning says so.
    """
    fam = family(model_type)
    what = f"{model_type} model" if model_type else "the model"
    if target_modules is None:
        if fam is None and module_names is None:
            return [], [
                f"lora.target_modules not set and no default is known for {what}; "
                "the trainer will pick its attention projections by scanning module names"
            ]
        return [], []
    if not target_modules:
        return ["lora.target_modules is empty: name at least one module or leave it out"], []
    names = module_names if module_names is not None else (set(fam.modules) if fam else None)
    if names is None:
        return [], [
            f"lora.target_modules {target_modules} could not be checked: {what} cannot be "
            "inspected before it loads; the trainer checks them before training"
        ]
    missing = [t for t in target_modules if not _matches(t, names)]
    if not missing:
        return [], []
    return [_missing_message(missing, what, fam, names)], []


def _missing_message(missing: list[str], what: str, fam: Family | None, names: set[str]) -> str:
    if fam is not None:
        attention, suggestion = list(fam.attention), list(fam.default)
    else:
        leaves = {n.rsplit(".", 1)[-1] for n in names}
        attention = sorted(h for h in ATTENTION_HINTS if h in leaves)
        suggestion = attention[:2]
    if attention:
        hint = (
            f"its attention projections are named {attention} — use e.g. {suggestion} "
            "or leave target_modules out to use the default"
        )
    else:
        hint = "leave target_modules out to let the trainer pick the attention projections"
    return f"lora.target_modules {missing} not found in {what}; {hint}"
