"""Training data: synthetic, scikit-learn's digits, or S3 (.npz, CSV, image folder), in memory.

Every source ends as float32 features shaped for the model (flat vectors for the MLP,
``(C, H, W)`` images for conv nets) and int64 labels, split into train and validation.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sparktrainer.contracts.jobspec import DataSpec
from sparktrainer.errors import DataError
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.sources import DataObjects, npz_bytes

Shape = tuple[int, ...]


@dataclass
class SplitData:
    """Train and validation tensors, on the CPU."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    class_names: list[str] | None = None


@dataclass
class _Raw:
    x: torch.Tensor
    y: torch.Tensor
    what: str
    class_names: list[str] | None = None


def load_data(
    spec: DataSpec, input_shape: Shape, num_classes: int, objects: DataObjects | None = None
) -> SplitData:
    """``spec``'s data shaped for a model taking ``input_shape``, labels < ``num_classes``.

    ``objects`` reads S3 sources (allowed buckets only, within the data cap).
    """
    if spec.source == "synthetic":
        raw = synthetic(spec.num_samples, input_shape, num_classes, spec.seed)
    elif spec.source == "digits":
        raw = digits(num_classes)
    else:
        raw = _from_s3(spec, input_shape, objects)
    x = fit_to_shape(raw.x.float(), input_shape, raw.what)
    _check_labels(raw.y, num_classes, raw.what)
    return _split(x, raw.y.long(), spec.validation_split, spec.seed, raw.class_names)


def synthetic(n: int, shape: Shape, num_classes: int, seed: int) -> _Raw:
    """Seeded, learnable data: one smooth prototype per class plus noise, in the model's shape."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=g)
    if len(shape) == 1:
        protos = torch.randn(num_classes, *shape, generator=g)
        x = protos[y] + 0.8 * torch.randn(n, *shape, generator=g)
        return _Raw(x, y, "synthetic")
    channels, height, width = shape
    low = (max(1, min(height, 8)), max(1, min(width, 8)))
    protos = torch.randn(num_classes, channels, *low, generator=g)
    x = protos[y] + 0.8 * torch.randn(n, channels, *low, generator=g)
    if low != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return _Raw(x, y, "synthetic")


def digits(num_classes: int = 10) -> _Raw:
    """scikit-learn's 1,797 bundled 8x8 digits; a model of k < 10 classes gets digits 0..k-1."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = bunch.target < num_classes
    x = torch.from_numpy(bunch.data[keep].astype(np.float32) / 16.0)
    y = torch.from_numpy(bunch.target[keep].astype(np.int64))
    subset = f", digits 0-{num_classes - 1}" if num_classes < 10 else ""
    return _Raw(x, y, f"digits (8x8 images, 64 features{subset})")


def fit_to_shape(x: torch.Tensor, shape: Shape, what: str) -> torch.Tensor:
    """``x`` as ``(n, *shape)``: flat vectors, or images with channels replicated and resized."""
    n = x.shape[0]
    if len(shape) == 1:
        flat = x.reshape(n, -1)
        if flat.shape[1] != shape[0]:
            raise DataError(
                f"{what} has {flat.shape[1]} features per sample but the model's input_size is "
                f"{shape[0]}: set input_size to {flat.shape[1]}"
            )
        return flat
    return _fit_image(_as_nchw(x, shape, what), shape, what)


def _as_nchw(x: torch.Tensor, shape: Shape, what: str) -> torch.Tensor:
    n = x.shape[0]
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if x.shape[1] == math.prod(shape):
            return x.reshape(n, *shape)
        if side * side == x.shape[1]:
            return x.reshape(n, 1, side, side)
        raise DataError(
            f"{what} has flat samples of {x.shape[1]} values, which are neither square images "
            f"nor {list(shape)}: store images as (N, C, H, W) or (N, H, W)"
        )
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4:
        channels_last = x.shape[1] not in (1, 3) and x.shape[3] in (1, 3)
        return x.permute(0, 3, 1, 2) if channels_last else x
    raise DataError(f"{what} samples have {x.dim() - 1} dimensions; images need 2 or 3")


def _fit_image(x: torch.Tensor, shape: Shape, what: str) -> torch.Tensor:
    channels, height, width = shape
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise DataError(
                f"{what} images have {x.shape[1]} channels but the model takes {channels}"
            )
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.contiguous()


def _check_labels(y: torch.Tensor, num_classes: int, what: str) -> None:
    if y.numel() == 0:
        raise DataError(f"{what} has no samples")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"{what} has labels {low}..{high} but the model has {num_classes} outputs: "
            f"set num_classes/output_size to at least {high + 1}"
        )


