"""Text data for the Hugging Face recipe: synthetic or JSONL/CSV from S3, tokenized once.

Texts are tokenized up front (no padding) and batches are padded to their longest row, so a
step costs one small collate and no tokenizer call. Batch order is a seeded permutation per
epoch: a resumed job sees the same batches and can skip the ones it already trained on.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

import torch

from sparktrainer.contracts.jobspec import DataSpec
from sparktrainer.errors import DataError
from sparktrainer.training.sources import DataObjects

Task = Literal["classification", "generation"]

_SENTIMENT = (
    ("good", "great", "excellent", "happy", "love", "wonderful", "nice", "best"),
    ("bad", "terrible", "awful", "sad", "hate", "horrible", "poor", "worst"),
)
_TOPICS = (
    ("ball", "team", "goal", "match", "coach", "score"),
    ("bread", "soup", "cheese", "apple", "dinner", "cook"),
    ("song", "guitar", "drum", "band", "music", "piano"),
    ("rain", "snow", "wind", "cloud", "storm", "sun"),
    ("atom", "cell", "energy", "lab", "theory", "data"),
    ("train", "plane", "road", "hotel", "trip", "map"),
    ("money", "bank", "price", "market", "cash", "trade"),
    ("dog", "cat", "horse", "bird", "fish", "cow"),
)
_FILLER = (
    "the",
    "a",
    "this",
    "it",
    "was",
    "is",
    "very",
    "and",
    "of",
    "day",
    "time",
    "thing",
    "i",
    "we",
)
_NOUNS = ("cat", "dog", "bird", "man", "woman", "child")
_VERBS = ("sees", "likes", "finds", "follows")
_ADJECTIVES = ("big", "small", "red", "old")

# Every word synthetic data can contain: tests build a tiny tokenizer vocabulary from it.
SYNTHETIC_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [w for group in _SENTIMENT + _TOPICS for w in group]
        + list(_FILLER + _NOUNS + _VERBS + _ADJECTIVES + (".",))
    )
)


@dataclass
class TextData:
    """Train and validation texts; labels are class indices (None for generation)."""

    train_texts: list[str]
    train_labels: list[int] | None
    val_texts: list[str]
    val_labels: list[int] | None
    label_names: list[str] | None = None


def _class_words(c: int) -> tuple[str, ...]:
    groups = _SENTIMENT + _TOPICS
    if c < len(groups):
        return groups[c]
    return tuple(f"{word}{c}" for word in groups[c % len(groups)])


def synthetic_texts(
    task: Task, num_classes: int, n: int, seed: int
) -> tuple[list[str], list[int] | None]:
    """A seeded, learnable text task: class keywords among filler words, or templated sentences."""
    rng = random.Random(seed)
    if task == "generation":
        texts = [
            f"the {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} "
            f"the {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} ."
            for _ in range(n)
        ]
        return texts, None
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(num_classes)
        words = rng.choices(_FILLER, k=rng.randint(3, 6)) + rng.choices(_class_words(label), k=2)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def load_text_data(
    spec: DataSpec, task: Task, num_classes: int, objects: DataObjects | None
) -> TextData:
    """The job's texts, split into train and validation by ``spec.validation_split``."""
    if spec.source == "synthetic":
        texts, labels = synthetic_texts(task, num_classes, spec.num_samples, spec.seed)
        names = None
    elif spec.source.startswith("s3://"):
        if objects is None:
            raise DataError(f"data source {spec.source} needs an object store")
        rows = _read_rows(spec, objects)
        texts, labels, names = _columns(rows, spec, task, num_classes)
    else:
        raise DataError(
            f"data source '{spec.source}' is not text: use 'synthetic' or an s3:// JSONL/CSV file "
            "for Hugging Face jobs"
        )
    return _split(texts, labels, names, spec.validation_split, spec.seed)


