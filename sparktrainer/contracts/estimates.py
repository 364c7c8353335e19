"""What a job will cost before anything is built: parameters, memory, data bytes, processes.

Plain arithmetic over a config (and, for a fine-tune, its parent's stored architecture), no
torch: the validator caps jobs with it and the trainer checks again where the job runs.
Activation figures are what autograd keeps for the backward pass, counted per sample; the
torchvision ones were measured with ``torch.autograd.graph.saved_tensors_hooks`` on torch
2.14 (bytes per input pixel), the others follow each architecture's layers. Estimates err
high: a job refused here would not have fitted; a job admitted can still be stopped by the
trainer's memory budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

F32 = 4
DIGITS_SAMPLES = 1797  # scikit-learn's bundled digits
DIGITS_FEATURES = 64

# torchvision classifiers: (parameters without the head, head input features,
# saved activation bytes per input pixel per sample in float32, measured).
TORCHVISION: dict[str, tuple[int, int, int]] = {
    "resnet18": (11_176_512, 512, 452),
    "resnet50": (23_508_032, 2048, 1766),
    "vgg16": (134_260_544, 4096, 1507),
    "densenet121": (6_953_856, 1024, 2681),
}
# Optimizer state per trainable parameter, in parameter-sized tensors.
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1}
HALF_PRECISION_ACTIVATIONS = 0.6  # autocast keeps some float32 copies (norms, losses)


@dataclass(frozen=True)
class ModelSize:
    """A model's parameters and what one sample's forward pass keeps for backward."""

    parameters: int
    trainable: int
    activation_bytes_per_sample: int


@dataclass(frozen=True)
class ResourceEstimate:
    """What one job needs: per training process, times processes, plus its data in memory."""

    parameters: int
    trainable_parameters: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int  # one micro-batch, one process
    data_bytes: int
    processes: int

    @property
    def process_bytes(self) -> int:
        """One training process: weights, a best-weights copy, gradients, optimizer, activations."""
        return (
            2 * self.weight_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.activation_bytes
        )

    @property
    def memory_bytes(self) -> int:
        """The whole job (the data is loaded once and shared by the processes)."""
        return self.process_bytes * self.processes + self.data_bytes


# -- model sizes ---------------------------------------------------------------------------


def mlp_size(input_size: int, hidden: list[int], output: int, dropout: float) -> ModelSize:
    """A stack of Linear layers: weights and biases; inputs, activations, dropout masks kept."""
    widths = [input_size, *hidden, output]
    params = sum(a * b + b for a, b in pairwise(widths))
    per_layer = 3 if dropout > 0 else 2  # linear output + activation output (+ dropout mask)
    activations = (input_size + per_layer * sum(hidden) + 2 * output) * F32
    return ModelSize(params, params, activations)


def resnet_size(
    num_classes: int, num_blocks: list[int], channels: list[int], input_shape: list[int]
) -> ModelSize:
    """The guide's ResNet: a 3x3 stem, BasicBlock stages (stride 2 after the first), ``fc``."""
    c_in, height, width = (int(v) for v in input_shape)
    params = c_in * channels[0] * 9 + 2 * channels[0]
    activations = 3 * channels[0] * height * width  # stem: conv out, norm out, relu out
    in_ch = channels[0]
    for stage, (blocks, out_ch) in enumerate(zip(num_blocks, channels, strict=False)):
        if stage > 0:
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        for b in range(blocks):
            src = in_ch if b == 0 else out_ch
            params += src * out_ch * 9 + out_ch * out_ch * 9 + 4 * out_ch
            activations += 6 * out_ch * height * width
            if b == 0 and (stage > 0 or src != out_ch):
                params += src * out_ch + 2 * out_ch
                activations += 2 * out_ch * height * width
        in_ch = out_ch
    params += in_ch * num_classes + num_classes
    return ModelSize(params, params, activations * F32 + in_ch * F32)


def torchvision_size(model_name: str, num_classes: int, input_shape: list[int]) -> ModelSize:
    """A torchvision classifier with its head replaced for ``num_classes``."""
    body, head_in, per_pixel = TORCHVISION[model_name]
    params = body + head_in * num_classes + num_classes
    pixels = int(input_shape[1]) * int(input_shape[2])
    return ModelSize(params, params, per_pixel * pixels)


