"""Static checks of infra/: YAML parses, and the values that must agree with the code do.

    python infra/check.py [--keda-crds DIR] [--compose CMD]

Always run (needs PyYAML; the settings check needs the package's dependencies):
  - every *.yml / *.yaml under infra/ parses;
  - docker-compose.yml, interpolated with .env.example: each SparkTrainer service's
    environment is accepted by ``sparktrainer.settings.Settings``; kafka-init creates exactly
    ``contracts.topics.ALL_TOPICS``; the services run the modules that exist;
  - k8s/: the KEDA triggers name the consumers' real groups and topics, one trainer pool
    (ScaledJob) per resource class reading exactly its class's topics and asking its GPUs,
    maxReplicaCount at most SPARKTRAINER_TOPIC_PARTITIONS, one sweep controller, the ConfigMap
    settings load in ``Settings``;
  - Kafka users and ACLs (infra/acls.py): k8s/kafka-users.yaml and kafka-acls.sh are what
    the table of ``contracts/topics.py`` renders, each compose service and k8s workload signs
    in as its own user with its own password/Secret, KEDA as ``keda``.
Run when the tool is there (reported as skipped otherwise):
  - ``docker compose config --quiet`` (``--compose`` picks the command);
  - ``kubectl kustomize infra/k8s`` and ``kubernetes-validate --strict`` on its output;
  - with ``--keda-crds DIR`` (KEDA's config/crd/bases): each KEDA object against its CRD's
    openAPIV3Schema, unknown fields rejected (needs ``jsonschema``).
Exit status 0 when every check that ran passed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(INFRA))

import acls  # noqa: E402  (infra/acls.py, beside this file)
import pools  # noqa: E402

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def record(results: list[tuple[bool, str]]) -> None:
    """Each (ok, what) of a check module, as ``check`` reports it."""
    for ok, what in results:
        check(ok, what)


def skip(what: str, why: str) -> None:
    print(f"skip  {what}: {why}")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ (enough for our file)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""

    parts = value.split("$$")
    return "$".join(re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, p) for p in parts)


def settings_accept(env: dict[str, Any], where: str) -> None:
    try:
        from sparktrainer.settings import Settings
    except ImportError as e:
        skip(f"settings of {where}", f"cannot import sparktrainer.settings ({e})")
        return
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({k: str(v) for k, v in env.items()})
        settings = Settings()
        check(
            bool(settings.kafka_bootstrap_servers and settings.s3_bucket),
            f"{where}: Settings() accepts the environment",
        )
    except Exception as e:  # pydantic ValidationError and friends
        check(False, f"{where}: Settings() rejects the environment: {e}")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_yaml_parses() -> None:
    for path in sorted([*INFRA.rglob("*.yml"), *INFRA.rglob("*.yaml")]):
        try:
            list(yaml.safe_load_all(path.read_text()))
            check(True, f"YAML parses: {path.relative_to(ROOT)}")
        except yaml.YAMLError as e:
            check(False, f"YAML parses: {path.relative_to(ROOT)}: {e}")


def check_compose(compose_cmd: list[str] | None) -> None:
    from sparktrainer.contracts.topics import ALL_TOPICS

    raw = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    env = read_env_file(INFRA / ".env.example")
    doc = interpolate(raw, env)
    services = doc["services"]
    for name, svc in services.items():
        if str(svc.get("image", "")).startswith("sparktrainer"):
            settings_accept(svc.get("environment", {}), f"compose {name}")
    script = services["kafka-init"]["command"][0]
    check_commands(services)
    loop = re.search(r"for topic in ([^;]+);", script)
    words = loop.group(1).split() if loop else []
    created = {f"sparktrainer.{t}" for t in words if t != "\\"}  # line continuations
    check(created == set(ALL_TOPICS), "compose kafka-init creates exactly ALL_TOPICS")
    record(pools.compose_pools(services))
    record(acls.compose_users(raw["services"]))

    if compose_cmd is None:
        skip("docker compose config", "no compose command found")
        return
    for profile in ("gpu", "cpu"):
        r = subprocess.run(
            [
                *compose_cmd,
                "-f",
                str(INFRA / "docker-compose.yml"),
                "--env-file",
                str(INFRA / ".env.example"),
                "--profile",
                profile,
                "config",
                "--quiet",
            ],
            capture_output=True,
            text=True,
        )
        check(
            r.returncode == 0,
            f"docker compose config --quiet (profile {profile})"
            + (f": {r.stderr.strip()}" if r.returncode else ""),
        )


# The command-line flags infra relies on, per command prefix.
REQUIRED_FLAGS = {
    ("python", "-m", "consumers.validator"): [],
    ("python", "-m", "consumers.trainer"): ["--once"],
    ("python", "-m", "consumers.registry_projector"): ["--db", "--rebuild"],
    ("python", "-m", "consumers.sweep_controller"): [],
    ("sparktrainer", "serve", "api"): ["--with-projector"],
}


def check_commands(services: dict[str, Any]) -> None:
    """Each command the stack runs exists, with the flags infra uses (`--help` output)."""
    used = {tuple(map(str, s["command"][:3])) for s in services.values() if s.get("command")}
    used |= set(REQUIRED_FLAGS)
    for prefix in sorted(used):
        if prefix not in REQUIRED_FLAGS:
            continue
        argv = (
            [sys.executable, "-m", "sparktrainer.cli.main", *prefix[1:]]
            if prefix[0] == "sparktrainer"
            else [sys.executable, *prefix[1:]]
        )
        r = subprocess.run([*argv, "--help"], capture_output=True, text=True, cwd=ROOT)
        missing = [f for f in REQUIRED_FLAGS[prefix] if f not in r.stdout]
        flags = REQUIRED_FLAGS[prefix] or "no extra flags"
        check(
            r.returncode == 0 and not missing,
            f"command `{' '.join(prefix)}` exists with {flags}"
            + (
                f" (exit {r.returncode}, missing {missing}: {r.stderr.strip()[-200:]})"
                if r.returncode or missing
                else ""
            ),
        )


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def check_k8s(keda_crds: Path | None) -> None:
    from consumers.validator import GROUP as VALIDATOR_GROUP
    from sparktrainer.contracts.topics import JOBS_SUBMITTED

    docs = k8s_docs()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    config = by_kind["ConfigMap"][0]["data"]
    partitions = int(config["SPARKTRAINER_TOPIC_PARTITIONS"])
    settings_accept(config, "k8s ConfigMap sparktrainer-config")
    (scaled,) = by_kind["ScaledObject"]
    record(pools.trigger(scaled, [(VALIDATOR_GROUP, JOBS_SUBMITTED)], partitions))
    runtime_s = float(config["SPARKTRAINER_MAX_JOB_RUNTIME_S"])
    record(pools.trainer_pools(by_kind["ScaledJob"], partitions, runtime_s))
    record(pools.sweep_controller(by_kind["Deployment"]))
    record(acls.k8s_users(docs))

    rendered = None
    if shutil.which("kubectl"):
        r = subprocess.run(
            ["kubectl", "kustomize", str(INFRA / "k8s")], capture_output=True, text=True
        )
        check(
            r.returncode == 0,
            "kubectl kustomize infra/k8s" + (f": {r.stderr}" if r.returncode else ""),
        )
        rendered = r.stdout if r.returncode == 0 else None
    else:
        skip("kubectl kustomize", "kubectl not found")
    validator = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).parent / "kubernetes-validate"
    )
    if rendered and Path(validator).exists():
        out = INFRA / ".rendered-k8s.yaml"
        try:
            out.write_text(rendered)
            r = subprocess.run(
                [validator, "--strict", "--quiet", str(out)], capture_output=True, text=True
            )
        finally:
            out.unlink(missing_ok=True)
        errors = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("ERROR")]
        check(
            r.returncode == 0 and not errors,
            "kubernetes-validate --strict (core kinds; KEDA kinds are checked below)"
            + ("".join("\n      " + e for e in errors)),
        )
    else:
        skip("kubernetes-validate", "not installed or nothing rendered")

    if keda_crds is None:
        skip("KEDA CRD schemas", "no --keda-crds DIR")
        return
    try:
        import jsonschema
    except ImportError:
        skip("KEDA CRD schemas", "jsonschema is not installed")
        return
    for d in docs:
        if not d["apiVersion"].startswith("keda.sh/"):
            continue
        crd_file = keda_crds / f"keda.sh_{d['kind'].lower()}s.yaml"
        crd = yaml.safe_load(crd_file.read_text())
        version = d["apiVersion"].split("/")[1]
        schema = next(
            v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version
        )
        problems = sorted(jsonschema.Draft7Validator(strict(schema)).iter_errors(d), key=str)
        check(
            not problems,
            f"KEDA {d['kind']} {d['metadata']['name']} against its CRD schema"
            + "".join(
                f"\n      {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in problems
            ),
        )


def strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected (what `kubectl apply` strict validation does)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("type") == "object" and "properties" not in schema:
        out.setdefault("additionalProperties", True)
    return out


def find_compose(explicit: str | None) -> list[str] | None:
    if explicit:
        return explicit.split()
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["docker", "compose"]
    for name in ("docker-compose",):
        path = shutil.which(name)
        if path:
            r = subprocess.run([path, "version"], capture_output=True, text=True)
            if r.returncode == 0 and re.search(r"v?2\.\d+", r.stdout):
                return [path]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keda-crds", type=Path, help="directory with KEDA's CRD YAML files")
    parser.add_argument("--compose", help="compose command, e.g. 'docker compose'")
    args = parser.parse_args()
    check_yaml_parses()
    record(acls.mismatches())
    check_compose(find_compose(args.compose))
    check_k8s(args.keda_crds)
    print(f"\n{len(failures)} check(s) failed" if failures else "\nall checks that ran passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