def _read_rows(spec: DataSpec, objects: DataObjects) -> list[dict[str, Any]]:
    store, key = objects.locate(spec.source)
    fmt = spec.format
    if fmt == "auto":
        suffix = PurePosixPath(key).suffix.lower()
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(
            suffix, ""
        )  # type: ignore[assignment]
    if fmt not in ("jsonl", "csv"):
        raise DataError(
            f"{spec.source}: Hugging Face jobs read JSONL or CSV text; set data.format to "
            "'jsonl' or 'csv' (or name the file .jsonl/.csv)"
        )
    raw = objects.read(store, key, spec.source).decode("utf-8-sig")
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(raw)))
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{spec.source} line {number} is not JSON: {e.msg}") from e
    return rows


def _columns(
    rows: list[dict[str, Any]], spec: DataSpec, task: Task, num_classes: int
) -> tuple[list[str], list[int] | None, list[str] | None]:
    if not rows:
        raise DataError(f"{spec.source} has no rows")
    missing = [
        i for i, r in enumerate(rows, 1) if not isinstance(r, dict) or spec.text_field not in r
    ]
    if missing:
        raise DataError(
            f"{spec.source}: row {missing[0]} has no '{spec.text_field}' field "
            f"({len(missing)} rows affected); set data.text_field to the text column"
        )
    texts = [str(r[spec.text_field]) for r in rows]
    if task == "generation":
        return texts, None, None
    if any(spec.label_field not in r for r in rows):
        raise DataError(
            f"{spec.source}: rows lack the label field '{spec.label_field}'; set data.label_field"
        )
    raw = [r[spec.label_field] for r in rows]
    labels, names = _label_ids(raw)
    if max(labels) >= num_classes:
        raise DataError(
            f"{spec.source} has {max(labels) + 1} classes but num_classes is {num_classes}: "
            "raise num_classes or fix the labels"
        )
    return texts, labels, names


def _label_ids(raw: list[Any]) -> tuple[list[int], list[str] | None]:
    """Integer labels stay as they are; anything else maps to sorted names."""
    try:
        ints = [int(v) for v in raw]
        if all(str(i) == str(v).strip() for i, v in zip(ints, raw, strict=True)) and min(ints) >= 0:
            return ints, None
    except (TypeError, ValueError):
        pass
    names = sorted({str(v) for v in raw})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v)] for v in raw], names


def _split(
    texts: list[str], labels: list[int] | None, names: list[str] | None, fraction: float, seed: int
) -> TextData:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * fraction)
    if fraction > 0 and len(order) > 1:
        n_val = min(max(n_val, 1), len(order) - 1)
    val, train = order[:n_val], order[n_val:]
    pick = lambda idx, xs: [xs[i] for i in idx] if xs is not None else None  # noqa: E731
    return TextData(
        [texts[i] for i in train],
        pick(train, labels),
        [texts[i] for i in val],
        pick(val, labels),
        names,
    )


@dataclass
class Encoded:
    """Token ids per text (unpadded tensors) and their labels."""

    input_ids: list[torch.Tensor]
    labels: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(
    tokenizer: Any, texts: list[str], labels: list[int] | None, max_length: int
) -> Encoded:
    """Tokenize every text once, truncated to ``max_length``."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise DataError(f"text {empty[0]} tokenizes to nothing ({len(empty)} such texts)")
    tensors = [torch.tensor(x, dtype=torch.long) for x in ids]
    return Encoded(tensors, torch.tensor(labels, dtype=torch.long) if labels is not None else None)


def collate(data: Encoded, rows: list[int], pad_id: int, task: Task) -> dict[str, torch.Tensor]:
    """Pad one batch to its longest row; causal-LM labels ignore padding (-100)."""
    seqs = [data.input_ids[i] for i in rows]
    ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad_id)
    lengths = torch.tensor([len(s) for s in seqs])
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    if task == "generation":
        labels = ids.masked_fill(mask == 0, -100)
    else:
        assert data.labels is not None
        labels = data.labels[rows]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_batches(
    n: int, batch_size: int, epoch: int, seed: int, *, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's batches of one epoch, sharded and shuffled like the PyTorch recipe's.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """
    from torch.utils.data.distributed import DistributedSampler

    sampler: DistributedSampler[int] = DistributedSampler(
        range(n),  # type: ignore[arg-type]  # any sized sequence works
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=seed,
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
