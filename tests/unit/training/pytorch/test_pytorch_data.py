"""Training data: synthetic and digits shaped for the model, S3 formats, splits, batches."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.jobspec import DataSpec
from sparktrainer.errors import InvalidJobError, TrainingError
from sparktrainer.training.pytorch.data import Batches, load_data
from sparktrainer.training.sources import DataObjects


def test_synthetic_is_seeded_capped_and_shaped_for_the_model() -> None:
    spec = DataSpec(num_samples=100, validation_split=0.2, seed=3)
    flat = load_data(spec, (10,), 4)
    assert flat.x_train.shape == (80, 10) and flat.x_val.shape == (20, 10)
    assert torch.equal(load_data(spec, (10,), 4).x_train, flat.x_train)
    images = load_data(spec, (3, 16, 16), 4)
    assert images.x_train.shape == (80, 3, 16, 16)
    assert int(images.y_train.max()) < 4


def test_digits_serves_the_mlp_and_conv_nets() -> None:
    spec = DataSpec(source="digits", validation_split=0.25)
    flat = load_data(spec, (64,), 10)
    assert flat.x_train.shape[1] == 64 and len(flat.x_train) + len(flat.x_val) == 1797
    images = load_data(spec, (3, 16, 16), 10)
    assert images.x_train.shape[1:] == (3, 16, 16)
    assert torch.equal(images.x_train[:, 0], images.x_train[:, 2])  # replicated channels


def test_digits_for_fewer_classes_are_the_first_digits() -> None:
    five = load_data(DataSpec(source="digits", validation_split=0.2), (64,), 5)
    labels = torch.cat([five.y_train, five.y_val])
    assert set(labels.tolist()) == {0, 1, 2, 3, 4}
    assert 850 < len(labels) < 950  # about half of the 1,797 digits


def test_digits_with_a_wrong_input_size_says_what_to_set() -> None:
    with pytest.raises(
        TrainingError, match=r"64 features.*input_size is 100: set input_size to 64"
    ):
        load_data(DataSpec(source="digits"), (100,), 10)


@pytest.fixture
def prefix(job_id) -> str:
    """A key prefix of this test's own in the shared bucket."""
    return f"data/{job_id('data')}/"


def test_too_few_outputs_for_the_labels_is_an_error(s3, prefix) -> None:
    buf = io.BytesIO()
    np.savez(buf, X=np.random.rand(20, 4).astype(np.float32), y=np.arange(20) % 10)
    s3.put_bytes(prefix + "ten.npz", buf.getvalue())
    with pytest.raises(TrainingError, match=r"labels 0\.\.9 but the model has 5 outputs"):
        load_data(DataSpec(source=f"s3://{s3.bucket}/{prefix}ten.npz"), (4,), 5, DataObjects(s3))


def test_npz_and_csv_from_the_store(s3, prefix) -> None:
    buf = io.BytesIO()
    np.savez(buf, X=np.random.rand(30, 2, 4, 4).astype(np.float32), y=np.arange(30) % 3)
    s3.put_bytes(prefix + "set.npz", buf.getvalue())
    got = load_data(
        DataSpec(source=f"s3://{s3.bucket}/{prefix}set.npz"), (2, 4, 4), 3, DataObjects(s3)
    )
    assert got.x_train.shape == (24, 2, 4, 4)
    s3.put_bytes(prefix + "t.csv", b"a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n")
    got = load_data(
        DataSpec(
            source=f"s3://{s3.bucket}/{prefix}t.csv", label_column="kind", validation_split=0.0
        ),
        (2,),
        2,
        DataObjects(s3),
    )
    assert got.class_names == ["cat", "dog"] and got.x_train.shape == (4, 2)


def test_npz_with_pickled_objects_is_refused(s3, prefix) -> None:
    buf = io.BytesIO()
    np.savez(buf, X=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    s3.put_bytes(prefix + "evil.npz", buf.getvalue())
    with pytest.raises(TrainingError, match="pickled objects are refused"):
        load_data(DataSpec(source=f"s3://{s3.bucket}/{prefix}evil.npz"), (1,), 2, DataObjects(s3))


def test_image_folder_with_class_subfolders(s3, prefix) -> None:
    for label, shade in (("dark", 20), ("light", 230)):
        for i in range(3):
            png = io.BytesIO()
            Image.new("RGB", (10, 6), (shade, shade, shade)).save(png, format="PNG")
            s3.put_bytes(f"{prefix}imgs/{label}/{i}.png", png.getvalue())
    got = load_data(
        DataSpec(source=f"s3://{s3.bucket}/{prefix}imgs/", validation_split=0.0),
        (3, 8, 8),
        2,
        DataObjects(s3),
    )
    assert got.class_names == ["dark", "light"]
    assert got.x_train.shape == (6, 3, 8, 8)
    dark = got.x_train[got.y_train == 0]
    assert float(dark.max()) < 0.1


def test_rank_batches_together_are_the_single_process_batches() -> None:
    x, y = torch.arange(40).float().unsqueeze(1), torch.arange(40)
    single = list(Batches(x, y, 8, seed=1).epoch(2))
    ranks = [list(Batches(x, y, 4, seed=1, rank=r, world=2).epoch(2)) for r in (0, 1)]
    for i, (xs, _) in enumerate(single):
        union = torch.cat([ranks[0][i][0], ranks[1][i][0]])
        assert sorted(union.flatten().tolist()) == sorted(xs.flatten().tolist())
    resumed = list(Batches(x, y, 8, seed=1).epoch(2, start=3))
    assert torch.equal(resumed[0][0], single[3][0])


# -- what a job may read -------------------------------------------------------------------


def test_a_bucket_the_deployment_does_not_list_is_refused_before_any_read(s3) -> None:
    objects = DataObjects(s3, Access(frozenset({"only-this-one"})))
    for source, why in (
        (f"s3://{s3.bucket}/x.npz", "is not one this deployment lets jobs read"),
        ("s3://tansu/clusters/x", "holds the broker's log"),
    ):
        with pytest.raises(InvalidJobError, match=why):
            load_data(DataSpec(source=source), (1,), 2, objects)
    assert objects.read_bytes == 0


def test_an_object_above_the_data_cap_is_refused_before_download(s3, prefix) -> None:
    s3.put_bytes(prefix + "big.csv", b"a,label\n" + b"1,0\n" * 2000)
    objects = DataObjects(s3, max_bytes=1000)
    with pytest.raises(InvalidJobError, match="above this deployment's data limit of 1000 B"):
        load_data(DataSpec(source=f"s3://{s3.bucket}/{prefix}big.csv"), (1,), 2, objects)
    assert objects.read_bytes == 0  # only its size was asked


def test_a_compressed_npz_is_measured_by_its_headers_before_it_expands(s3, prefix) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.zeros((4000, 1000), np.float32), y=np.zeros(4000, np.int64))
    assert len(buf.getvalue()) < 100_000  # 16 MB of arrays in a small file
    s3.put_bytes(prefix + "bomb.npz", buf.getvalue())
    objects = DataObjects(s3, max_bytes=1_000_000)
    with pytest.raises(InvalidJobError, match="of arrays once expanded"):
        load_data(DataSpec(source=f"s3://{s3.bucket}/{prefix}bomb.npz"), (1000,), 2, objects)
