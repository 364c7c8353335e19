"""Fine-tuning: chains of registered models, frozen layers, torchvision weights, and DDP."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any, get_args

import pytest
import torch

from sparktrainer.contracts.events import JobStarted
from sparktrainer.contracts.jobspec import TorchvisionConfig
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.errors import TrainingError, UnsafeArtifactError
from sparktrainer.storage.s3 import sha256_file
from sparktrainer.training.loop.device import seed_everything
from sparktrainer.training.pytorch.architectures import TORCHVISION_HEADS
from sparktrainer.training.pytorch.model_io import resolve_model
from sparktrainer.training.pytorch.recipe import PyTorchRecipe
from sparktrainer.training.recipes import run_recipe_job
from tests.weights import assert_only_head_trained

MLP = {
    "input_size": 64,
    "output_size": 10,
    "hidden_layers": [32],
    "activation": "gelu",
    "dropout": 0.1,
    "epochs": 1,
    "data": {"source": "digits"},
}
RESNET = {
    "num_classes": 10,
    "num_blocks": [1, 1],
    "channels": [8, 16],
    "input_shape": [1, 8, 8],
    "epochs": 1,
    "data": {"source": "digits"},
}
RESNET18 = {
    "model_name": "resnet18",
    "num_classes": 10,
    "pretrained": False,
    "freeze_layers": False,
    "input_shape": [3, 8, 8],
    "epochs": 1,
    "data": {"source": "digits"},
}
HEADS = {"mlp": "head.", "resnet": "fc.", "torchvision": "fc."}
SMALL_DATA = {"data": {"num_samples": 128}}


def finetune(make_ctx, job_id: str, parent: str, **config):
    """Fine-tune the registered model ``parent`` as job ``job_id``."""
    ctx = make_ctx(
        job_id,
        "pytorch.registered",
        {"model_id": parent, "epochs": 1, **config},
        job_type="finetune",
    )
    return run_recipe_job(ctx)


@pytest.mark.parametrize(("kind", "config"), [("pytorch.mlp", MLP), ("pytorch.resnet", RESNET)])
def test_three_level_chain(make_ctx, stored, job_id, kind: str, config: dict) -> None:
    gen1, gen2, gen3 = job_id("gen1"), job_id("gen2"), job_id("gen3")
    run_recipe_job(make_ctx(gen1, kind, config))
    second = finetune(make_ctx, gen2, gen1, data={"source": "digits"})
    third = finetune(make_ctx, gen3, gen2, num_classes=4, **SMALL_DATA)
    assert (second.base_model_id, second.lineage) == (gen1, [gen1])
    assert (third.base_model_id, third.lineage) == (gen2, [gen2, gen1])
    meta = stored(gen3, "metadata.json")
    assert meta["base_model_id"] == gen2 and meta["lineage"] == [gen2, gen1]
    first_cfg, third_cfg = stored(gen1, "config.json"), stored(gen3, "config.json")
    assert third_cfg["num_classes"] == 4 and third_cfg["builder"] == first_cfg["builder"]
    assert third_cfg["input_shape"] == first_cfg["input_shape"]
    unchanged = {
        k: v for k, v in first_cfg["params"].items() if k not in ("num_classes", "output_size")
    }
    assert unchanged.items() <= third_cfg["params"].items()  # rebuilt from the parent's config
    assert stored(gen2, "config.json")["num_classes"] == 10  # head kept when equal


def initial_state(config_kind: str, config: dict, tmp_path: Path) -> dict[str, torch.Tensor]:
    spec = kind_of(config_kind).config.model_validate(config)
    seed_everything(spec.seed)
    return resolve_model(spec, None, tmp_path).model.state_dict()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "config", "head"),
    [
        ("pytorch.mlp", MLP, "head."),
        ("pytorch.resnet", RESNET, "fc."),  # torchvision's: every model, in the test below
    ],
)
def test_freeze_layers_trains_only_the_head(
    make_ctx, stored, job_id, tmp_path, kind, config, head
) -> None:
    frozen = {**config, **SMALL_DATA, "freeze_layers": True}
    before = initial_state(kind, frozen, tmp_path)
    run_recipe_job(make_ctx(job_id("frozen"), kind, frozen))
    assert_only_head_trained(
        before, stored(job_id("frozen"), "model.pth")["model_state_dict"], head
    )


@pytest.mark.parametrize(
    "model_name", get_args(TorchvisionConfig.model_fields["model_name"].annotation)
)
def test_every_torchvision_model_trains_a_step_with_frozen_weights_unchanged(
    make_ctx, job_id, model_name: str
) -> None:
    one_batch = {"batch_size": 8, "data": {"num_samples": 8, "validation_split": 0.0}}
    config = {**RESNET18, **one_batch, "model_name": model_name, "freeze_layers": True,
              "input_shape": [3, 32, 32]}  # fmt: skip
    recipe = PyTorchRecipe(make_ctx(job_id(model_name), "pytorch.torchvision", config))
    recipe.setup()  # the model as the recipe builds it, frozen but for its head
    assert recipe.plan is not None
    before = {k: v.clone() for k, v in recipe.plan.model.state_dict().items()}
    result = recipe.train()  # one optimizer step
    assert result.step == 1
    head = TORCHVISION_HEADS[model_name] + "."
    assert_only_head_trained(before, recipe.plan.model.state_dict(), head)
    assert recipe.plan.trainable == [head + "weight", head + "bias"]
    recipe.cleanup()


@pytest.mark.parametrize(
    ("kind", "config", "builder"),
    [
        ("pytorch.mlp", MLP, "mlp"),
        ("pytorch.resnet", RESNET, "resnet"),
        ("pytorch.torchvision", RESNET18, "torchvision"),
    ],
)
@pytest.mark.parametrize("num_classes", [None, 5])
def test_freeze_layers_on_a_registered_parent(
    make_ctx, stored, job_id, kind, config, builder, num_classes
) -> None:
    parent_id, child_id = job_id("parent"), job_id("child")
    run_recipe_job(make_ctx(parent_id, kind, {**config, **SMALL_DATA}))
    finetune(
        make_ctx, child_id, parent_id, freeze_layers=True, num_classes=num_classes, **SMALL_DATA
    )
    parent = stored(parent_id, "model.pth")["model_state_dict"]
    child = stored(child_id, "model.pth")["model_state_dict"]
    assert_only_head_trained(parent, child, HEADS[builder])
    assert stored(child_id, "config.json")["num_classes"] == (num_classes or 10)


def test_pretrained_weights_that_cannot_be_had_fail_early(
    make_ctx, job_id, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    ctx = make_ctx(job_id("pre"), "pytorch.torchvision", {**RESNET18, "pretrained": True})
    with pytest.raises(TrainingError) as caught:
        run_recipe_job(ctx)
    message = str(caught.value)
    assert "torchvision resnet18" in message and "set pretrained false" in message
    assert "hub/checkpoints/resnet18-f37072fd.pth" in message
    assert not [e for e in ctx.events if isinstance(e, JobStarted)]


def _placed_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """ImageNet-shaped resnet18 weights in $TORCH_HOME under ``name`` (None: their own hash)."""
    import torchvision

    home = tmp_path / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    imagenet = torchvision.models.resnet18(num_classes=1000).state_dict()
    staged = home / "staged.pth"
    torch.save(imagenet, staged)
    # torchvision names its files by the sha256 they start with; ours is not theirs, so the
    # weights' URL (offline: only its file name matters) is pointed at a name that is ours.
    name = name or f"resnet18-{sha256_file(staged)[:8]}.pth"
    staged.rename(home / "hub" / "checkpoints" / name)
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/{name}")
    monkeypatch.setenv("TORCH_HOME", str(home))
    return imagenet


def test_pretrained_weights_placed_in_torch_home_are_used(
    make_ctx, stored, job_id, tmp_path, monkeypatch
) -> None:
    imagenet = _placed_weights(tmp_path, monkeypatch, "")
    config = {**RESNET18, **SMALL_DATA, "pretrained": True, "freeze_layers": True}
    run_recipe_job(make_ctx(job_id("pre-ok"), "pytorch.torchvision", config))
    after = stored(job_id("pre-ok"), "model.pth")["model_state_dict"]
    assert after["fc.weight"].shape == (10, 512)
    assert_only_head_trained(imagenet, after, "fc.")
    assert stored(job_id("pre-ok"), "metadata.json")["pretrained"] is True


def weights_folder(folder: Path, state: dict, sha256: str | None = None) -> Path:
    """An operator's pretrained folder: resnet18.pth and a manifest naming its sha256."""
    from sparktrainer.training.pytorch.pretrained import MANIFEST, file_sha256

    folder.mkdir()
    torch.save(state, folder / "resnet18.pth")
    digest = sha256 or file_sha256(folder / "resnet18.pth")
    (folder / MANIFEST).write_text(
        f'{{"resnet18": {{"file": "resnet18.pth", "sha256": "{digest}"}}}}'
    )
    return folder


