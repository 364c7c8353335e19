"""Job specs: what a job may ask for, with every default on the model.

Plain pydantic, no torch: the validator imports this module. The training code maps
the names allowed here (architectures, torchvision models, HF families) to builders.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from sparktrainer.contracts.access import bucket_name_problem, hub_name_problem
from sparktrainer.contracts.scheduling import DEFAULT_PRIORITY, Priority, Resources

Framework = Literal["pytorch", "huggingface"]  # what this deployment's trainers run
JobType = Literal["train", "finetune"]  # what a trainer runs
SWEEP_TYPE = "sweep"  # a search over jobs (contracts/sweeps.py), run by the sweep controller
FRAMEWORKS_KNOWN = ("pytorch", "tensorflow", "huggingface")  # the guide's list
FRAMEWORKS_RUN: tuple[str, ...] = get_args(Framework)
TRAINING_TYPES: tuple[str, ...] = get_args(JobType)
JOB_TYPES: tuple[str, ...] = (*TRAINING_TYPES, SWEEP_TYPE)

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_safe_id(value: str) -> str:
    """A model or job id is one path segment: no slashes, dots-only names or control chars."""
    if not _ID_RE.fullmatch(value) or value in (".", "..") or ".." in value:
        raise ValueError(
            f"'{value[:80]}' is not a valid id: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'"
        )
    return value


_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_VERSION_RE = re.compile(r"[1-9][0-9]{0,8}")
RESERVED_ALIASES = ("latest",)  # the highest version of a name that is not deleted


def check_model_name(value: str) -> str:
    """A registered model name follows the id rule (it is a Kafka key and a path segment)."""
    try:
        return check_safe_id(value)
    except ValueError as e:
        raise ValueError(str(e).replace("valid id", "valid model name", 1)) from None


def check_alias(value: str, *, settable: bool = False) -> str:
    """An alias: a letter, then letters, digits, '_' or '-' (64 at most); not like a version."""
    if not _ALIAS_RE.fullmatch(value) or re.fullmatch(r"[vV][0-9]+", value):
        raise ValueError(
            f"'{value[:80]}' is not a valid alias: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter, and not 'v' + digits"
        )
    if settable and value in RESERVED_ALIASES:
        raise ValueError(f"alias '{value}' is reserved: it always means the highest version")
    return value


def split_ref(value: str) -> tuple[str, int | None, str | None]:
    """``ID``, ``NAME:VERSION`` or ``NAME@ALIAS`` as (id or name, version, alias)."""
    if "@" in value:
        name, _, alias = value.partition("@")
        return check_model_name(name), None, check_alias(alias)
    if ":" in value:
        name, _, version = value.partition(":")
        if not _VERSION_RE.fullmatch(version):
            raise ValueError(
                f"'{value[:80]}': the version after ':' must be a number from 1 to 999999999"
            )
        return check_model_name(name), int(version), None
    return check_safe_id(value), None, None


def check_model_ref(value: str) -> str:
    """A model reference: ``ID``, ``NAME:VERSION`` or ``NAME@ALIAS``."""
    try:
        split_ref(value)
    except ValueError as e:
        raise ValueError(f"{e} (a model is named by ID, NAME:VERSION or NAME@ALIAS)") from None
    return value


def check_relative_key(value: str) -> str:
    """A path inside a prefix: relative, no '..' segments, no backslashes or NULs."""
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/") or "\\" in value or "\x00" in value or ".." in parts:
        raise ValueError(f"path '{value[:80]}' must stay inside its prefix (no '/', '..' or '\\')")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number (not NaN or infinity)")
    return value


SafeId = Annotated[str, AfterValidator(check_safe_id)]
ModelName = Annotated[str, AfterValidator(check_model_name)]
ModelRefText = Annotated[str, AfterValidator(check_model_ref)]
PosInt = Annotated[StrictInt, Field(gt=0)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[StrictFloat | StrictInt, AfterValidator(_finite)]
PosNumber = Annotated[StrictFloat | StrictInt, AfterValidator(_finite), Field(gt=0)]
Fraction = Annotated[StrictFloat | StrictInt, AfterValidator(_finite), Field(ge=0, lt=1)]


class Strict(BaseModel):
    """Base for spec parts: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use


