#!/usr/bin/env bash
# The GPU checks, in one script for an NVIDIA machine (this repo's CI machines have no GPU):
#   1. the recipe in float32, float16 (autocast + GradScaler) and bfloat16 on cuda:0;
#   2. resume on the GPU (checkpoint with CUDA RNG and GradScaler state, then go on);
#   3. DDP over the local GPUs (1-GPU DDP on a single-GPU box) through NCCL;
#   4. the recipe's samples/s vs a bare loop on the GPU (float32 and bfloat16).
# It prints what it saw as JSON lines and exits non-zero on the first broken promise.
#   PYTHON=/path/to/python bench/gpu_check.sh      (needs torch with CUDA + this repo's deps)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi -L || true

# The checks go to a file with a __main__ guard: DDP ranks are spawned processes, and spawn
# re-imports the parent's main module (a heredoc on stdin cannot be re-imported).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/gpu_paths.py" <<'PYEOF'
import json, tempfile
from pathlib import Path

import torch

from sparktrainer.contracts.events import CheckpointSaved, JobStarted, JobValidated
from sparktrainer.contracts.jobspec import CONFIG_KINDS
from sparktrainer.errors import JobCancelledError
from sparktrainer.settings import Settings
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.job.stopping import StopFlag
from sparktrainer.training.recipes import run_recipe_job
from train_throughput import MemoryStore

STORE = MemoryStore()
RESNET = {"num_classes": 10, "num_blocks": [2, 2], "channels": [32, 64], "input_shape": [3, 32, 32],
          "epochs": 3, "batch_size": 32, "learning_rate": 0.003, "data": {"source": "digits"}}
MLP = {"input_size": 64, "output_size": 10, "hidden_layers": [256], "epochs": 3,
       "batch_size": 64, "data": {"source": "digits"}}


def environment():
    assert torch.cuda.is_available(), "no CUDA device: this script is for an NVIDIA machine"
    print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                  "bf16": torch.cuda.is_bf16_supported()}))


def run(job_id, config, kind="pytorch.resnet", attempt=1, stop_after=None):
    events = []
    job = JobValidated(job_id=job_id, name=job_id, type="train", framework="pytorch",
                       config_kind=kind,
                       config=CONFIG_KINDS[kind].model_validate(config).model_dump(mode="json"))
    stop = StopFlag()

    def emit(event):
        events.append(event)
        if stop_after is not None and isinstance(event, CheckpointSaved) and event.epoch >= stop_after:
            stop.set("cancel", "gpu_check stops here")

    ctx = JobContext(job=job, store=STORE, settings=Settings(), workdir=Path(tempfile.mkdtemp()),
                     emit=emit, attempt=attempt, stop=stop)
    try:
        registered = run_recipe_job(ctx)
    except JobCancelledError:
        registered = None
    meta = json.loads(STORE.objects[f"models/{job_id}/metadata.json"]) if registered else {}
    started = next(e for e in events if isinstance(e, JobStarted))
    return registered, meta, started


def precisions():
    for precision in ("float32", "float16", "bfloat16"):
        reg, meta, started = run(f"gpu-{precision}", {**RESNET, "precision": precision})
        seen = {"check": "precision", "asked": precision, "used": meta["precision"],
                "device": started.device, "warnings": meta["warnings"],
                "accuracy": round(reg.metrics["accuracy"], 4),
                "best_val_loss": round(reg.metrics["best_val_loss"], 4)}
        print(json.dumps(seen))
        assert started.device.startswith("cuda:0"), seen
        assert meta["precision"] == precision and not meta["warnings"], seen
        # Learned (chance: accuracy 0.1, loss 2.3). The last epoch's validation swings with
        # batch-norm statistics, so the best validation loss is the steadier bar.
        assert reg.metrics["accuracy"] > 0.8 and reg.metrics["best_val_loss"] < 1.0, seen


def resume():
    run("gpu-resume", {**RESNET, "precision": "float16"}, stop_after=1)
    reg, _, again = run("gpu-resume", {**RESNET, "precision": "float16"}, attempt=2)
    seen = {"check": "resume", "resumed_from_epoch": again.resumed_from_epoch,
            "epochs": reg.metrics["epochs"], "accuracy": round(reg.metrics["accuracy"], 4)}
    print(json.dumps(seen))
    assert (again.resumed_from_epoch or 0) >= 1 and reg.metrics["epochs"] == 3, seen


def ddp():
    single, _, _ = run("gpu-single", MLP, kind="pytorch.mlp")
    spread, _, started = run("gpu-ddp", {**MLP, "distributed": {"enabled": True}},
                             kind="pytorch.mlp")
    seen = {"check": "ddp", "device": started.device, "val_loss": spread.metrics["val_loss"],
            "single_val_loss": single.metrics["val_loss"]}
    print(json.dumps(seen))
    assert "nccl" in started.device, seen
    assert abs(spread.metrics["val_loss"] - single.metrics["val_loss"]) < 0.05, seen


if __name__ == "__main__":
    environment()
    precisions()
    resume()
    ddp()
    print(json.dumps({"check": "recipe paths", "ok": True}))
PYEOF
"$PY" "$tmp/gpu_paths.py"

for precision in float32 bfloat16; do
  "$PY" bench/train_throughput.py --model resnet18 --shape 3 32 32 --batch 256 --samples 16384 \
    --epochs 3 --rounds 3 --precision "$precision"
done
# The Hugging Face recipe: LoRA fine-tune of the small BERT in bf16 (samples/s, peak memory).
bash bench/gpu_check_hf.sh
echo '{"check": "gpu_check.sh", "ok": true}'
