"""Every JSON example of the guide, read from docs/MODEL_CREATION_GUIDE.md itself, run for real.

Each example goes through a validator, a trainer (its warm worker process) and the registry
projector on the session's broker and S3 server, changed only by the documented overrides
(``guide_kit``: one epoch on 128 samples, small inputs, placeholder ids replaced by real
parents, partial examples merged into a base job). ``OUTCOMES``, keyed by the heading above
each example, says how each run must end; an example the table does not know fails the test.

Where an example needs what this machine cannot fetch (the Hugging Face hub, ImageNet
weights), its first run ends with the documented failure a user gets here, and a second run
places the weights where an offline trainer reads them (the HF cache under the example's
model name; ``SPARKTRAINER_PRETRAINED_WEIGHTS_DIR`` with a sha256 manifest) and trains.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from sparktrainer.contracts.events import (
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRejected,
    JobStarted,
)
from sparktrainer.guide import GUIDE, Example, keyed_examples
from sparktrainer.storage.layout import model_key
from sparktrainer.storage.s3 import ObjectStore
from tests.integration import guide_kit as kit
from tests.integration.services_kit import Services, run_to_end, running_services, wait_listed
from tests.unit.training.hf.hfkit import save_tiny_bert, save_tiny_llama
from tests.weights import assert_only_head_trained

pytestmark = pytest.mark.integration

HUB_UNREACHABLE = "the Hugging Face hub could not be reached (offline mode is on"
NO_IMAGENET = "cannot get pretrained weights for torchvision resnet50"
NOT_AN_ID = "is not a valid id"
TINY_LLAMA = "a tiny Llama registered by this test (q_proj/v_proj attention)"


@dataclass(frozen=True)
class Run:
    """One run of an example: how it must end, and what was changed for it."""

    expect: Literal["registered", "rejected", "failed"]
    says: str = ""  # in the rejection's errors or the failure's reason
    parent: str | None = None  # config.model_id := the model this example registered
    weights: bool = False  # the pretrained weights placed first (see the module doc)


@dataclass(frozen=True)
class Outcome:
    """What an example ends as: its runs, or (a response block) the example it answers."""

    runs: tuple[Run, ...] = ()
    base: str | None = None  # a partial example runs merged into this example's job
    answers: str | None = None  # a response block: the errors the answered example gets


def not_found(model_id: str) -> str:
    return f"Model with ID '{model_id}' not found in models directory"


OUTCOMES: dict[str, Outcome] = {
    "Custom Fully-Connected Network": Outcome((Run("registered"),)),
    "Custom ResNet": Outcome((Run("registered"),)),
    "HuggingFace": Outcome((Run("failed", HUB_UNREACHABLE), Run("registered", weights=True))),
    "PyTorch Example": Outcome(
        (Run("rejected", NOT_AN_ID), Run("registered", parent="Custom Fully-Connected Network"))
    ),
    "HuggingFace Example": Outcome(
        (Run("rejected", NOT_AN_ID), Run("registered", parent="HuggingFace"))
    ),
    "From TorchVision (PyTorch)": Outcome(
        (Run("failed", NO_IMAGENET), Run("registered", weights=True))
    ),
    "From HuggingFace Hub": Outcome(
        (Run("failed", HUB_UNREACHABLE), Run("registered", weights=True))
    ),
    "Pre-flight Validation": Outcome((Run("rejected", not_found("invalid-id")),)),
    "Pre-flight Validation (2)": Outcome(answers="Pre-flight Validation"),
    "1. Train a Model from Scratch": Outcome((Run("registered"),)),
    "3. Fine-tune the Model": Outcome(
        (
            Run("rejected", not_found("abc123-def456-ghi789")),
            Run("registered", parent="1. Train a Model from Scratch"),
        )
    ),
    "4. Continue Fine-tuning": Outcome(
        (
            Run("rejected", not_found("xyz789-uvw456-rst123")),
            Run("registered", parent="3. Fine-tune the Model"),
        )
    ),
    "LoRA Fine-tuning (HuggingFace)": Outcome(
        (Run("rejected", not_found("abc123")), Run("registered", parent=TINY_LLAMA))
    ),
    "Mixed Precision Training": Outcome((Run("registered"),), base="1. Train a Model from Scratch"),
    # A CPU trainer has no NCCL: the job fails at once, clearly, and is not retried.
    "Distributed Training": Outcome(
        (Run("failed", "distributed backend nccl needs CUDA GPUs: use backend auto or gloo"),),
        base="1. Train a Model from Scratch",
    ),
}
EXAMPLES = keyed_examples()


def missing_outcomes(examples: list[Example]) -> list[str]:
    """Examples of the guide with no entry in OUTCOMES."""
    return [e.key for e in examples if e.key not in OUTCOMES]


def test_every_guide_example_has_an_outcome(summary: list[str]) -> None:
    jobs = [e for e in EXAMPLES if "type" in e.body]
    partial = [e for e in EXAMPLES if set(e.body) == {"config"}]
    summary.append(
        f"guide: {len(EXAMPLES)} JSON examples found in {GUIDE.name} ({len(jobs)} jobs, "
        f"{len(partial)} partial configs, {len(EXAMPLES) - len(jobs) - len(partial)} response)"
    )
    assert len(EXAMPLES) == 15
    assert missing_outcomes(EXAMPLES) == []
    assert set(OUTCOMES) == {e.key for e in EXAMPLES}, "an outcome for an example now gone"


def test_a_new_guide_example_without_an_outcome_is_caught(tmp_path: Path) -> None:
    grown = tmp_path / "guide.md"
    extra = '\n### Early Stopping\n\n```json\n{"config": {"patience": 3}}\n```\n'
    grown.write_text(GUIDE.read_text() + extra)
    assert missing_outcomes(keyed_examples(grown)) == ["Early Stopping"]


# -- running them -----------------------------------------------------------------------------


@dataclass
class Guide:
    """The running stack and what the examples have left so far."""

    services: Services
    store: ObjectStore
    hf_home: Path
    weights_dir: Path
    tiny_bert: Path
    models: dict[str, str] = field(default_factory=dict)  # example key -> its model id
    placed: dict[str, Any] = field(default_factory=dict)  # what the weights run used
    ran: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def guide_run(stack, tmp_path_factory) -> Any:
    """The services with an empty HF cache (hub offline), TORCH_HOME and weights folder."""
    root = tmp_path_factory.mktemp("guide")
    hf_home, weights = root / "hf-home", root / "weights"
    weights.mkdir()
    settings = stack.model_copy(update={"pretrained_weights_dir": weights})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HOME", str(hf_home))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("TORCH_HOME", str(root / "torch-home"))
        async with running_services(settings, "guide", root / "registry.sqlite3") as services:
            guide = Guide(services, ObjectStore.from_settings(settings), hf_home, weights,
                          save_tiny_bert(root / "tiny-bert"))  # fmt: skip
            llama = save_tiny_llama(root / "tiny-llama")
            guide.models[TINY_LLAMA] = await register_tiny_llama(guide, llama)
            yield guide


async def register_tiny_llama(guide: Guide, folder: Path) -> str:
    """The LoRA example's parent: a Llama-style model from a config, registered by a job."""
    config = {"model_source": "local", "model_path": str(folder), **kit.SHRINK}
    job = {
        "type": "finetune",
        "framework": "huggingface",
        "job_id": new_id("llama"),
        "config": config,
    }
    end, _ = await run_to_end(guide.services, job)
    assert isinstance(end, JobCompleted), end
    return job["job_id"]