class DataSpec(Strict):
    """Where training data comes from.

    ``source``: ``synthetic`` (default, seeded, shaped for the model), ``digits`` (scikit-learn's
    bundled 8x8 digits, offline: 64 features, 1,797 samples; a model of k < 10 classes trains
    on the digits 0..k-1; ``num_samples`` does not apply), or an ``s3://bucket/key`` URI of an
    ``.npz`` (X, y), a CSV with a label column, a JSONL/CSV text file, or an image folder
    prefix with class sub-folders.
    """

    source: str = "synthetic"
    format: Literal["auto", "npz", "csv", "jsonl", "image_folder"] = "auto"
    label_column: str = "label"
    text_field: str = "text"
    label_field: str = "label"
    num_samples: PosInt = 512
    validation_split: Fraction = 0.2
    seed: NonNegInt = 0

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v in ("synthetic", "digits"):
            return v
        if not v.startswith("s3://"):
            raise ValueError("must be 'synthetic', 'digits' or an s3://bucket/key URI")
        bucket, _, key = v[5:].partition("/")
        if not bucket:
            raise ValueError("s3 URI needs a bucket: s3://bucket/key")
        problem = bucket_name_problem(bucket)
        if problem:
            raise ValueError(problem)
        check_relative_key(key)
        return v


class DistributedSpec(Strict):
    """Data-parallel training over all local devices (DDP through torch.distributed)."""

    enabled: StrictBool = False
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    world_size: PosInt | None = None  # default: every local GPU, or 2 CPU processes


class LoraSpec(Strict):
    """LoRA adapters through peft; target_modules default to the model family's."""

    enabled: StrictBool = False
    r: PosInt = 8
    alpha: PosNumber = 16
    dropout: Fraction = 0.05
    target_modules: list[str] | None = None
    merge: StrictBool = False


class TrainingOptions(Strict):
    """What every recipe shares: the loop, its precision, its schedule, its data."""

    epochs: PosInt = 10
    batch_size: PosInt = 32
    learning_rate: PosNumber = 0.001
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: Annotated[Number, Field(ge=0)] = 0.0
    scheduler: Literal["none", "cosine", "step", "linear", "onecycle"] = "none"
    warmup_ratio: Fraction = 0.0
    precision: Literal["float32", "float16", "bfloat16"] = "float32"
    gradient_accumulation_steps: PosInt = 1
    distributed: DistributedSpec = DistributedSpec()
    seed: NonNegInt = 42
    data: DataSpec = DataSpec()
    checkpoint_every_steps: NonNegInt = 0
    max_runtime_s: PosNumber | None = None

    kind: ClassVar[str] = "base"


class MLPConfig(TrainingOptions):
    """The guide's custom fully-connected network."""

    architecture: Literal["custom"] = "custom"
    input_size: PosInt
    output_size: PosInt
    hidden_layers: list[PosInt] = [512, 256, 128]
    activation: Literal["relu", "gelu", "tanh", "leaky_relu", "sigmoid", "silu", "elu"] = "relu"
    dropout: Fraction = 0.0
    freeze_layers: StrictBool = False

    kind: ClassVar[str] = "pytorch.mlp"


class ResNetConfig(TrainingOptions):
    """The guide's custom ResNet on images of ``input_shape`` (channels, height, width)."""

    architecture: Literal["resnet"] = "resnet"
    num_classes: PosInt
    num_blocks: list[PosInt] = [2, 2, 2, 2]
    channels: list[PosInt] = [64, 128, 256, 512]
    input_shape: tuple[PosInt, PosInt, PosInt] = (3, 32, 32)
    freeze_layers: StrictBool = False

    kind: ClassVar[str] = "pytorch.resnet"

    @model_validator(mode="after")
    def _stages(self) -> ResNetConfig:
        if len(self.num_blocks) != len(self.channels):
            raise ValueError(
                f"num_blocks has {len(self.num_blocks)} stages but channels has "
                f"{len(self.channels)}: give one channel count per stage"
            )
        return self


