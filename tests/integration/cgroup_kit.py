"""A memory cgroup around one process, so the kernel's OOM killer really kills it (root only).

cgroup v2 (``memory.max``, ``memory.swap.max``) under the nearest group that delegates the
memory controller, else v1 (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes``). Charges the
process made before it moved stay where they were: the cap applies to what it allocates next.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_group(controllers: str) -> str | None:
    """This process's cgroup path on the hierarchy whose controller list is ``controllers``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if names == controllers or (controllers and controllers in names.split(",")):
            return path.lstrip("/")
    return None


def _limits(limit_bytes: int) -> tuple[Path, dict[str, str]] | None:
    """The parent folder for a new group and the files that cap it, or None (no memory cgroup)."""
    unified = _own_group("")
    if unified is not None and "memory" in _read(ROOT / "cgroup.controllers").split():
        # The nearest group (ours or an ancestor) that gives its children the memory
        # controller: a group with processes in it cannot, so the cage may be our sibling.
        parent = ROOT / unified
        while parent != ROOT and "memory" not in _read(parent / "cgroup.subtree_control").split():
            parent = parent.parent
        if "memory" in _read(parent / "cgroup.subtree_control").split():
            return parent, {"memory.max": str(limit_bytes), "memory.swap.max": "0"}
    v1 = _own_group("memory")
    if v1 is not None and (ROOT / "memory" / v1 / "memory.limit_in_bytes").is_file():
        files = {"memory.limit_in_bytes": str(limit_bytes)}
        if (ROOT / "memory" / v1 / "memory.memsw.limit_in_bytes").is_file():
            files["memory.memsw.limit_in_bytes"] = str(limit_bytes)  # no swap to escape to
        if (ROOT / "memory" / v1 / "memory.swappiness").is_file():
            files["memory.swappiness"] = "0"  # nor without swap accounting
        return ROOT / "memory" / v1, files
    return None


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()
    return ""


def cage_unavailable() -> str | None:
    """Why no memory cgroup can be made here (None when one can)."""
    if os.geteuid() != 0:
        return "needs root to make a memory cgroup"
    found = _limits(1 << 30)
    if found is None:
        return "no writable memory cgroup (v1 memory or v2 with memory delegated) here"
    probe = found[0] / f"sparktrainer-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as e:
        return f"cannot make a cgroup under {found[0]}: {e}"
    probe.rmdir()
    return None


@contextlib.contextmanager
def memory_cage(pid: int, limit_bytes: int) -> Iterator[Path]:
    """Move ``pid`` into a new memory cgroup capped at ``limit_bytes``; removed afterwards."""
    found = _limits(limit_bytes)
    assert found is not None, cage_unavailable()
    parent, files = found
    group = parent / f"sparktrainer-cage-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        for name, value in files.items():
            (group / name).write_text(value)
        (group / "cgroup.procs").write_text(str(pid))
        yield group
    finally:
        _remove(group, parent)


def _remove(group: Path, parent: Path) -> None:
    """Move what is left back to ``parent`` and remove the group (a dying process lingers)."""
    for _ in range(50):
        for pid in _read(group / "cgroup.procs").split():
            with contextlib.suppress(OSError):
                (parent / "cgroup.procs").write_text(pid)
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the cgroup {group} could not be removed")
