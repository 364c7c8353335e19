"""``sparktrainer jobs metrics|tensorboard``: a job's curves in the terminal, or in TensorBoard.

sparktrainer jobs metrics ID [--series NAME ...] [--json]   # one chart per group (loss, ...)
sparktrainer jobs tensorboard ID [--dir D] [--port P] [--no-run]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from sparktrainer.cli.common import (
    OK,
    CliError,
    add_db_options,
    command,
    known_job,
    load_settings,
    out,
    print_json,
    read_model,
    safe_id,
)
from sparktrainer.registry.metric_series import job_series
from sparktrainer.storage.layout import LOGS_DIR, MAX_LOG_FILES, checkpoint_prefix, model_prefix

CHART_WIDTH, CHART_HEIGHT = 80, 16


def register_job_actions(sub: Any) -> None:
    """Add ``jobs metrics`` and ``jobs tensorboard`` to the ``jobs`` group."""
    p = sub.add_parser("metrics", help="a job's metric series, plotted in the terminal")
    p.add_argument("job_id")
    p.add_argument("--series", action="append", help="only this series (repeatable)")
    p.add_argument("--json", action="store_true", help="the series as the API returns them")
    add_db_options(p)
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("tensorboard", help="download a job's TensorBoard files and open them")
    p.add_argument("job_id")
    p.add_argument("--dir", help="where to put them (default: $SPARKTRAINER_HOME/tensorboard)")
    p.add_argument("--port", type=int, default=6006, help="TensorBoard's port (default 6006)")
    p.add_argument("--no-run", action="store_true", help="download and print the command only")
    add_db_options(p)
    p.set_defaults(func=cmd_tensorboard)


@command
def cmd_metrics(args: argparse.Namespace) -> int:
    """Plot a job's series, one chart per group; exit 2 when the job is unknown."""
    found = read_model(load_settings(), args).read(job_series, args.job_id)
    if found is None:
        raise CliError(f"No metrics for job '{args.job_id}' in the registry read model")
    unknown = sorted(set(args.series or ()) - set(found["series"]))
    if unknown and found["series"]:  # a job with no point yet may still report them
        raise CliError(f"job {found['job_id']} has no series {', '.join(unknown)}; it has: "
                       + ", ".join(sorted(found["series"])))  # fmt: skip
    if args.series:
        found["series"] = {n: s for n, s in found["series"].items() if n in args.series}
    if args.json:
        print_json(found)
        return OK
    if not found["series"]:
        out.print(f"job {args.job_id} has reported no metrics yet")
        return OK
    for group, series in _groups(found["series"]).items():
        sys.stdout.write(chart(group, series, color=sys.stdout.isatty()) + "\n")
    return OK


def _groups(series: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for name, points in series.items():
        groups.setdefault(name.split("/")[0], {})[name] = points
    return groups


def chart(title: str, series: dict[str, dict[str, list[Any]]], *, color: bool) -> str:
    """One plotext chart of ``series`` (name -> steps/values), as text."""
    import plotext as plt

    plt.clear_figure()
    for name, points in series.items():
        if len(points["steps"]) == 1:
            plt.scatter(points["steps"], points["values"], label=name)
        else:
            plt.plot(points["steps"], points["values"], label=name)
    plt.title(title)
    plt.xlabel("step")
    plt.plotsize(CHART_WIDTH, CHART_HEIGHT)
    plt.theme("clear")
    text: str = plt.build()
    return text if color else plt.uncolorize(text)


@command
def cmd_tensorboard(args: argparse.Namespace) -> int:
    """Download the job's event files (the model's, or a running job's checkpoint's); run TB."""
    from sparktrainer.storage.s3 import ObjectStore

    settings = load_settings()
    job_id = safe_id(known_job(settings, args)["job_id"])
    root = Path(args.dir) if args.dir else settings.home / "tensorboard"
    store = ObjectStore.from_settings(settings)
    count = 0
    for prefix in (model_prefix(job_id), checkpoint_prefix(job_id)):
        count = store.get_flat_folder(prefix + LOGS_DIR, root / job_id, MAX_LOG_FILES)
        if count:
            break
    if not count:
        raise CliError(f"job '{job_id}' has no TensorBoard files (yet) in S3")
    logdir = f"tensorboard --logdir {root} --port {args.port}"
    out.print(f"{count} event files in {root / job_id}")
    if args.no_run or importlib.util.find_spec("tensorboard") is None:
        out.print(f"open them with: {logdir}", highlight=False)
        return OK
    out.print(f"$ {logdir}   (Ctrl-C stops it)", highlight=False)
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(root)]
    return subprocess.call([*argv, "--port", str(args.port)])
