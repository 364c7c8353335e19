"""Load and memory: deployable consumers under bursts and long job sequences.

A validator process answers three bursts of 10,000 mixed submissions: every record is answered
exactly once, its group's lag returns to zero, and its resident memory stops growing. A
trainer process runs 50 tiny jobs one after another: all complete on one warm worker, and the
memory of the trainer and of its worker levels off.

Each consumer runs as deployed (``python -m consumers.NAME`` code: ``serve()``, SIGTERM a
graceful stop) with its load driven from inside its process on the in-memory broker
(``load_kit.py``): the records through a real broker's shared topics would cost minutes and
slow every later test reading them, and the log is freed between rounds so the process's
memory is the consumer's. The trainer uses the stack's S3 (a bucket of its own); the validator
runs without S3, as it may (its id claims under a 1,000 burst are test_validator's).

Counts and memory only: no timing assertions (the CI machine is small and shared).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from statistics import mean

import pytest

from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST, ROUNDS = 10_000, 3
MB = 2**20
# RSS after the third burst may exceed that after the second by this much: a leak of even
# 1.5 KB per record (a kept record, event or task) would add 15 MB per 10,000.
VALIDATOR_RSS_SLACK_BYTES = 15 * MB
JOBS, WARM_UP = 50, 10
# Mean RSS over jobs 40-50 vs 30-40 (flat within ~1 MB when healthy): a leak of ~1 MB a job
# (a dataset, a model with its optimizer) adds ~10 MB between the two windows.
TRAINER_RSS_SLACK_BYTES, TRAINER_RSS_SLACK_SHARE = 4 * MB, 0.005
RUN_TIMEOUT_S = 540


def load_env(stack: Settings, home: Path, *, s3: bool) -> dict[str, str]:
    """The environment of a load process: Kafka in its own memory, S3 in a bucket of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
    env |= {
        "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": "memory://load",
        "SPARKTRAINER_LOG_LEVEL": "WARNING",
        "SPARKTRAINER_HOME": str(home),
    }
    if s3:
        bucket = f"load-{uuid.uuid4().hex[:12]}"
        ObjectStore.from_settings(stack.model_copy(update={"s3_bucket": bucket})).ensure_bucket()
        env |= {
            "SPARKTRAINER_S3_ENDPOINT": str(stack.s3_endpoint),
            **{
                f"SPARKTRAINER_{name.upper()}": secret.get_secret_value()
                for name in ("s3_access_key", "s3_secret_key")
                if (secret := getattr(stack, name)) is not None
            },
            "SPARKTRAINER_S3_BUCKET": bucket,
        }
    return env


async def run_load(env: dict[str, str], *args: str) -> list[dict]:
    """Run ``load_kit`` to its end; the lines it reported (fails on an error or a bad exit)."""

    def run() -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.load_kit", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    done = await asyncio.to_thread(run)
    lines = [json.loads(x) for x in done.stdout.decode().splitlines() if x.startswith("{")]
    errors = [x["error"] for x in lines if "error" in x]
    assert not errors and done.returncode == 0, (done.returncode, errors, done.stderr[-3000:])
    return lines  # exit 0: SIGTERM stopped it gracefully


async def test_validator_process_answers_bursts_and_its_memory_levels_off(stack, tmp_path) -> None:
    rounds = await run_load(
        load_env(stack, tmp_path, s3=False), "validator", str(ROUNDS), str(BURST)
    )
    assert [r["round"] for r in rounds] == [1, 2, 3]
    for r in rounds:
        assert r["sent"] == r["answered_once"] == r["answers"] == BURST, r  # each exactly once
    rss = [r["rss"] for r in rounds]
    grown = rss[2] - rss[1]
    assert grown <= VALIDATOR_RSS_SLACK_BYTES, (
        f"validator RSS after each burst: {[round(r / MB, 1) for r in rss]} MB; "
        f"grew {grown / MB:.1f} MB in the third burst"
    )


def levels_off(label: str, series: list[int]) -> None:
    """Mean over jobs 40-50 within the slack of the mean over jobs 30-40."""
    before, after = mean(series[30:40]), mean(series[40:50])
    slack = TRAINER_RSS_SLACK_BYTES + TRAINER_RSS_SLACK_SHARE * before
    assert after - before <= slack, (
        f"{label} RSS still growing: mean {before / MB:.1f} MB over jobs 30-40, "
        f"{after / MB:.1f} MB over jobs 40-50; per job: {[round(r / MB) for r in series]}"
    )


async def test_trainer_process_runs_50_jobs_and_its_memory_levels_off(stack, tmp_path) -> None:
    jobs = await run_load(load_env(stack, tmp_path, s3=True), "trainer", str(JOBS))
    assert [j["job"] for j in jobs] == list(range(JOBS))
    assert all(j["outcome"] == "JobCompleted" and j["ends"] == 1 for j in jobs), jobs
    workers = {j["worker"] for j in jobs[WARM_UP:]}
    assert len(workers) == 1, f"one warm worker ran every job after warm-up, saw {workers}"
    levels_off("trainer", [j["rss"] for j in jobs])
    levels_off("warm worker", [j["worker_rss"] for j in jobs])
