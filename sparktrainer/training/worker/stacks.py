"""Every thread's Python stack of a hung worker, written to its attempt's log before the kill.

Each training process (the worker child, each DDP rank) registers ``faulthandler`` for
``STACKS_SIGNAL`` at start: the handler runs in C, so it writes ``faulthandler.dump_traceback``
of all threads even when the hung thread holds the GIL or waits in a C call. It writes to
file descriptor 2, which the child points at the attempt's log while a job runs
(``joblogs.captured``) and which its DDP ranks inherit.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys

import psutil

STACKS_SIGNAL = signal.SIGUSR1


def dump_stacks_on_signal() -> None:
    """In a training process: dump every thread's stack to stderr on ``STACKS_SIGNAL``."""
    faulthandler.register(STACKS_SIGNAL, file=sys.stderr, all_threads=True, chain=False)


def ask_for_stacks(pid: int) -> int:
    """Signal ``pid`` and its descendants to dump their stacks; how many were signalled.

    A descendant that registered no handler (a data-loader process) dies of the signal: only
    ever called just before the whole tree is killed.
    """
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    signalled = 0
    for process in tree:
        with contextlib.suppress(psutil.Error, OSError):
            os.kill(process.pid, STACKS_SIGNAL)
            signalled += 1
    return signalled
