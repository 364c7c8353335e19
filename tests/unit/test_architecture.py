"""The house rules of docs/ARCHITECTURE.md, read from the code itself.

Every import of every module is collected from its syntax tree (function-local ones too, and
those behind ``TYPE_CHECKING``), so a cycle hidden in a function or a forbidden import in a
rarely used path fails here, not in a reader's head.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sparktrainer", "consumers")
MAX_MODULE_LINES = 400
# Entry points every module of a kind defines by protocol (CLI groups, console scripts).
PROTOCOL_NAMES = {"main", "register"}

# room -> imports it must never make: rooms of ours (prefixes) and third-party packages.
ABOVE_CONTRACTS = ("sparktrainer.bus", "sparktrainer.storage", "sparktrainer.validation",
                   "sparktrainer.training", "sparktrainer.registry", "sparktrainer.services",
                   "sparktrainer.api", "sparktrainer.cli", "sparktrainer.replay",
                   "sparktrainer.embedded", "sparktrainer.verdict", "sparktrainer.demo",
                   "sparktrainer.scheduling", "sparktrainer.sweeps", "consumers")  # fmt: skip
TRAINING_AND_UP = ("sparktrainer.training", "sparktrainer.validation", "sparktrainer.registry",
                   "sparktrainer.services", "sparktrainer.api", "sparktrainer.cli",
                   "sparktrainer.replay", "sparktrainer.verdict", "sparktrainer.scheduling",
                   "sparktrainer.sweeps", "consumers")  # fmt: skip
TORCH = ("torch", "torchvision", "transformers", "peft", "safetensors")
KAFKA_HTTP_CLI = ("aiokafka", "fastapi", "starlette", "uvicorn", "httpx", "rich", "argparse")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sparktrainer.contracts": (*ABOVE_CONTRACTS, *TORCH, "aiokafka", "minio"),
    "sparktrainer.bus": (*TRAINING_AND_UP, "sparktrainer.storage", *TORCH),
    "sparktrainer.storage": (*TRAINING_AND_UP, "sparktrainer.bus", *TORCH, "aiokafka"),
    "sparktrainer.validation": (
        *TORCH,
        "sparktrainer.training",
        "sparktrainer.bus",
        "sparktrainer.registry",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
    ),
    "sparktrainer.training": (
        *KAFKA_HTTP_CLI,
        "sparktrainer.bus",
        "sparktrainer.validation",
        "sparktrainer.registry",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
        "sparktrainer.replay",
        "consumers",
    ),
    "sparktrainer.registry": (
        *TORCH,
        "sparktrainer.training",
        "sparktrainer.validation",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
    ),
    "sparktrainer.replay": (
        *TORCH,
        "sparktrainer.training",
        "sparktrainer.cli",
        "sparktrainer.api",
        "sparktrainer.services",
    ),
    "sparktrainer.api": (*TORCH, "sparktrainer.training", "sparktrainer.cli"),
    # The Python client: what a notebook imports; the API's answers, never the API's code.
    "sparktrainer.client": (
        *TORCH,
        "sparktrainer.training",
        "sparktrainer.validation",
        "sparktrainer.registry",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
        "fastapi",
        "rich",
    ),
    "sparktrainer.telemetry": (
        *TRAINING_AND_UP,
        "sparktrainer.bus",
        "sparktrainer.storage",
        *TORCH,
        *KAFKA_HTTP_CLI,
    ),
    # The trainer's picker, presence and served classes: contracts and the bus only.
    "sparktrainer.scheduling": (
        *TORCH,
        "sparktrainer.storage",
        "sparktrainer.training",
        "sparktrainer.validation",
        "sparktrainer.registry",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
        "sparktrainer.sweeps",
    ),
    # The sweep controller: no torch, no training; it reads the log and the caps.
    "sparktrainer.sweeps": (
        *TORCH,
        "sparktrainer.training",
        "sparktrainer.registry",
        "sparktrainer.services",
        "sparktrainer.api",
        "sparktrainer.cli",
        "sparktrainer.scheduling",
    ),
}


def modules() -> dict[str, Path]:
    """Every module of our packages by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The modules (ours resolved to the deepest module, others by top package) it imports."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in MODULES else _resolve(base))
    return out


def _resolve(dotted: str) -> str:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        if ".".join(parts[:cut]) in MODULES:
            return ".".join(parts[:cut])
    return parts[0]


GRAPH = {name: imports_of(name, path) - {name} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in GRAPH:
        if root in index:
            continue
        work = [(root, iter(sorted(n for n in GRAPH[root] if n in GRAPH)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(n for n in GRAPH[child] if n in GRAPH))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_walk_sees_function_local_imports() -> None:
    assert "sparktrainer.training.recipes" in MODULES
    local = GRAPH["sparktrainer.training.worker.child"]  # imports torch inside functions
    assert "torch" in local and "sparktrainer.training.recipes" in local


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_layering(room: str) -> None:
    """A room imports nothing the table forbids (its ``__main__`` entry point may start a CLI)."""
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if (module == room or module.startswith(room + ".")) and not module.endswith("__main__")
        for target in targets
        for banned in FORBIDDEN[room]
        if target == banned or target.startswith(banned + ".")
    )
    assert broken == []


def test_every_public_name_is_defined_once() -> None:
    where: dict[str, list[str]] = collections.defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            is_def = isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            if is_def and not node.name.startswith("_") and node.name not in PROTOCOL_NAMES:
                where[node.name].append(name)
    assert {n: ms for n, ms in where.items() if len(ms) > 1} == {}


def test_no_module_is_over_400_lines() -> None:
    long = {
        n: lines
        for n, p in MODULES.items()
        if (lines := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