class TorchvisionConfig(TrainingOptions):
    """Fine-tune a torchvision classifier; its own head is replaced for num_classes."""

    model_source: Literal["torchvision"] = "torchvision"
    model_name: Literal["resnet18", "resnet50", "vgg16", "densenet121"]
    num_classes: PosInt
    pretrained: StrictBool = True
    freeze_layers: StrictBool = True
    input_shape: tuple[PosInt, PosInt, PosInt] = (3, 224, 224)

    kind: ClassVar[str] = "pytorch.torchvision"


class RegisteredPyTorchConfig(TrainingOptions):
    """Fine-tune a model from the registry; its architecture comes from its stored config."""

    model_source: Literal["model_id"] = "model_id"
    model_id: ModelRefText  # the validator resolves it to the concrete id
    num_classes: PosInt | None = None
    freeze_layers: StrictBool = False
    learning_rate: PosNumber = 0.0001

    kind: ClassVar[str] = "pytorch.registered"


class HuggingFaceConfig(TrainingOptions):
    """Train or fine-tune a transformers model; the subclasses say where the model comes from."""

    model_source: Literal["huggingface", "local", "model_id"] = "huggingface"
    model_name: str | None = Field(default=None, max_length=256)
    model_path: str | None = Field(default=None, max_length=1024)
    model_id: ModelRefText | None = None
    task_type: Literal["classification", "generation"] = "classification"
    num_classes: PosInt = 2
    max_length: PosInt = 128
    epochs: PosInt = 3
    batch_size: PosInt = 16
    learning_rate: PosNumber = 2e-5
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lora: LoraSpec = LoraSpec()
    freeze_layers: StrictBool = False

    @model_validator(mode="after")
    def _source_fields(self) -> HuggingFaceConfig:
        needed = {"huggingface": "model_name", "local": "model_path", "model_id": "model_id"}
        field = needed[self.model_source]
        if getattr(self, field) in (None, ""):
            raise ValueError(f"model_source '{self.model_source}' needs '{field}'")
        problem = hub_name_problem(self.model_name) if self.model_name is not None else None
        if problem:
            raise ValueError(problem)
        return self


class HubModelConfig(HuggingFaceConfig):
    """A model from the Hugging Face hub, by name (``bert-base-uncased``, ``org/model``)."""

    model_source: Literal["huggingface"] = "huggingface"

    kind: ClassVar[str] = "huggingface.hub"


class LocalModelConfig(HuggingFaceConfig):
    """A transformers model folder on the trainer's own disk."""

    model_source: Literal["local"] = "local"

    kind: ClassVar[str] = "huggingface.local"


class RegisteredHFConfig(HuggingFaceConfig):
    """Fine-tune a Hugging Face model from the registry."""

    model_source: Literal["model_id"] = "model_id"

    kind: ClassVar[str] = "huggingface.registered"


class JobRequest(BaseModel):
    """A job as a person writes it (the guide's shape): the body of a submission."""

    model_config = ConfigDict(extra="forbid")

    job_id: SafeId | None = None
    name: str | None = Field(default=None, max_length=256)
    type: str
    framework: str
    config: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(default=None, max_length=4096)
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    license: str | None = Field(default=None, max_length=128)
    domain: str | None = Field(default=None, max_length=128)
    submitted_by: str | None = Field(default=None, max_length=256)
    # Scheduling (contracts/scheduling.py): which topic the job waits on, and in what order.
    priority: Priority = DEFAULT_PRIORITY
    resources: Resources = Resources()
    # Lineage of a sweep's trial (set by the sweep controller)
    sweep_id: SafeId | None = None
    trial: NonNegInt | None = None
    register_as: ModelName | None = Field(
        default=None, description="Register the model as the next version of this name"
    )
