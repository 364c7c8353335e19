"""Text data for the HF recipe: synthetic tasks, JSONL/CSV from the store, batching."""

from __future__ import annotations

import json

import pytest
import torch

from sparktrainer.contracts.jobspec import DataSpec
from sparktrainer.errors import TrainingError
from sparktrainer.training.hf.data import (
    Encoded,
    collate,
    epoch_batches,
    load_text_data,
    synthetic_texts,
)
from sparktrainer.training.sources import DataObjects


def test_synthetic_classification_is_seeded_and_separable_by_keywords() -> None:
    texts, labels = synthetic_texts("classification", 3, 60, seed=7)
    assert (texts, labels) == synthetic_texts("classification", 3, 60, seed=7)
    assert texts != synthetic_texts("classification", 3, 60, seed=8)[0]
    assert labels is not None and set(labels) == {0, 1, 2}
    positive = {"good", "great", "excellent", "happy", "love", "wonderful", "nice", "best"}
    for text, label in zip(texts, labels, strict=True):
        assert (label == 0) == bool(positive & set(text.split()))


def test_synthetic_generation_has_no_labels() -> None:
    texts, labels = synthetic_texts("generation", 2, 5, seed=0)
    assert labels is None and all(t.startswith("the ") and t.endswith(" .") for t in texts)


def test_split_sizes_follow_validation_split() -> None:
    data = load_text_data(
        DataSpec(num_samples=100, validation_split=0.2), "classification", 2, None
    )
    assert len(data.train_texts) == 80 and len(data.val_texts) == 20
    assert data.train_labels is not None and len(data.train_labels) == 80


@pytest.fixture
def put(s3, job_id):
    """put(name, body): upload under a prefix of this test's own; returns its s3:// URI."""

    def upload(name: str, body: str) -> str:
        key = f"data/{job_id('text')}/{name}"
        s3.put_bytes(key, body.encode())
        return f"s3://{s3.bucket}/{key}"

    return upload


def test_jsonl_with_custom_fields_and_string_labels(put, s3) -> None:
    rows = [{"review": f"text {i}", "stars": ["neg", "pos"][i % 2]} for i in range(10)]
    uri = put("reviews.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    spec = DataSpec(source=uri, text_field="review", label_field="stars", validation_split=0.2)
    data = load_text_data(spec, "classification", 2, DataObjects(s3))
    assert data.label_names == ["neg", "pos"]
    assert len(data.train_texts) == 8 and len(data.val_texts) == 2
    by_text = dict(
        zip(
            data.train_texts + data.val_texts,
            (data.train_labels or []) + (data.val_labels or []),
            strict=True,
        )
    )
    assert by_text["text 1"] == 1 and by_text["text 0"] == 0


def test_csv_with_integer_labels(put, s3) -> None:
    body = "text,label\n" + "".join(f'"hello, {i}",{i % 3}\n' for i in range(9))
    uri = put("t.csv", body)
    data = load_text_data(
        DataSpec(source=uri, validation_split=0.0), "classification", 3, DataObjects(s3)
    )
    assert data.label_names is None and sorted(set(data.train_labels or [])) == [0, 1, 2]
    assert "hello, 0" in data.train_texts and data.val_texts == []


def test_generation_reads_only_the_text_field(put, s3) -> None:
    uri = put("g.jsonl", '{"text": "a b c"}\n{"text": "d e"}\n')
    data = load_text_data(
        DataSpec(source=uri, validation_split=0.5), "generation", 2, DataObjects(s3)
    )
    assert data.train_labels is None and len(data.train_texts) == 1


@pytest.mark.parametrize(
    ("key", "body", "spec", "message"),
    [
        ("d/a.jsonl", '{"txt": "x", "label": 0}\n', {}, "row 1 has no 'text' field"),
        ("d/b.jsonl", '{"text": "x"}\n', {}, "lack the label field 'label'"),
        ("d/c.jsonl", '{"text": "x", "label": 0}\nnot json\n', {}, "line 2 is not JSON"),
        ("d/d.jsonl", '{"text": "x", "label": 5}\n', {}, "has 6 classes but num_classes is 2"),
        ("d/e.jsonl", "", {}, "has no rows"),
        ("d/f.npz", "x", {}, "read JSONL or CSV text"),
    ],
)
def test_bad_text_files_say_what_to_fix(put, s3, key, body, spec, message) -> None:
    uri = put(key, body)
    with pytest.raises(TrainingError, match=message):
        load_text_data(DataSpec(source=uri, **spec), "classification", 2, DataObjects(s3))


def test_digits_is_not_text() -> None:
    with pytest.raises(TrainingError, match="is not text"):
        load_text_data(DataSpec(source="digits"), "classification", 2, None)


def test_collate_pads_and_masks_padding_out_of_lm_labels() -> None:
    data = Encoded([torch.tensor([5, 6, 7]), torch.tensor([8])], torch.tensor([1, 0]))
    gen = collate(data, [0, 1], pad_id=0, task="generation")
    assert gen["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert gen["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert gen["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    cls = collate(data, [1, 0], pad_id=0, task="classification")
    assert cls["labels"].tolist() == [0, 1] and cls["input_ids"].tolist() == [[8, 0, 0], [5, 6, 7]]


def test_epoch_batches_are_seeded_per_epoch_and_shard_across_ranks() -> None:
    one = epoch_batches(10, 4, epoch=0, seed=1)
    assert one == epoch_batches(10, 4, epoch=0, seed=1) != epoch_batches(10, 4, epoch=1, seed=1)
    assert sorted(i for b in one for i in b) == list(range(10)) and [len(b) for b in one] == [
        4,
        4,
        2,
    ]
    ranks = [epoch_batches(10, 2, epoch=0, seed=1, rank=r, world=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3  # same step count on every rank
    assert set(i for r in ranks for b in r for i in b) == set(range(10))