def new_id(key: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in key.lower()).strip("-")[:30]
    return f"guide-{slug}-{uuid.uuid4().hex[:8]}"


def job_for(example: Example, parent_id: str | None) -> dict[str, Any]:
    """The example as it runs: merged into its base, shrunk, with a parent and an id."""
    outcome = OUTCOMES[example.key]
    job = copy.deepcopy(example.body)
    if outcome.base is not None:
        base = next(e.body for e in EXAMPLES if e.key == outcome.base)
        job = kit.merged(base, job)
    job = kit.shrunk(job)
    if parent_id is not None:
        job["config"]["model_id"] = parent_id
    job["job_id"] = new_id(example.key)
    return job


async def model_of(guide: Guide, key: str) -> str:
    """The model an example registered; run first here when this test runs alone or first."""
    if key not in guide.models:
        example = next(e for e in EXAMPLES if e.key == key)
        run = next(r for r in OUTCOMES[key].runs if r.expect == "registered")
        ran = guide.ran
        guide.ran = []
        await run_example(guide, example, run)
        guide.ran = ran
    return guide.models[key]


@contextlib.contextmanager
def weights_for(guide: Guide, job: dict[str, Any]) -> Iterator[None]:
    """Place the pretrained weights the job names, for one run."""
    name = job["config"]["model_name"]
    if job["framework"] == "huggingface":
        with kit.in_hub_cache(guide.hf_home, name, guide.tiny_bert):
            yield
    else:
        with kit.in_weights_dir(guide.weights_dir, name) as state:
            guide.placed[name] = state
            yield