def test_pretrained_weights_from_the_operators_folder_are_checked_and_used(
    make_ctx, stored, job_id, tmp_path, monkeypatch
) -> None:
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    imagenet = torchvision.models.resnet18(num_classes=1000).state_dict()
    folder = weights_folder(tmp_path / "weights", imagenet)
    config = {**RESNET18, **SMALL_DATA, "pretrained": True, "freeze_layers": True}
    ctx = make_ctx(job_id("dir"), "pytorch.torchvision", config, pretrained_weights_dir=folder)
    run_recipe_job(ctx)
    assert_only_head_trained(
        imagenet, stored(job_id("dir"), "model.pth")["model_state_dict"], "fc."
    )

    tampered = weights_folder(tmp_path / "tampered", imagenet, sha256="0" * 64)
    ctx = make_ctx(job_id("bad"), "pytorch.torchvision", config, pretrained_weights_dir=tampered)
    with pytest.raises(TrainingError, match=r"sha256 .* the manifest says 0000"):
        run_recipe_job(ctx)


def test_placed_weights_whose_hash_is_not_their_names_are_refused(
    make_ctx, job_id, tmp_path, monkeypatch
) -> None:
    """A file planted under torchvision's own name (resnet18-f37072fd.pth) with other bytes."""
    _placed_weights(tmp_path, monkeypatch, "resnet18-f37072fd.pth")
    config = {**RESNET18, **SMALL_DATA, "pretrained": True}
    with pytest.raises(UnsafeArtifactError, match="does not start with the 'f37072fd'"):
        run_recipe_job(make_ctx(job_id("pre-bad"), "pytorch.torchvision", config))


def test_ddp_on_two_cpu_processes_matches_one_process(make_ctx, stored, job_id) -> None:
    config = {
        "input_size": 8,
        "output_size": 3,
        "hidden_layers": [16],
        "epochs": 2,
        "batch_size": 32,
        "data": {"num_samples": 256, "validation_split": 0.25},
    }
    single = run_recipe_job(make_ctx(job_id("single"), "pytorch.mlp", config))
    ctx = make_ctx(job_id("ddp"), "pytorch.mlp", {**config, "distributed": {"enabled": True}})
    ddp = run_recipe_job(ctx)
    assert ctx.events[0].device == "2x cpu (DDP, gloo)"
    one = stored(job_id("single"), "model.pth")["model_state_dict"]
    two = stored(job_id("ddp"), "model.pth")["model_state_dict"]
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-4, rtol=1e-3)
    assert ddp.metrics["val_loss"] == pytest.approx(single.metrics["val_loss"], rel=1e-3)
    assert ddp.metrics["loss"] == pytest.approx(single.metrics["loss"], rel=1e-3)
