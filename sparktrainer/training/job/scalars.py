"""A job's TensorBoard event files: the scalars of its progress reports, under ``workdir/logs``.

The names and steps are the metric series' (``contracts/series.py``), so TensorBoard shows the
curves the dashboard shows. The files travel with each checkpoint (``checkpoints/{id}/logs/``)
and with the model (``models/{id}/logs/``); an attempt that resumes brings them back first and
writes a new file beside them that starts with a purge at the resumed step + 1, so TensorBoard
drops what the previous attempt logged past the checkpoint and the run goes on as one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from sparktrainer.contracts.events import JobProgress
from sparktrainer.contracts.series import points_of, shown

log = structlog.get_logger(__name__)
FLUSH_EVERY_S = 30


class ScalarLog:
    """The event files of one job; a failure to write costs the files, never the job."""

    def __init__(self, folder: Path, task: str | None) -> None:
        self.folder, self.task = folder, task
        self._writer: Any = None
        self._purge_step: int | None = None
        self._broken = self._closed = False

    def resume_at(self, step: int) -> None:
        """Continue the run of files already in the folder after ``step`` (before any write)."""
        self._purge_step = step + 1

    def write(self, report: JobProgress) -> None:
        """The report's scalars at its step."""
        writer = self._open()
        if writer is None:
            return
        try:
            for series, value in points_of(report).items():
                for name, shown_value in shown(series, value, self.task):
                    writer.add_scalar(name, shown_value, report.step)
        except OSError as e:
            self._fail(e)

    def _open(self) -> Any:
        if self._writer is None and not (self._broken or self._closed):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.folder.mkdir(parents=True, exist_ok=True)
                self._wait_past_existing_files()
                self._writer = SummaryWriter(
                    str(self.folder), purge_step=self._purge_step, flush_secs=FLUSH_EVERY_S
                )
            except (ImportError, OSError) as e:  # no tensorboard installed, a full disk
                self._fail(e)
        return self._writer

    def _wait_past_existing_files(self) -> None:
        """TensorBoard reads a folder's files in name order, and a name starts with its second
        of creation (``events.out.tfevents.{second}.{host}.{pid}.{n}``; ``n`` compares as text,
        so 10 sorts before 9): a file made in the same second as one already there may be read
        first, its purge lost. So a new file starts in a later second (at most a second's wait)."""
        seconds = [_second_of(p.name) for p in self.folder.glob("events.out.tfevents.*")]
        newest = max((s for s in seconds if s is not None), default=None)
        if newest is not None:
            time.sleep(max(0.0, min(1.0, newest + 1 - time.time())))

    def _fail(self, error: BaseException) -> None:
        self._broken = True
        log.warning("tensorboard_files_off", error=f"{type(error).__name__}: {error}"[:300])

    def files(self) -> dict[str, Path]:
        """The event files written so far (flushed), by name."""
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError as e:
                self._fail(e)
        if not self.folder.is_dir():
            return {}
        return {p.name: p for p in sorted(self.folder.iterdir()) if p.is_file()}

    def snapshot(self, into: Path) -> dict[str, Path]:
        """Copies of the event files as they are now (the writer goes on appending to its own)."""
        into.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, path in self.files().items():
            out[name] = Path(shutil.copyfile(path, into / name))
        return out

    def close(self) -> dict[str, Path]:
        """Flush and close the writer; the final files by name (nothing is written after)."""
        found = self.files()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True
        return found


def _second_of(name: str) -> int | None:
    part = name.removeprefix("events.out.tfevents.").split(".", 1)[0]
    return int(part) if part.isdigit() else None
