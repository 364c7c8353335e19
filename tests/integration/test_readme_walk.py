"""The README walked as a newcomer would: every command of "Using it" and every route of its
"HTTP API" paragraph, read from README.md itself, run on the real broker and S3 and checked
against what the README says (exit code, the fields printed or answered, their values).

A command line or route the README gains without a check here fails
``test_every_readme_line_has_a_check``. To stay cheap the CLI runs in this process (``main``
with capsys) and the API through httpx's ASGI transport, both over ``registry_stack``
(validator, trainer, sweep controller and the API with its projector, in this process); the CLI
reads the API's read-model file (``SPARKTRAINER_REGISTRY_DB``), catching it up itself as the
README says a second reader may. `up`, `status`, `down` and `serve` start processes of their
own: their lines map to the test that already runs them (``ELSEWHERE``; the test is looked up,
so a rename fails here) rather than to a second stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.cli.main import main as cli
from tests.integration.model_registry_kit import AUTH, RegistryStack, registry_stack, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VERBS = "GET|POST|PUT|DELETE"


# -- what the README says ----------------------------------------------------------------------


def _using_it(text: str) -> str:
    start = text.index("\n## Using it\n")
    return text[start : text.index("\n## ", start + 1)]


def readme_commands(text: str | None = None) -> list[str]:
    """Each line of the "Using it" bash block, without its comment."""
    block = _using_it(text or README.read_text()).split("```bash\n", 1)[1].split("```", 1)[0]
    return [
        re.split(r"\s#\s", line, maxsplit=1)[0].strip()
        for line in block.splitlines()
        if line.strip()
    ]


def readme_routes(text: str | None = None) -> list[str]:
    """``VERB /path`` of each route the "HTTP API" paragraph names (a bare path is a GET)."""
    body = _using_it(text or README.read_text())
    paragraph = body[body.index("**HTTP API**") :].split("\n\n", 1)[0]
    out: list[str] = []
    for span in re.findall(r"`([^`]+)`", paragraph):
        if m := re.fullmatch(rf"((?:{VERBS})(?:\|(?:{VERBS}))*) (/\S*)", span):
            out += [f"{verb} {m[2]}" for verb in m[1].split("|")]
        elif span.startswith("/") and " " not in span:
            out.append(f"GET {span}")
    return list(dict.fromkeys(out))


# -- the walk's world ---------------------------------------------------------------------------


@dataclass
class Walk:
    """The stack, the CLI's output, and the jobs the walk made."""

    rs: RegistryStack
    capsys: pytest.CaptureFixture[str]
    tmp: Path
    name: str  # the model name both jobs register under (versions 1 and 2)
    train: dict[str, Any]
    tune_id: str = ""
    failed_id: str = ""  # a job whose data is missing: its log holds the traceback
    sweep_id: str = ""
    submitted: tuple[int, str] = (0, "")  # `submit --wait`'s exit code and output

    async def cli(self, *argv: str) -> tuple[int, str, str]:
        """Run ``sparktrainer ARGV`` in this process: exit code, stdout, stderr."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(cli, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.rs.api.get(path, params=params, headers=AUTH)
        assert r.status_code == 200, (path, r.status_code, r.text[:400])
        return r.json()

    async def settled(self, path: str, check: Callable[[Any], bool]) -> Any:
        return (await until(self.rs.api, path, lambda r: r.is_success and check(r.json()))).json()

    def file(self, name: str, body: Any) -> str:
        path = self.tmp / name
        path.write_text(json.dumps(body))
        return str(path)


def digits(job_id: str, **top: Any) -> dict[str, Any]:
    """A tiny digits MLP (about 0.1 s an epoch)."""
    return {"job_id": job_id, "name": "walk digits", "type": "train", "framework": "pytorch",
            "config": {"architecture": "custom", "input_size": 64, "output_size": 10,
                       "hidden_layers": [16], "epochs": 2, "batch_size": 64,
                       "data": {"source": "digits"}}, **top}  # fmt: skip


def sweep(sweep_id: str) -> dict[str, Any]:
    base = digits("unused", tags=["walk"])
    base.pop("job_id")
    return {"job_id": sweep_id, "name": "walk sweep", "type": "sweep", "framework": "pytorch",
            "config": {"base": base, "space": {"hidden_layers": {"type": "choice",
                                                                 "values": [[8], [16]]}},
                       "sampler": "grid", "max_trials": 2, "max_concurrent": 2,
                       "metric": "val_loss"}}  # fmt: skip


@pytest.fixture
async def walk(stack, tmp_path, capsys, monkeypatch) -> Any:
    """The stack with three jobs done: one submitted by `submit --wait` (NAME:1), its
    fine-tune POSTed to /api/jobs (NAME:2, from NAME@latest) and a two-trial sweep."""
    home = tmp_path / "home"
    async with registry_stack(stack, home, sweeps=True, api_open_reads=False) as rs:
        env = {"HOME": str(home), "REGISTRY_DB": str(home / "api-registry.sqlite3"),
               "KAFKA_BOOTSTRAP_SERVERS": rs.settings.kafka_ready(),
               "S3_ENDPOINT": str(rs.settings.s3_endpoint), "S3_BUCKET": rs.settings.s3_bucket,
               "LOG_LEVEL": "WARNING"}  # fmt: skip
        for key in ("s3_access_key", "s3_secret_key"):
            if secret := getattr(rs.settings, key):
                env[key.upper()] = secret.get_secret_value()
        for key, value in env.items():
            monkeypatch.setenv(f"SPARKTRAINER_{key}", value)
        tag = uuid.uuid4().hex[:8]
        w = Walk(
            rs, capsys, tmp_path, f"walk-{tag}", digits(f"walk-{tag}", register_as=f"walk-{tag}")
        )
        config = {"model_source": "model_id", "model_id": f"{w.name}@latest", "epochs": 1,
                  "data": {"source": "digits"}}  # fmt: skip
        tune = {"type": "finetune", "framework": "pytorch", "name": "walk fine-tune",
                "register_as": w.name, "config": config}  # fmt: skip
        w.submitted = (await w.cli("submit", w.file("job.json", w.train), "--wait"))[:2]
        answer = await rs.api.post("/api/jobs", json=tune, headers=AUTH)
        assert answer.status_code == 202, answer.text
        w.tune_id = answer.json()["job_id"]
        w.sweep_id, w.failed_id = f"walk-sweep-{tag}", f"walk-failed-{tag}"
        missing = {"source": f"s3://{rs.settings.s3_bucket}/walk/no-such.npz"}
        failed = digits(w.failed_id, config={**w.train["config"], "data": missing})
        assert (await rs.api.post("/api/jobs", json=failed, headers=AUTH)).is_success
        assert (await rs.api.post("/api/jobs", json=sweep(w.sweep_id), headers=AUTH)).is_success
        await w.settled(f"/api/jobs/{w.tune_id}", lambda j: j["status"] == "completed")
        await w.settled(f"/api/jobs/{w.failed_id}", lambda j: j["status"] == "failed")
        await w.settled(f"/api/sweeps/{w.sweep_id}", lambda s: s["status"] == "completed")
        yield w


# -- the commands -------------------------------------------------------------------------------

Check = Callable[[Walk], Awaitable[None]]


async def _submit(w: Walk) -> None:
    code, out = w.submitted
    assert code == 0, out
    assert (
        w.train["job_id"] in out
        and f"completed {w.train['job_id']}" in out
        and f"registered as {w.name}:1" in out
    )


async def _validate(w: Walk) -> None:
    code, out, _ = await w.cli("validate", w.file("good.json", w.train))
    assert code == 0 and "valid" in out.lower(), out
    bad = {**w.train, "config": {**w.train["config"], "epochs": -3}}
    code, out, err = await w.cli("validate", w.file("bad.json", bad))
    assert code == 1 and "epochs" in out + err and "-3" in out + err, out + err


async def _jobs(w: Walk) -> None:
    job_id = w.train["job_id"]
    code, out, _ = await w.cli("jobs", "list")
    [line] = [x for x in out.splitlines() if job_id in x]  # whole, never cut
    assert code == 0 and "completed" in line, out
    code, out, _ = await w.cli("jobs", "show", job_id[:-3])  # a unique prefix
    assert code == 0 and job_id in out and "completed" in out and '"epochs": 2' in out, out
    code, out, _ = await w.cli("jobs", "watch", job_id)
    assert code == 0 and "completed" in out, out
    code, out, err = await w.cli("jobs", "cancel", job_id)
    assert code == 1 and "has already ended (completed): not cancelled" in out + err, out + err


async def _metrics(w: Walk) -> None:
    job_id = w.train["job_id"]
    served = (await w.get(f"/api/jobs/{job_id}/metrics"))["series"]
    code, out, _ = await w.cli("jobs", "metrics", job_id, "--json")
    printed = json.loads(out)["series"]
    assert code == 0 and printed == served and "loss/train" in printed, printed
    code, out, _ = await w.cli("jobs", "metrics", job_id, "--series", "loss/train", "--json")
    assert code == 0 and json.loads(out)["series"] == {"loss/train": served["loss/train"]}
    code, out, err = await w.cli("jobs", "metrics", job_id, "--series", "nope")
    assert code == 2 and "nope" in err and "loss/train" in err, err


async def _tensorboard(w: Walk) -> None:
    folder = w.tmp / "tb"
    code, out, _ = await w.cli("jobs", "tensorboard", w.train["job_id"], "--dir", str(folder),
                               "--no-run")  # fmt: skip
    assert code == 0 and "tensorboard" in out and str(folder) in out, out
    assert list(folder.rglob("events.out.tfevents.*")), list(folder.rglob("*"))


async def _logs(w: Walk) -> None:
    served = await w.rs.api.get(f"/api/jobs/{w.failed_id}/logs", headers=AUTH)
    for argv in ((), ("--attempt", "1"), ("--follow",)):  # --follow: the job has ended
        code, out, _ = await w.cli("jobs", "logs", w.failed_id, *argv)
        assert code == 0 and "no-such.npz" in out and "Traceback" in out, out
        assert out.strip() == served.text.strip(), (argv, out)
    code, out, _ = await w.cli("jobs", "logs", w.failed_id[:-3])  # a unique prefix
    assert code == 0 and out.strip() == served.text.strip(), out
    code, out, err = await w.cli("jobs", "logs", w.failed_id, "--attempt", "9")
    assert code == 2, out + err  # no such attempt


async def _models_list(w: Walk) -> None:
    code, out, _ = await w.cli("models", "list", "--name", w.name, "--json")
    listed = json.loads(out)
    models = listed if isinstance(listed, list) else listed["models"]
    assert code == 0 and {m["model_id"] for m in models} == {w.train["job_id"], w.tune_id}
    assert sorted(m["version"] for m in models) == [1, 2]
    code, out, _ = await w.cli("models", "list", "--name", w.name, "--metric", "val_accuracy>=0.2",
                               "--sort", "val_accuracy", "--json")  # fmt: skip
    ranked = json.loads(out)
    ranked = ranked if isinstance(ranked, list) else ranked["models"]
    accuracies = [m["metrics"]["val_accuracy"] for m in ranked]
    assert code == 0 and accuracies and min(accuracies) >= 0.2, ranked
    assert accuracies in (sorted(accuracies), sorted(accuracies, reverse=True))
    code, _, err = await w.cli("models", "list", "--sort", "bogus")
    assert code == 2 and "val_accuracy" in err, err


async def _models_show(w: Walk) -> None:
    code, out, _ = await w.cli("models", "show", f"{w.name}:2")
    said = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert code == 0 and said["model_id"] == w.tune_id, out
    assert (said["registered_name"], said["version"]) == (w.name, "2"), out
    assert said["base_model_id"] == w.train["job_id"], out
    code, out, _ = await w.cli("models", "lineage", f"{w.name}@latest")
    assert code == 0 and out.index(w.train["job_id"]) >= 0 and w.tune_id in out, out


async def _models_names(w: Walk) -> None:
    code, out, _ = await w.cli("models", "names", w.name)
    assert code == 0 and w.train["job_id"] in out and w.tune_id in out, out
    code, out, _ = await w.cli("models", "names")
    assert code == 0 and w.name in out, out
    code, out, err = await w.cli("models", "history", f"{w.name}@latest")
    assert code in (0, 2), out + err  # @latest is no alias that moves; prod is, below


async def _models_change(w: Walk) -> None:
    code, out, err = await w.cli("models", "alias", f"{w.name}@prod", "1", "--reason", "walk")
    assert code == 0, out + err
    await w.settled(f"/api/registered-models/{w.name}", lambda n: _alias(n, "prod") == 1)
    code, out, _ = await w.cli("models", "history", f"{w.name}@prod")
    assert code == 0 and "walk" in out and "1" in out, out
    code, out, err = await w.cli("models", "alias", f"{w.name}@prod", "--remove")
    assert code == 0, out + err
    await w.settled(f"/api/registered-models/{w.name}", lambda n: _alias(n, "prod") is None)
    code, out, err = await w.cli("models", "archive", f"{w.name}:1")
    assert code == 0, out + err
    await w.settled(f"/api/models/{w.train['job_id']}", lambda m: m["status"] == "archived")
    trial = f"{w.sweep_id}-t001"
    code, out, err = await w.cli("models", "delete", trial)
    assert code == 0, out + err
    await w.settled(f"/api/models/{trial}", lambda m: m["status"] == "deleted")


def _alias(name: dict[str, Any], alias: str) -> int | None:
    """The version a registered name's alias points at (None: no such alias)."""
    return name["aliases"].get(alias, {}).get("version")