def _split(
    x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int, names: list[str] | None
) -> SplitData:
    n = x.shape[0]
    n_val = round(n * fraction)
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n - n_val < 1:
        raise DataError(f"{n} samples leave nothing to train on with validation_split {fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return SplitData(x[train], y[train], x[val], y[val], names)


# -- S3 sources ----------------------------------------------------------------------------


def _from_s3(spec: DataSpec, shape: Shape, objects: DataObjects | None) -> _Raw:
    if objects is None:
        raise DataError(f"data source {spec.source} needs an object store")
    store, key = objects.locate(spec.source)
    fmt = spec.format if spec.format != "auto" else _guess_format(key)
    what = spec.source
    loaders: dict[str, Callable[[], _Raw]] = {
        "npz": lambda: _npz(objects.read(store, key, what), what, objects),
        "csv": lambda: _csv(objects.read(store, key, what), spec.label_column, what),
        "image_folder": lambda: _image_folder(objects, store, key, shape, what),
    }
    if fmt not in loaders:
        raise DataError(
            f"data format '{fmt}' of {spec.source} is for text models; PyTorch classifiers "
            "read .npz, CSV or an image folder"
        )
    return loaders[fmt]()


def _guess_format(key: str) -> str:
    for suffix, fmt in ((".npz", "npz"), (".csv", "csv"), (".jsonl", "jsonl")):
        if key.lower().endswith(suffix):
            return fmt
    return "image_folder"


def _npz(blob: bytes, what: str, objects: DataObjects) -> _Raw:
    objects.check_in_memory(npz_bytes(blob), what)
    try:
        arrays = np.load(io.BytesIO(blob), allow_pickle=False)
        x_name = next(k for k in ("X", "x") if k in arrays.files)
        y_name = next(k for k in ("y", "Y") if k in arrays.files)
        x, y = arrays[x_name], arrays[y_name]
    except StopIteration as e:
        raise DataError(f"{what} must hold arrays 'X' and 'y'") from e
    except ValueError as e:
        raise DataError(
            f"{what} is not a plain .npz of arrays (pickled objects are refused)"
        ) from e
    return _Raw(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), what)


def _csv(blob: bytes, label_column: str, what: str) -> _Raw:
    rows = list(csv.reader(io.StringIO(blob.decode("utf-8-sig"))))
    if not rows or label_column not in rows[0]:
        raise DataError(f"{what} has no '{label_column}' column (set data.label_column)")
    at = rows[0].index(label_column)
    body = [r for r in rows[1:] if r]
    try:
        feats = [[float(v) for i, v in enumerate(r) if i != at] for r in body]
    except ValueError as e:
        raise DataError(f"{what}: every column but '{label_column}' must be numeric") from e
    labels = [r[at] for r in body]
    names = None
    if not all(v.lstrip("-").isdigit() for v in labels):
        names = sorted(set(labels))
        labels = [str(names.index(v)) for v in labels]
    y = torch.tensor([int(v) for v in labels], dtype=torch.int64)
    return _Raw(torch.tensor(feats, dtype=torch.float32), y, what, names)


def _image_folder(
    objects: DataObjects, store: ObjectStore, prefix: str, shape: Shape, what: str
) -> _Raw:
    from PIL import Image

    prefix = prefix.rstrip("/") + "/"
    keys = [k for k in store.list(prefix) if "/" in k[len(prefix) :]]
    names = sorted({k[len(prefix) :].split("/", 1)[0] for k in keys})
    if len(shape) != 3 or not names:
        raise DataError(f"{what} needs class sub-folders of images and a conv model")
    channels, height, width = shape
    images, labels = [], []
    for key in sorted(keys):
        try:
            with Image.open(io.BytesIO(objects.read(store, key, what))) as opened:
                img = opened.convert("L" if channels == 1 else "RGB").resize((width, height))
        except OSError as e:
            raise DataError(f"{what}: {key} is not a readable image") from e
        pixels = np.asarray(img, dtype=np.float32) / 255.0
        images.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
        labels.append(names.index(key[len(prefix) :].split("/", 1)[0]))
    x = torch.from_numpy(np.stack(images))
    return _Raw(x, torch.tensor(labels, dtype=torch.int64), what, names)


class Batches:
    """Shuffled mini-batches of in-memory tensors, sharded like DistributedSampler.

    The order of epoch ``e`` depends only on (seed, e), so a resumed run sees the same
    batches, and the union of the ranks' i-th batches is the single-process i-th batch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world: int = 1,
        device: torch.device | None = None,
    ) -> None:
        from torch.utils.data.distributed import DistributedSampler

        device = device or torch.device("cpu")
        on_device = device.type == "cpu" or x.nbytes + y.nbytes < 2 << 30
        self.x = x.to(device) if on_device else x.pin_memory()
        self.y = y.to(device) if on_device else y.pin_memory()
        self.device, self.batch_size = device, batch_size
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(len(x)),  # type: ignore[arg-type]  # any sized sequence works
            num_replicas=world,
            rank=rank,
            shuffle=True,
            seed=seed,
        )

    def __len__(self) -> int:
        return math.ceil(self.sampler.num_samples / self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's batches of ``epoch`` from batch number ``start`` on."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.int64, device=self.x.device)
        for i in range(start, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield (
                self.x[idx].to(self.device, non_blocking=True),
                self.y[idx].to(self.device, non_blocking=True),
            )
