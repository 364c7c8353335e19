"""The job-kind registry: every kind of training job SparkTrainer runs, declared once.

A kind is what a job's ``framework`` and ``config`` select: its config class, the recipe the
trainer runs (a dotted reference, imported only by the training worker), what its registered
parent must hold, and how much it will cost (its resource estimate). The validator picks a
kind and checks it, the caps read its estimate, the registered-model checks read its parent
rule, schemas list its config class, and the trainer looks its recipe up here: a new kind of
job is one entry in :data:`KINDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from sparktrainer.contracts import estimates as est
from sparktrainer.contracts.estimates import ModelSize, ResourceEstimate
from sparktrainer.contracts.hf_modules import default_targets, model_type_of
from sparktrainer.contracts.jobspec import (
    Framework,
    HubModelConfig,
    HuggingFaceConfig,
    JobRequest,
    LocalModelConfig,
    MLPConfig,
    RegisteredHFConfig,
    RegisteredPyTorchConfig,
    ResNetConfig,
    TorchvisionConfig,
    TrainingOptions,
)

PYTORCH_RECIPE = "sparktrainer.training.pytorch.recipe:train_pytorch"
HF_RECIPE = "sparktrainer.training.hf.recipe:train_huggingface"
PYTORCH_BUILDERS = ("mlp", "resnet", "torchvision")
HF_WEIGHTS = ("model.safetensors", "adapters/adapter_model.safetensors")

Architecture = dict[str, Any]  # a model's stored config.json
Estimator = Callable[[Any, Architecture | None], ResourceEstimate | None]
# (where in the job, the value asked for, the name of the ``Limits`` cap that bounds it)
Ask = tuple[str, float, str]


@dataclass(frozen=True)
class Parent:
    """A registered model a fine-tune starts from, as the object store holds it."""

    model_id: str
    metadata: dict[str, Any]
    architecture: Architecture | None  # its config.json (None: missing or unreadable)
    files: frozenset[str]  # names under models/{id}/


@dataclass(frozen=True)
class ParentRule:
    """What a fine-tune kind's parent must be: its framework, files and architecture."""

    framework: str
    required: tuple[str, ...]
    weights: tuple[str, ...] = ()  # at least one of these
    architecture_problem: Callable[[Architecture | None], str | None] = lambda arch: None

    def problems(self, parent: Parent) -> list[str]:
        """Why ``parent`` cannot be fine-tuned by this kind (empty when it can)."""
        found = parent.metadata.get("framework", "pytorch")
        if found != self.framework:
            return [
                f"Model '{parent.model_id}' is a {found} model: fine-tune it with "
                f"framework '{found}'"
            ]
        missing = [f for f in self.required if f not in parent.files]
        if missing:
            return [f"Model '{parent.model_id}' is missing required file(s): {', '.join(missing)}"]
        if self.weights and not any(w in parent.files for w in self.weights):
            return [f"Model '{parent.model_id}' is missing its weights ({self.weights[0]})"]
        problem = self.architecture_problem(parent.architecture)
        return [f"Model '{parent.model_id}' {problem}"] if problem else []


@dataclass(frozen=True)
class JobKind:
    """One kind of job: how it is selected, parsed, costed, checked and run."""

    name: str
    framework: Framework
    selector: tuple[str, str]  # (config field, value) that picks this kind
    config: type[TrainingOptions]
    recipe: str  # "module:function", run by the training worker
    estimate: Estimator
    asks: Callable[[Any], list[Ask]]  # the sizes this kind's config asks for, beyond the common
    parent: ParentRule | None = None

    def parent_id(self, config: Any) -> str | None:
        """The registered model this job starts from, if the kind has one."""
        return str(config.model_id) if self.parent is not None else None

    def all_asks(self, config: Any) -> list[Ask]:
        """Every size the job asks for: what every kind shares, then this kind's own."""
        return common_asks(config) + self.asks(config)


# -- what a job asks for -------------------------------------------------------------------


def common_asks(c: TrainingOptions) -> list[Ask]:
    """The sizes every kind's config has."""
    asks: list[Ask] = [
        ("config.epochs", c.epochs, "epochs"),
        ("config.batch_size", c.batch_size, "batch_size"),
        ("config.learning_rate", c.learning_rate, "learning_rate"),
        ("config.gradient_accumulation_steps", c.gradient_accumulation_steps,
         "gradient_accumulation_steps"),
        ("config.data.num_samples", c.data.num_samples, "dataset_samples"),
        ("config.seed", c.seed, "seed"),
        ("config.data.seed", c.data.seed, "seed"),
    ]  # fmt: skip
    if c.max_runtime_s is not None:
        asks.append(("config.max_runtime_s", c.max_runtime_s, "job_runtime_s"))
    if c.distributed.world_size is not None:
        asks.append(("config.distributed.world_size", c.distributed.world_size, "world_size"))
    return asks