async def _download(w: Walk) -> None:
    folder = w.tmp / "download"
    code, out, err = await w.cli("models", "download", f"{w.name}:2", str(folder))
    assert code == 0, out + err
    listed = await w.get(f"/api/models/{w.tune_id}/files")
    files = listed if isinstance(listed, list) else listed["files"]
    for f in files:
        data = (folder / f["path"]).read_bytes()
        assert len(data) == f["size_bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f


async def _queue(w: Walk) -> None:
    code, out, _ = await w.cli("queue", "--json")
    printed, served = json.loads(out), await w.get("/api/queue")
    assert code == 0 and [c["class"] for c in printed["classes"]] == [
        c["class"] for c in served["classes"]
    ]
    # The walk's jobs are all done (the session's log may hold other tests' waiting jobs).
    mine = {w.train["job_id"], w.tune_id, w.failed_id, w.sweep_id}
    waiting = {j["job_id"] for c in printed["classes"] for j in c["waiting"]}
    assert not waiting & mine, printed


async def _usage(w: Walk) -> None:
    code, out, _ = await w.cli("usage", "--tenant", "default", "--json")
    [printed] = json.loads(out)["tenants"]
    served = await w.get("/api/tenants/default/usage")
    assert code == 0 and printed["totals"] == served["totals"], (printed, served)
    assert printed["totals"]["cpu_s"] > 0


async def _sweeps(w: Walk) -> None:
    code, out, _ = await w.cli("sweeps", "list")
    assert code == 0 and w.sweep_id in out and "completed" in out, out
    code, out, _ = await w.cli("sweeps", "show", w.sweep_id)
    assert code == 0 and f"{w.sweep_id}-t001" in out and f"{w.sweep_id}-t002" in out, out
    assert "val_loss" in out and "best" in out, out


async def _schemas(w: Walk) -> None:
    folder = w.tmp / "schemas"
    code, out, err = await w.cli("schemas", "--out", str(folder))
    assert code == 0, out + err
    made = {p.name: p.read_bytes() for p in folder.iterdir()}
    kept = {p.name: p.read_bytes() for p in (ROOT / "schemas").iterdir() if p.is_file()}
    assert made == kept  # the committed schemas are what the command writes


COMMANDS: dict[str, Check] = {
    "sparktrainer submit job.json --wait": _submit,
    "sparktrainer validate job.json": _validate,
    "sparktrainer jobs list | show ID | watch ID | cancel ID": _jobs,
    "sparktrainer jobs metrics ID [--series loss/train ...] [--json]": _metrics,
    "sparktrainer jobs tensorboard ID": _tensorboard,
    "sparktrainer jobs logs ID [--attempt N] [--follow]": _logs,
    "sparktrainer models list [--name N] [--alias A] [--tag T] [--metric 'val_accuracy>=0.9'] "
    "[--sort M] [--json]": _models_list,
    "sparktrainer models show REF | lineage REF": _models_show,
    "sparktrainer models names [NAME] | history NAME@ALIAS": _models_names,
    "sparktrainer models download REF DIR [--api URL]": _download,
    "sparktrainer queue [--json]": _queue,
    "sparktrainer usage [--tenant T] [--json]": _usage,
    "sparktrainer sweeps list | show ID": _sweeps,
    "sparktrainer schemas [--out DIR]": _schemas,
    # last: it archives NAME:1 and deletes the sweep's model
    "sparktrainer models alias NAME@ALIAS VERSION [--remove] | archive REF | delete REF": (
        _models_change
    ),
}
STACK_TEST = "tests.integration.test_stack::test_cli_up_detach_then_down_keeps_data_for_the_next_up"
SERVE_TEST = "tests.integration.test_security::test_no_secret_in_any_output_of_a_full_job"
ELSEWHERE: dict[str, str] = {
    "sparktrainer up [--detach]": STACK_TEST,  # up --detach: exit 0, the servers alive
    "sparktrainer status [--json]": STACK_TEST,  # status: 0 while up, 1 after down
    "sparktrainer down": STACK_TEST,  # down: exit 0, nothing left alive, data kept
    "sparktrainer serve api --with-projector": SERVE_TEST,  # serves /api/jobs with the token
}


# -- the routes ---------------------------------------------------------------------------------


async def _send(w: Walk, verb: str, path: str, **kw: Any) -> Any:
    return await w.rs.api.request(verb, path, headers=kw.pop("headers", AUTH), **kw)


async def _post_jobs(w: Walk) -> None:
    tune = await w.get(f"/api/jobs/{w.tune_id}")  # the fixture's POST answered 202 with this id
    assert tune["status"] == "completed" and tune["type"] == "finetune"
    assert (await w.get(f"/api/models/{w.tune_id}"))["base_model_id"] == w.train["job_id"]


async def _post_validate(w: Walk) -> None:
    good = (await _send(w, "POST", "/api/jobs/validate", json=w.train)).json()
    assert (good["valid"], good["errors"]) == (True, []) and set(good) >= {"warnings"}
    bad = {**w.train, "config": {**w.train["config"], "epochs": -3}}
    said = (await _send(w, "POST", "/api/jobs/validate", json=bad)).json()
    assert said["valid"] is False and any("epochs" in e for e in said["errors"]), said


async def _get_jobs(w: Walk) -> None:
    jobs = {j["job_id"]: j for j in (await w.get("/api/jobs", limit=500))["jobs"]}
    for job_id in (w.train["job_id"], w.tune_id, w.sweep_id):
        assert jobs[job_id]["status"] == "completed" and jobs[job_id]["tenant"] == "default"


async def _get_job(w: Walk) -> None:
    job = await w.get(f"/api/jobs/{w.train['job_id'][:-3]}")  # a unique prefix
    assert job["job_id"] == w.train["job_id"] and job["config"]["epochs"] == 2
    assert job["checkpoints"], job
    for c in job["checkpoints"]:
        assert c["key"].startswith("checkpoints/") and isinstance(c["size_bytes"], int), c


async def _get_metrics(w: Walk) -> None:
    path = f"/api/jobs/{w.train['job_id']}/metrics"
    everything = await w.get(path)
    steps = everything["series"]["loss/train"]["steps"]
    assert steps and steps == sorted(steps)
    only = await w.get(path, series="loss/train")
    assert only["series"] == {"loss/train": everything["series"]["loss/train"]}
    later = await w.get(path, since=everything["cursor"])
    assert all(not s["steps"] for s in later["series"].values()), later  # nothing new


async def _get_logs(w: Walk) -> None:
    path = f"/api/jobs/{w.failed_id}/logs"
    whole = await _send(w, "GET", path)
    assert whole.status_code == 200 and "Traceback" in whole.text, whole.text
    assert whole.headers["x-attempt"] == "1" and whole.headers["x-log-size"] == str(
        len(whole.content)
    )
    assert (await _send(w, "GET", path, params={"attempt": 1})).text == whole.text
    tail = await _send(w, "GET", path, params={"offset": 10})
    assert tail.content == whole.content[10:]
    assert (await _send(w, "GET", path, headers={})).status_code == 401  # token needed


async def _post_cancel(w: Walk) -> None:
    r = await _send(w, "POST", f"/api/jobs/{w.train['job_id']}/cancel", json={})
    assert r.status_code == 409 and "completed" in r.text, r.text  # it has ended


async def _get_queue(w: Walk) -> None:
    queue = await w.get("/api/queue")
    assert "cpu" in {c["class"] for c in queue["classes"]}
    # None of the walk's jobs waits or runs (the session's log may hold other tests' jobs).
    mine = {w.train["job_id"], w.tune_id, w.failed_id, w.sweep_id}
    waiting = {j["job_id"] for c in queue["classes"] for j in c["waiting"]}
    assert not (waiting | {r["job_id"] for r in queue["running"]}) & mine, queue


async def _get_usage(w: Walk) -> None:
    tenants = {t["tenant"]: t for t in (await w.get("/api/usage"))["tenants"]}
    assert tenants["default"]["totals"]["cpu_s"] > 0, tenants


async def _get_tenant_usage(w: Walk) -> None:
    usage = await w.get("/api/tenants/default/usage")
    assert usage["totals"]["cpu_s"] > 0 and usage["days"], usage


async def _get_sweeps(w: Walk) -> None:
    sweeps = {s["sweep_id"]: s for s in (await w.get("/api/sweeps"))["sweeps"]}
    assert sweeps[w.sweep_id]["status"] == "completed"


async def _get_sweep(w: Walk) -> None:
    shown = await w.get(f"/api/sweeps/{w.sweep_id}")
    table = shown["trial_table"]
    assert [t["job_id"] for t in table] == [f"{w.sweep_id}-t001", f"{w.sweep_id}-t002"], shown
    assert [t["params"]["hidden_layers"] for t in table] == [[8], [16]]
    best = min(table, key=lambda t: t["val_loss"])
    assert shown["ranking"][0] == best["trial"]
    result = await w.get(f"/api/models/{w.sweep_id}")  # the best trial's model, as the sweep's
    assert result["metrics"]["val_loss"] == pytest.approx(best["val_loss"]), (result, best)


async def _get_models(w: Walk) -> None:
    live = (await w.get("/api/models", name=w.name))["models"]
    assert [m["model_id"] for m in live] == [w.tune_id]  # NAME:1 was archived by the CLI
    for order, versions in (("asc", [1, 2]), ("desc", [2, 1])):
        every = await w.get("/api/models", name=w.name, status="all", sort="version", order=order)
        assert [m["version"] for m in every["models"]] == versions, (order, every)
    kept = await w.get("/api/models", name=w.name, status="all", metric="val_accuracy>=0.2")
    assert all(m["metrics"]["val_accuracy"] >= 0.2 for m in kept["models"]) and kept["models"]
    r = await _send(w, "GET", "/api/models", params={"sort": "bogus"})
    assert r.status_code == 422 and "val_accuracy" in r.text, r.text


async def _get_model(w: Walk) -> None:
    m = await w.get(f"/api/models/{w.name}:2")
    assert (m["model_id"], m["registered_name"], m["version"]) == (w.tune_id, w.name, 2)
    assert m["status"] == "live" and not m["retired"] and m["aliases"] == [], m


async def _get_lineage(w: Walk) -> None:
    lineage = await w.get(f"/api/models/{w.name}@latest/lineage")
    assert w.train["job_id"] in json.dumps(lineage), lineage


async def _get_files(w: Walk) -> None:
    listed = await w.get(f"/api/models/{w.tune_id}/files")
    files = listed if isinstance(listed, list) else listed["files"]
    assert {"model.pth", "config.json"} <= {f["path"] for f in files}
    assert all(set(f) == {"path", "size_bytes", "sha256"} for f in files), files


async def _get_file(w: Walk) -> None:
    listed = await w.get(f"/api/models/{w.tune_id}/files")
    files = listed if isinstance(listed, list) else listed["files"]
    [pth] = [f for f in files if f["path"] == "model.pth"]
    whole = await _send(w, "GET", f"/api/models/{w.tune_id}/files/model.pth")
    assert hashlib.sha256(whole.content).hexdigest() == pth["sha256"]
    part = await _send(w, "GET", f"/api/models/{w.tune_id}/files/model.pth",
                       headers={**AUTH, "Range": "bytes=0-9"})  # fmt: skip
    assert part.status_code == 206 and part.content == whole.content[:10]


async def _put_alias(w: Walk) -> None:
    path = f"/api/registered-models/{w.name}/aliases/champion"
    r = await _send(w, "PUT", path, json={"version": 2, "actor": "alice", "reason": "best"})
    assert r.status_code == 202, r.text
    await w.settled(f"/api/registered-models/{w.name}", lambda n: _alias(n, "champion") == 2)


async def _delete_alias(w: Walk) -> None:
    path = f"/api/registered-models/{w.name}/aliases/champion"
    r = await _send(w, "DELETE", path, params={"actor": "bob", "reason": "retired"})
    assert r.status_code == 202, r.text
    await w.settled(f"/api/registered-models/{w.name}", lambda n: _alias(n, "champion") is None)


async def _alias_history(w: Walk) -> None:
    history = await w.get(f"/api/registered-models/{w.name}/aliases/champion/history")
    text = json.dumps(history)
    assert "alice" in text and "best" in text and "bob" in text and "retired" in text, history


async def _registered(w: Walk) -> None:
    names = json.dumps(await w.get("/api/registered-models"))
    assert f'"{w.name}"' in names


async def _registered_name(w: Walk) -> None:
    shown = await w.get(f"/api/registered-models/{w.name}")
    assert shown["name"] == w.name and w.tune_id in json.dumps(shown), shown


async def _post_archive(w: Walk) -> None:
    r = await _send(w, "POST", f"/api/models/{w.name}:2/archive", json={"reason": "walk"})
    assert r.status_code == 202, r.text
    await w.settled(f"/api/models/{w.tune_id}", lambda m: m["status"] == "archived")


async def _delete_model(w: Walk) -> None:
    r = await _send(w, "DELETE", f"/api/models/{w.tune_id}", params={"reason": "walk"})
    assert r.status_code == 202, r.text
    await w.settled(f"/api/models/{w.tune_id}", lambda m: m["status"] == "deleted")


async def _health(w: Walk) -> None:
    r = await _send(w, "GET", "/api/health", headers={})  # the one route open with a token set
    assert r.status_code == 200 and r.json()["projector"]["ready"] is True, r.text


async def _metrics_route(w: Walk) -> None:
    assert (await _send(w, "GET", "/metrics", headers={})).status_code == 401
    r = await _send(w, "GET", "/metrics")
    assert r.status_code == 200 and "# TYPE" in r.text


def _open_page(path: str, says: str) -> Check:
    async def check(w: Walk) -> None:
        r = await _send(w, "GET", path, headers={})  # pages hold no data: open
        assert r.status_code == 200 and says in r.text, (path, r.status_code, r.text[:200])

    return check


async def _openapi(w: Walk) -> None:
    r = await _send(w, "GET", "/openapi.json", headers={})
    shape = lambda p: re.sub(r"\{[^}]+\}", "{}", p)  # noqa: E731
    documented = {shape(p) for p, ops in r.json()["paths"].items() for _ in ops}
    said = {shape(route.split(" ", 1)[1]) for route in readme_routes()}
    assert {p for p in said if p.startswith("/api/")} <= documented, said - documented


ROUTES: dict[str, Check] = {
    "POST /api/jobs": _post_jobs,
    "POST /api/jobs/validate": _post_validate,
    "GET /api/jobs": _get_jobs,
    "GET /api/jobs/{id}": _get_job,
    "GET /api/jobs/{id}/metrics": _get_metrics,
    "GET /api/jobs/{id}/logs": _get_logs,
    "POST /api/jobs/{id}/cancel": _post_cancel,
    "GET /api/queue": _get_queue,
    "GET /api/usage": _get_usage,
    "GET /api/tenants/{t}/usage": _get_tenant_usage,
    "GET /api/sweeps": _get_sweeps,
    "GET /api/sweeps/{id}": _get_sweep,
    "GET /api/models": _get_models,
    "GET /api/models/{ref}": _get_model,
    "GET /api/models/{ref}/lineage": _get_lineage,
    "GET /api/models/{ref}/files": _get_files,
    "GET /api/models/{ref}/files/{path}": _get_file,
    "GET /api/registered-models": _registered,
    "GET /api/registered-models/{name}": _registered_name,
    "PUT /api/registered-models/{name}/aliases/{alias}": _put_alias,
    "DELETE /api/registered-models/{name}/aliases/{alias}": _delete_alias,
    "GET /api/registered-models/{name}/aliases/{alias}/history": _alias_history,
    "POST /api/models/{ref}/archive": _post_archive,
    "DELETE /api/models/{ref}": _delete_model,
    "GET /api/health": _health,
    "GET /metrics": _metrics_route,
    "GET /": _open_page("/", "SparkTrainer"),
    "GET /static/": _open_page("/static/app.js", "submitView"),
    "GET /docs": _open_page("/docs", "swagger"),
    "GET /openapi.json": _openapi,
}


# -- the tests ----------------------------------------------------------------------------------


def _elsewhere(test: str) -> None:
    module, name = test.split("::")
    assert callable(getattr(importlib.import_module(module), name)), test


def test_every_readme_line_has_a_check() -> None:
    commands, routes = readme_commands(), readme_routes()
    assert len(commands) >= 19 and len(routes) >= 30, (commands, routes)  # the parse found them
    assert sorted(commands) == sorted([*COMMANDS, *ELSEWHERE])
    assert sorted(routes) == sorted(ROUTES)
    for test in set(ELSEWHERE.values()):
        _elsewhere(test)


def test_a_readme_line_without_a_check_is_caught() -> None:
    text = README.read_text()
    grown = text.replace("sparktrainer down\n", "sparktrainer down\nsparktrainer fly ID  # new\n")
    grown = grown.replace("`GET /api/health`", "`GET /api/health`, `GET /api/fly`")
    assert set(readme_commands(grown)) - {*COMMANDS, *ELSEWHERE} == {"sparktrainer fly ID"}
    assert set(readme_routes(grown)) - set(ROUTES) == {"GET /api/fly"}


@pytest.mark.slow
async def test_the_readme_does_what_it_says(walk: Walk) -> None:
    wrong = []  # every line that does not do what it says, not only the first
    for line, check in [*COMMANDS.items(), *ROUTES.items()]:
        try:
            await check(walk)
        except Exception as e:  # each line reported, then the test fails
            wrong.append(f"{line}: {type(e).__name__}: {str(e)[:1500]}")
    assert not wrong, "\n\n".join(wrong)