def transformer_size(hf: dict[str, Any], seq_len: int, num_labels: int | None) -> ModelSize:
    """A transformers model from its ``config.json``: embeddings, blocks, the task head.

    Per layer and sample, training keeps about 68*s*h + 10*a*s^2 bytes in float32 (the
    Megatron-LM accounting of activations, doubled for 32-bit; eager attention included).
    """
    h = _int(hf, "hidden_size", "d_model", "n_embd", default=768)
    layers = _int(hf, "num_hidden_layers", "num_layers", "n_layer", default=12)
    heads = _int(hf, "num_attention_heads", "num_heads", "n_head", default=max(1, h // 64))
    inter = _int(hf, "intermediate_size", "d_ff", "n_inner", "ffn_dim", default=4 * h)
    vocab = _int(hf, "vocab_size", default=32_000)
    positions = _int(hf, "max_position_embeddings", "n_positions", default=0)
    family = str(hf.get("model_type", "")).lower()
    rotary = family in ROTARY_FAMILIES  # no learned positions, gated MLP, a bare score head
    block = 4 * h * h + (3 if rotary else 2) * h * inter + 6 * h + inter
    params = vocab * h + layers * block + (0 if rotary else positions * h)
    if num_labels is None and not hf.get("tie_word_embeddings", True):
        params += vocab * h  # a separate language-model head
    if num_labels is not None:
        params += h * num_labels + (0 if rotary else h * h)  # (BERT-style pooler)
    seq = max(1, seq_len)
    per_layer = 68 * seq * h + 10 * heads * seq * seq
    logits = seq * (num_labels or vocab) * F32 * 2
    return ModelSize(params, params, layers * per_layer + logits)


ROTARY_FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "gemma", "gemma2", "phi3")


def lora_trainable(hf: dict[str, Any], r: int, targets: int, num_labels: int | None) -> int:
    """Adapter parameters: r*(in+out) per targeted projection per layer, plus the head."""
    h = _int(hf, "hidden_size", "d_model", "n_embd", default=768)
    layers = _int(hf, "num_hidden_layers", "num_layers", "n_layer", default=12)
    head = h * h + h * num_labels if num_labels is not None else 0
    return layers * max(1, targets) * r * 2 * h + head


def _int(doc: dict[str, Any], *names: str, default: int) -> int:
    for name in names:
        value = doc.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


# -- a job's estimate ----------------------------------------------------------------------


def job_estimate(
    size: ModelSize,
    *,
    micro_batch: int,
    optimizer: str,
    precision: str,
    data_bytes: int,
    processes: int,
) -> ResourceEstimate:
    """Combine a model's size with how the job trains it."""
    activations = size.activation_bytes_per_sample * max(1, micro_batch)
    if precision != "float32":
        activations = int(activations * HALF_PRECISION_ACTIVATIONS)
    return ResourceEstimate(
        parameters=size.parameters,
        trainable_parameters=size.trainable,
        weight_bytes=size.parameters * F32,
        gradient_bytes=size.trainable * F32,
        optimizer_bytes=OPTIMIZER_SLOTS.get(optimizer, 2) * size.trainable * F32,
        activation_bytes=activations,
        data_bytes=data_bytes,
        processes=processes,
    )


def tensor_data_bytes(source: str, num_samples: int, sample_shape: tuple[int, ...]) -> int:
    """Features and labels in memory after shaping for the model (S3 sources: checked on read).

    Images are resized in memory (a copy beside the stored one), so they count twice.
    """
    samples = DIGITS_SAMPLES if source == "digits" else num_samples
    if source.startswith("s3://"):
        return 0  # known only from the object's size: the trainer checks it before download
    copies = 2 if len(sample_shape) == 3 else 1
    return samples * (math.prod(sample_shape) * F32 * copies + 8)


def text_data_bytes(source: str, num_samples: int, max_length: int) -> int:
    """Token ids (int64) of every text, padded to ``max_length`` at most."""
    if source.startswith("s3://"):
        return 0
    return num_samples * (max_length * 8 * 2 + 8)
