"""Tiny transformers models built offline, and readers of a job's events (HF tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparktrainer.contracts.events import JobProgress, JobStarted
from sparktrainer.training.hf.data import SYNTHETIC_WORDS

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EOS = "<|endoftext|>"


def save_tiny_bert(folder: Path, *, dropout: float = 0.1) -> Path:
    """A 2-layer, 32-wide BERT (no task head) and a WordPiece tokenizer of the synthetic words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = SPECIALS + list(SYNTHETIC_WORDS)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def _word_tokenizer(folder: Path, vocab: list[str], **specials: str) -> None:
    """A word-level fast tokenizer of ``vocab`` saved to ``folder`` ("<unk>" for unknowns)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", **specials).save_pretrained(
        folder
    )


def save_tiny_gpt2(folder: Path) -> Path:
    """A 2-layer, 32-wide GPT-2 and a word-level tokenizer with an eos token and no pad."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = [EOS, "<unk>", *SYNTHETIC_WORDS]
    _word_tokenizer(folder, vocab, eos_token=EOS, bos_token=EOS)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def save_tiny_llama(folder: Path) -> Path:
    """A 2-layer, 32-wide Llama (q_proj/k_proj/v_proj/o_proj attention) built from a config."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    vocab = ["<s>", "</s>", "<pad>", "<unk>", *SYNTHETIC_WORDS]
    _word_tokenizer(folder, vocab, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    LlamaModel(config).save_pretrained(folder)
    return folder


def epoch_ends(events: list[Any]) -> list[JobProgress]:
    """The progress events that close an epoch (they carry validation metrics)."""
    return [e for e in events if isinstance(e, JobProgress) and e.val_loss is not None]


def started(events: list[Any]) -> JobStarted:
    """The job's JobStarted event."""
    return next(e for e in events if isinstance(e, JobStarted))