def request_asks(req: JobRequest) -> list[Ask]:
    """The sizes a job asks for outside its config: its resources, and its trial number."""
    asks: list[Ask] = [
        ("resources.gpus", req.resources.gpus, "gpus"),
        ("resources.min_gpu_memory_gib", req.resources.min_gpu_memory_gib, "gpu_memory_gib"),
    ]
    if req.trial is not None:
        asks.append(("trial", req.trial, "sweep_trials"))
    return asks


def _image_asks(shape: tuple[int, int, int]) -> list[Ask]:
    return [
        ("config.input_shape[0] (channels)", shape[0], "image_channels"),
        ("config.input_shape[1] (height)", shape[1], "image_side"),
        ("config.input_shape[2] (width)", shape[2], "image_side"),
        ("config.input_shape (values per image)", math.prod(shape), "input_size"),
    ]


def _mlp_asks(c: MLPConfig) -> list[Ask]:
    return [
        ("config.input_size", c.input_size, "input_size"),
        ("config.output_size", c.output_size, "num_classes"),
        ("config.hidden_layers (count)", len(c.hidden_layers), "layers"),
        ("config.hidden_layers (widest)", max(c.hidden_layers, default=0), "hidden_units"),
    ]


def _resnet_asks(c: ResNetConfig) -> list[Ask]:
    return [
        ("config.num_classes", c.num_classes, "num_classes"),
        ("config.num_blocks (total)", sum(c.num_blocks), "layers"),
        ("config.channels (widest)", max(c.channels), "hidden_units"),
        *_image_asks(c.input_shape),
    ]


def _torchvision_asks(c: TorchvisionConfig) -> list[Ask]:
    return [("config.num_classes", c.num_classes, "num_classes"), *_image_asks(c.input_shape)]


def _registered_asks(c: RegisteredPyTorchConfig) -> list[Ask]:
    return [("config.num_classes", c.num_classes, "num_classes")] if c.num_classes else []


def _hf_asks(c: HuggingFaceConfig) -> list[Ask]:
    asks: list[Ask] = [
        ("config.num_classes", c.num_classes, "num_classes"),
        ("config.max_length", c.max_length, "sequence_length"),
    ]
    if c.lora.enabled:
        asks.append(("config.lora.r", c.lora.r, "lora_r"))
    return asks


# -- estimators ----------------------------------------------------------------------------


def _job(config: TrainingOptions, size: ModelSize, data_bytes: int) -> ResourceEstimate:
    spec = config.distributed
    processes = (spec.world_size or 2) if spec.enabled else 1
    return est.job_estimate(
        size,
        micro_batch=math.ceil(config.batch_size / processes),
        optimizer=config.optimizer,
        precision=config.precision,
        data_bytes=data_bytes,
        processes=processes,
    )


def _tensor_data(config: TrainingOptions, shape: tuple[int, ...]) -> int:
    return est.tensor_data_bytes(config.data.source, config.data.num_samples, shape)


def _mlp(c: MLPConfig, _: Architecture | None) -> ResourceEstimate:
    size = est.mlp_size(c.input_size, list(c.hidden_layers), c.output_size, float(c.dropout))
    return _job(c, size, _tensor_data(c, (c.input_size,)))


def _resnet(c: ResNetConfig, _: Architecture | None) -> ResourceEstimate:
    shape = list(c.input_shape)
    size = est.resnet_size(c.num_classes, list(c.num_blocks), list(c.channels), shape)
    return _job(c, size, _tensor_data(c, tuple(shape)))


def _torchvision(c: TorchvisionConfig, _: Architecture | None) -> ResourceEstimate:
    size = est.torchvision_size(c.model_name, c.num_classes, list(c.input_shape))
    return _job(c, size, _tensor_data(c, tuple(c.input_shape)))


def stored_pytorch_size(arch: Architecture, num_classes: int | None) -> ModelSize | None:
    """The size of a registered PyTorch model rebuilt from its config.json (head resized)."""
    p = arch.get("params")
    if not isinstance(p, dict):
        return None
    try:
        if arch.get("builder") == "mlp":
            out = num_classes or int(p["output_size"])
            return est.mlp_size(
                int(p["input_size"]),
                [int(v) for v in p["hidden_layers"]],
                out,
                float(p["dropout"]),
            )
        shape = [int(v) for v in p["input_shape"]]
        classes = num_classes or int(p["num_classes"])
        if arch.get("builder") == "resnet":
            blocks, chans = [int(v) for v in p["num_blocks"]], [int(v) for v in p["channels"]]
            return est.resnet_size(classes, blocks, chans, shape)
        if arch.get("builder") == "torchvision" and p.get("model_name") in est.TORCHVISION:
            return est.torchvision_size(str(p["model_name"]), classes, shape)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return None


