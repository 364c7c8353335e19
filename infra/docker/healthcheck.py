#!/usr/bin/env python3
"""Health and readiness checks of the SparkTrainer image (installed as sparktrainer-healthcheck).

    sparktrainer-healthcheck            liveness (the image's HEALTHCHECK, compose)
    sparktrainer-healthcheck --ready    readiness (Kubernetes readinessProbe of the API)

Both ask the API's ``GET /api/health`` on 127.0.0.1:$SPARKTRAINER_API_PORT (it needs no
token and answers 200 while the process serves).

- Liveness: healthy on a 2xx answer. When the container does not run the API (the
  validator, trainer and projector consumers have no HTTP port) it reports healthy while it
  runs: a consumer that fails exits, and the restart policy deals with it.
- Readiness: also requires, when the API runs its own projector (``--with-projector``),
  that the projector has caught up with the log (``projector.caught_up`` in the answer;
  until the API reports that field, ``projector.ready``: partitions assigned and sought).
  So a new replica is not sent traffic while its read model is still being rebuilt.

``SPARKTRAINER_HEALTHCHECK_URL`` overrides the URL. Exit code 0 = healthy/ready, 1 = not.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def runs_api(argv: list[str]) -> bool:
    """True when the container's command line is ``... serve api ...``."""
    return any(a == "serve" and b == "api" for a, b in itertools.pairwise(argv))


def container_argv(cmdline_file: str) -> list[str]:
    """PID 1's arguments (tini's, which include the command it supervises)."""
    try:
        with open(cmdline_file, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def projector_ready(health: Any) -> tuple[bool, str]:
    """Whether the read model behind this API can be served, from /api/health's answer."""
    projector = health.get("projector") if isinstance(health, dict) else None
    if not isinstance(projector, dict) or not projector.get("in_process"):
        return True, "no in-process projector (the read model is kept by another process)"
    flag = "caught_up" if "caught_up" in projector else "ready"
    return bool(projector.get(flag)), f"in-process projector {flag}={projector.get(flag)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparktrainer-healthcheck", description=__doc__)
    parser.add_argument("--ready", action="store_true", help="readiness instead of liveness")
    parser.add_argument("--cmdline-file", default="/proc/1/cmdline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    url = os.environ.get("SPARKTRAINER_HEALTHCHECK_URL")
    if not url:
        if not args.ready and not runs_api(container_argv(args.cmdline_file)):
            return 0
        url = f"http://127.0.0.1:{os.environ.get('SPARKTRAINER_API_PORT', '8080')}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status, body = response.status, response.read()
    except (urllib.error.URLError, OSError) as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    if not args.ready:
        return 0
    try:
        ok, why = projector_ready(json.loads(body))
    except ValueError as e:
        print(f"not ready: {url}: answer is not JSON: {e}", file=sys.stderr)
        return 1
    if not ok:
        print(f"not ready: {why}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
