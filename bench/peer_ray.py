# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""The same tiny job on a peer runner, Ray Jobs: submit -> first step, -> end, 10 at once.

    python bench/peer_ray.py                       # starts its own SeaweedFS (+ tansu) for S3
    python bench/peer_ray.py --from-env --jobs 10 --burst 10

Ray is installed into its own venv (``--venv``, default /tmp/sparktrainer-ray-venv, made on
first use with ``ray[default]``), started with ``ray start --head`` on 127.0.0.1 and stopped
after. Each job is submitted with the command a user types (``ray job submit --no-wait``, a new
process per job); its entrypoint runs ``--entry`` of this script with the project's Python: it
validates the job as the validator does, runs the same recipe (``run_recipe_job``) on the same
S3 server and writes wall-clock stamps at the first step (first JobProgress) and when the
model is stored (the recipe returned: every file in S3). What SparkTrainer adds beyond that
(events on Kafka) Ray does not do; what Ray adds (a new driver process per job) it always does.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import ROOT, bench_stack, emit, stack_env
from e2e_latency import spread, tiny_job

from sparktrainer.settings import Settings

RAY_VERSION = "2.60.0"


def ray_venv(venv: Path) -> Path:
    """The venv's ``ray`` command, installing ray[default] there first if needed."""
    ray = venv / "bin" / "ray"
    if not ray.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"ray[default]=={RAY_VERSION}"],
                       check=True)  # fmt: skip
    return ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayHead:
    """``ray start --head`` on loopback with a dashboard (the job API); ``ray stop`` after."""

    def __init__(self, ray: Path, env: dict[str, str]) -> None:
        self.ray, self.env = ray, env
        self.dashboard = free_port()

    def __enter__(self) -> RayHead:
        subprocess.run([str(self.ray), "start", "--head", "--node-ip-address=127.0.0.1",
                        f"--port={free_port()}", "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={self.dashboard}", "--include-dashboard=true",
                        "--disable-usage-stats", f"--num-cpus={os.cpu_count() or 2}"],
                       env=self.env, check=True, capture_output=True)  # fmt: skip
        return self

    def submit(self, stamp: Path, job: dict[str, Any]) -> subprocess.Popen[bytes]:
        """``ray job submit --no-wait`` of the job's entrypoint, as its own process."""
        entry = [sys.executable, str(HERE / "peer_ray.py"), "--entry", str(stamp), json.dumps(job)]
        address = f"--address=http://127.0.0.1:{self.dashboard}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        return subprocess.Popen([str(self.ray), "job", "submit", "--no-wait", address, "--",
                                 *entry], env=self.env, **quiet)  # type: ignore[call-overload]  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        subprocess.run([str(self.ray), "stop", "--force"], env=self.env, capture_output=True,
                       check=False, timeout=120)  # fmt: skip


def entry(stamp: Path, job: dict[str, Any]) -> None:
    """``--entry``: the Ray job itself: validate, run the recipe, stamp first step and end."""
    from sparktrainer.contracts.events import JobProgress, JobValidated
    from sparktrainer.storage.s3 import ObjectStore
    from sparktrainer.training.job.context import JobContext
    from sparktrainer.training.recipes import run_recipe_job
    from sparktrainer.validation.checks import validate_job

    settings = Settings(progress_every_s=0.0)
    store = ObjectStore.from_settings(settings)
    result = validate_job(job, store)
    assert result.kind is not None and result.config is not None, result.errors
    validated = JobValidated(job_id=job["job_id"], name="ray", type=job["type"],
                             framework=result.kind.framework, config_kind=result.kind.name,
                             config=result.config)  # fmt: skip
    stamps: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, JobProgress):
            stamps.setdefault("first_step", time.time())

    try:
        with tempfile.TemporaryDirectory(prefix="ray-job-") as tmp:
            run_recipe_job(JobContext(job=validated, store=store, settings=settings,
                                      workdir=Path(tmp), emit=on_event))  # fmt: skip
    except Exception as e:
        stamp.write_text(json.dumps({"error": f"{type(e).__name__}: {e}"[:500]}))
        raise
    stamps["stored"] = time.time()
    stamp.write_text(json.dumps(stamps))


def wait_stamps(paths: list[Path], timeout_s: float = 300.0) -> list[dict[str, float]]:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(not p.exists() for p in paths)} Ray jobs never ended")
        time.sleep(0.02)
    time.sleep(0.05)  # the writer closes its file
    found = [json.loads(p.read_text()) for p in paths]
    if failed := [f["error"] for f in found if "error" in f]:
        raise RuntimeError(f"{len(failed)} Ray jobs failed: {failed[0]}")
    return found


def measure(head: RayHead, folder: Path, jobs: int, count: int) -> dict[str, Any]:
    """Warm-up, sequential jobs, then ``count`` at once."""
    step, done, command = [], [], []
    for n in range(jobs + 1):
        stamp = folder / f"seq-{n}.json"
        submitted = time.time()
        head.submit(stamp, tiny_job()).wait(120)
        command.append(time.time() - submitted)
        [one] = wait_stamps([stamp])
        if n:  # the first job warms Ray's worker pool and caches
            step.append(one["first_step"] - submitted)
            done.append(one["stored"] - submitted)
    stamps = [folder / f"burst-{n}.json" for n in range(count)]
    submitted = time.time()
    for p in [head.submit(s, tiny_job()) for s in stamps]:
        p.wait(120)
    got = wait_stamps(stamps)
    return {"sequential": {"to_first_step_s": spread(step), "to_end_s": spread(done),
                           "submit_command_s": spread(command[1:])},
            "burst": {"jobs": count,
                      "all_ended_s": round(max(g["stored"] for g in got) - submitted, 3),
                      "to_first_step_s": spread([g["first_step"] - submitted for g in got])},
            "ray": RAY_VERSION}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10, help="sequential jobs")
    p.add_argument("--burst", type=int, default=10, help="jobs submitted at once")
    p.add_argument("--venv", type=Path, default=Path("/tmp/sparktrainer-ray-venv"))
    p.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers, no stack")
    p.add_argument("--entry", nargs=2, metavar=("STAMP", "JOB"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.entry:
        entry(Path(args.entry[0]), json.loads(args.entry[1]))
        return
    ray = ray_venv(args.venv)
    with bench_stack("ray-peer-", from_env=args.from_env) as settings:
        env = {**os.environ, **stack_env(settings), "PYTHONPATH": str(ROOT),
               "RAY_USAGE_STATS_ENABLED": "0", "SPARKTRAINER_LOG_LEVEL": "WARNING"}  # fmt: skip
        with RayHead(ray, env) as head, tempfile.TemporaryDirectory(prefix="ray-peer-") as tmp:
            emit(measure(head, Path(tmp), args.jobs, args.burst))


if __name__ == "__main__":
    main()
