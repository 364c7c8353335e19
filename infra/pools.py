"""The checks of infra/check.py about trainer pools, KEDA triggers and the sweep controller.

Each returns ``(ok, what)`` pairs; check.py reports them. What they hold the manifests to comes
from the code: the consumer groups, ``contracts.topics`` and ``contracts.scheduling``.
"""

from __future__ import annotations

from typing import Any

Results = list[tuple[bool, str]]


def trigger(obj: dict[str, Any], expected: list[tuple[str, str]], partitions: int) -> Results:
    """A KEDA object's kafka triggers: exactly these (group, topic) pairs, earliest resets."""
    triggers = [t["metadata"] for t in obj["spec"]["triggers"]]
    kind, name = obj["kind"], obj["metadata"]["name"]
    found = sorted((m["consumerGroup"], m["topic"]) for m in triggers)
    return [
        (found == sorted(expected), f"k8s {kind} {name}: triggers on {sorted(expected)}"),
        (
            obj["spec"]["maxReplicaCount"] <= partitions,
            f"k8s {kind} {name}: maxReplicaCount <= {partitions} partitions",
        ),
        (
            all(m.get("offsetResetPolicy") == "earliest" for m in triggers),
            f"k8s {kind} {name}: offsetResetPolicy earliest (as our consumers)",
        ),
    ]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    """The first container of a Deployment or a ScaledJob's Job template."""
    if obj["kind"] == "ScaledJob":
        return obj["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def pool_classes(pool: dict[str, Any]) -> tuple[str, ...]:
    """The resource classes a pool's pods are told to serve (SPARKTRAINER_TRAINER_CLASSES)."""
    env = {e["name"]: e.get("value") for e in container(pool).get("env", [])}
    return tuple(c.strip() for c in str(env.get("SPARKTRAINER_TRAINER_CLASSES", "")).split(","))


def trainer_pool(pool: dict[str, Any], partitions: int, runtime_s: float) -> Results:
    """One pool: its classes' topics in the trainers' group, its GPUs, --once, its deadline."""
    from consumers.trainer import GROUP
    from sparktrainer.contracts.scheduling import BY_NAME
    from sparktrainer.contracts.topics import class_topics

    name, classes, main = pool["metadata"]["name"], pool_classes(pool), container(pool)
    if not all(c in BY_NAME for c in classes):
        return [(False, f"k8s ScaledJob {name}: serves known classes {classes}")]
    results = trigger(pool, [(GROUP, t) for t in class_topics(*classes)], partitions)
    calc = pool["spec"]["scalingStrategy"].get("multipleScalersCalculation")
    gpus = max(BY_NAME[c].gpus for c in classes)
    asked = int(main["resources"].get("limits", {}).get("nvidia.com/gpu", 0))
    deadline = pool["spec"]["jobTargetRef"]["activeDeadlineSeconds"]
    results += [
        (calc == "sum", f"k8s ScaledJob {name}: its triggers' lags are summed"),
        (asked == gpus, f"k8s ScaledJob {name}: asks {gpus} GPU(s) for {classes}"),
        ("--once" in main["args"], f"k8s ScaledJob {name}: runs the trainer --once"),
        (deadline > runtime_s, f"k8s ScaledJob {name}: activeDeadlineSeconds above the job cap"),
    ]
    return results


def trainer_pools(pools: list[dict[str, Any]], partitions: int, runtime_s: float) -> Results:
    """Every pool's checks, and every resource class served by exactly one pool."""
    from sparktrainer.contracts.scheduling import CLASS_NAMES

    results: Results = []
    for pool in pools:
        results += trainer_pool(pool, partitions, runtime_s)
    served = sorted(c for pool in pools for c in pool_classes(pool))
    what = f"k8s: every resource class has exactly one trainer pool (served: {served})"
    return [*results, (served == sorted(CLASS_NAMES), what)]


def sweep_controller(deployments: list[dict[str, Any]]) -> Results:
    """One replica, Recreate: it rebuilds its state from the log and must not run twice."""
    found = [d for d in deployments if "consumers.sweep_controller" in container(d)["args"]]
    results = [(len(found) == 1, "k8s: one Deployment runs consumers.sweep_controller")]
    for d in found:
        ok = d["spec"].get("replicas") == 1 and d["spec"]["strategy"]["type"] == "Recreate"
        results.append((ok, "k8s sweep controller: 1 replica, strategy Recreate"))
    return results


def compose_pools(services: dict[str, Any]) -> Results:
    """compose: the CPU pool always runs on class cpu; the GPU pool (profile gpu) reserves one."""
    cpu, gpu = services["trainer-cpu"], services["trainer"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    cpu_ok = (
        "profiles" not in cpu and cpu["environment"].get("SPARKTRAINER_TRAINER_CLASSES") == "cpu"
    )
    gpu_ok = gpu.get("profiles") == ["gpu"] and devices[0]["capabilities"] == ["gpu"]
    return [
        (cpu_ok, "compose trainer-cpu: the CPU pool always runs, on class cpu"),
        (gpu_ok, "compose trainer: the GPU pool (profile gpu) reserves a GPU"),
    ]