def _input_shape(arch: Architecture) -> tuple[int, ...]:
    shape = arch.get("input_shape")
    if isinstance(shape, list) and all(isinstance(v, int) and v > 0 for v in shape):
        return tuple(shape)
    return (1,)


def _registered_pytorch(
    c: RegisteredPyTorchConfig, arch: Architecture | None
) -> ResourceEstimate | None:
    size = stored_pytorch_size(arch, c.num_classes) if arch is not None else None
    if size is None or arch is None:
        return None
    return _job(c, size, _tensor_data(c, _input_shape(arch)))


def _huggingface(c: HuggingFaceConfig, arch: Architecture | None) -> ResourceEstimate | None:
    if arch is None:
        return None  # a hub model's config is read by the trainer, which estimates then
    labels = c.num_classes if c.task_type == "classification" else None
    size = est.transformer_size(arch, c.max_length, labels)
    if c.lora.enabled:
        targets = c.lora.target_modules or default_targets(model_type_of(arch)) or ["q", "v"]
        size = ModelSize(
            size.parameters,
            est.lora_trainable(arch, c.lora.r, len(targets), labels),
            size.activation_bytes_per_sample,
        )
    data = est.text_data_bytes(c.data.source, c.data.num_samples, c.max_length)
    return _job(c, size, data)


# -- parents -------------------------------------------------------------------------------


def _pytorch_architecture_problem(arch: Architecture | None) -> str | None:
    complete = (
        isinstance(arch, dict)
        and arch.get("builder") in PYTORCH_BUILDERS
        and isinstance(arch.get("params"), dict)
        and bool(arch["params"])
    )
    if complete:
        return None
    return (
        "has incomplete architecture information in config.json: it needs 'builder' "
        f"(one of {', '.join(PYTORCH_BUILDERS)}) and 'params' to be rebuilt"
    )


PYTORCH_PARENT = ParentRule(
    "pytorch", ("model.pth", "config.json"), architecture_problem=_pytorch_architecture_problem
)
HF_PARENT = ParentRule("huggingface", ("config.json",), weights=HF_WEIGHTS)


# -- the registry --------------------------------------------------------------------------

KINDS: dict[str, JobKind] = {
    k.name: k
    for k in (
        JobKind("pytorch.mlp", "pytorch", ("architecture", "custom"), MLPConfig,
                PYTORCH_RECIPE, _mlp, _mlp_asks),
        JobKind("pytorch.resnet", "pytorch", ("architecture", "resnet"), ResNetConfig,
                PYTORCH_RECIPE, _resnet, _resnet_asks),
        JobKind("pytorch.torchvision", "pytorch", ("model_source", "torchvision"),
                TorchvisionConfig, PYTORCH_RECIPE, _torchvision, _torchvision_asks),
        JobKind("pytorch.registered", "pytorch", ("model_source", "model_id"),
                RegisteredPyTorchConfig, PYTORCH_RECIPE, _registered_pytorch, _registered_asks,
                PYTORCH_PARENT),
        JobKind("huggingface.hub", "huggingface", ("model_source", "huggingface"),
                HubModelConfig, HF_RECIPE, _huggingface, _hf_asks),
        JobKind("huggingface.local", "huggingface", ("model_source", "local"),
                LocalModelConfig, HF_RECIPE, _huggingface, _hf_asks),
        JobKind("huggingface.registered", "huggingface", ("model_source", "model_id"),
                RegisteredHFConfig, HF_RECIPE, _huggingface, _hf_asks, HF_PARENT),
    )
}  # fmt: skip
# The config fields that select a kind, in the order they are consulted, per framework; a
# framework with a default selection uses it when the config names none.
SELECTING_FIELDS: dict[str, tuple[str, ...]] = {
    "pytorch": ("model_source", "architecture"),
    "huggingface": ("model_source",),
}
DEFAULT_SELECTION: dict[str, tuple[str, str]] = {"huggingface": ("model_source", "huggingface")}
CONFIG_CLASSES: tuple[type[TrainingOptions], ...] = tuple(k.config for k in KINDS.values())


def choices(framework: str, field: str) -> dict[str, JobKind]:
    """The kinds a framework's config field selects, by the field's value."""
    return {
        k.selector[1]: k
        for k in KINDS.values()
        if k.framework == framework and k.selector[0] == field
    }


def kind_of(name: str) -> JobKind:
    """The kind of a ``config_kind`` name (KeyError for an unknown one)."""
    return KINDS[name]


if TYPE_CHECKING:
    JobConfig = TrainingOptions
else:
    JobConfig = Union[CONFIG_CLASSES]  # noqa: UP007 - every kind's config class, from KINDS