async def run_example(guide: Guide, example: Example, run: Run) -> tuple[dict, Any, list]:
    """One run through the stack; checks it ended as ``run`` says."""
    parent_id = await model_of(guide, run.parent) if run.parent is not None else None
    job = job_for(example, parent_id)
    with weights_for(guide, job) if run.weights else contextlib.nullcontext():
        end, events = await run_to_end(guide.services, job)
    if run.expect == "rejected":
        assert isinstance(end, JobRejected), end
        assert any(run.says in e for e in end.errors), end.errors
    elif run.expect == "failed":
        assert isinstance(end, JobFailed), end
        assert run.says in end.reason and "Traceback" not in end.reason, end.reason
        assert not end.retriable and sum(isinstance(e, JobStarted) for e in events) <= 1
    else:
        assert isinstance(end, JobCompleted), end
        listed = await wait_listed(guide.services.projector, job["job_id"])
        assert listed["base_model_id"] == job["config"].get("model_id")
        guide.models[example.key] = job["job_id"]
    guide.ran.append(f"{run.expect}{' with weights placed' if run.weights else ''}")
    return job, end, events


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.key for e in EXAMPLES])
async def test_guide_example(guide_run: Guide, example: Example, summary: list[str]) -> None:
    outcome = OUTCOMES[example.key]
    guide_run.ran = []
    if outcome.answers is not None:
        answered = next(e for e in EXAMPLES if e.key == outcome.answers)
        end = (await run_example(guide_run, answered, Run("rejected")))[1]
        assert end.errors == example.body["errors"] and example.body["valid"] is False
        guide_run.ran.append(f"the answer to '{answered.key}'")
    for run in outcome.runs:
        job, end, events = await run_example(guide_run, example, run)
        if run.expect == "registered" and example.key in CHECKS:
            CHECKS[example.key](guide_run, job, events)
    summary.append(f"guide: {example.key!r}: {', then '.join(guide_run.ran)}")


# -- what each example must show beyond its outcome ------------------------------------------


def _chain(guide: Guide, job: dict[str, Any], events: list[Any]) -> None:
    kit.assert_started_from(guide.store, job["job_id"], job["config"]["model_id"])


def _torchvision(guide: Guide, job: dict[str, Any], events: list[Any]) -> None:
    after = kit.stored_weights(guide.store, job["job_id"])
    assert_only_head_trained(guide.placed["resnet50"], after, "fc.")
    assert after["fc.weight"].shape == (10, 2048)
    assert guide.store.get_json(model_key(job["job_id"], "metadata.json"))["pretrained"] is True


def _mixed_precision(guide: Guide, job: dict[str, Any], events: list[Any]) -> None:
    meta = guide.store.get_json(model_key(job["job_id"], "metadata.json"))
    assert meta["precision"] == "float32"  # no CUDA here: float16 needs a GradScaler on a GPU
    assert any("float16 needs a CUDA device" in w for w in meta["warnings"]), meta["warnings"]
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert {p.total_steps for p in progress} == {1}  # 2 batches, 4 accumulated a step


def _lora(guide: Guide, job: dict[str, Any], events: list[Any]) -> None:
    adapter = guide.store.get_json(model_key(job["job_id"], "adapters/adapter_config.json"))
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16


CHECKS: dict[str, Callable[[Guide, dict[str, Any], list[Any]], None]] = {
    "PyTorch Example": _chain,
    "3. Fine-tune the Model": _chain,
    "4. Continue Fine-tuning": _chain,
    "From TorchVision (PyTorch)": _torchvision,
    "Mixed Precision Training": _mixed_precision,
    "LoRA Fine-tuning (HuggingFace)": _lora,
}
