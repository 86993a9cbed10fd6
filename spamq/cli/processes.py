"""``spamq worker --processes N``: N worker processes on one machine (or one device).

Each is a ``celery worker`` of its own, started here as a child with a distinct node name
(``spamq-1@host`` ... ``spamq-N@host``) and its own model, loaded in that process; they all
consume the same queues, so a store job's splits spread across them, and each keeps its own
batcher, so interactive requests still coalesce within a process. Torch threads per process
are cores / N unless ``SPAMQ_TORCH_THREADS`` is set.

The parent only supervises: SIGTERM or SIGINT is passed on as SIGTERM (Celery's warm
shutdown; a repeat is harmless), SIGQUIT as SIGQUIT. If a child exits on its own, the others
are stopped and the parent exits with that child's code, so whatever restarts the service
(compose, systemd, Kubernetes) restarts the whole set. On Linux each child gets SIGTERM should
the parent die, even by SIGKILL: no orphan keeps consuming.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def positive_int(value: str) -> int:
    """argparse type for ``--processes``: an integer >= 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {n}")
    return n


def node_name(name: str, k: int) -> str:
    """The k-th process's Celery node name: ``spamq@%h`` -> ``spamq-2@%h``."""
    head, at, host = name.partition("@")
    return f"{head}-{k}{at}{host}"


def threads_per_process(processes: int, torch_threads: int | None) -> int:
    """Torch threads per process: the setting if given, else cores / N (at least 1)."""
    return torch_threads or max(1, (os.cpu_count() or 1) // processes)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_group(argvs: list[list[str]], *, poll_s: float = 0.2) -> int:
    """Start one child per argv, supervise them (see the module docstring); the exit code."""
    children = [subprocess.Popen(argv, preexec_fn=_die_with_parent)  # noqa: S603
                for argv in argvs]
    logger.info("started %d worker processes: pids %s", len(children),
                ", ".join(str(c.pid) for c in children))
    stopping = False

    def stop_all(signum: int, _frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        sent = signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM
        for child in children:
            if child.poll() is None:
                child.send_signal(sent)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, stop_all)
    code = 0
    while any(child.poll() is None for child in children):
        if not stopping:
            for child in children:
                if child.returncode is not None:
                    rc = child.returncode
                    code = 128 - rc if rc < 0 else rc
                    logger.error("worker process %d exited with %s: stopping the others",
                                 child.pid, rc)
                    stop_all(signal.SIGTERM)
                    break
        time.sleep(poll_s)
    if not code:  # asked to stop: the first failure among the children, if any (a child
        # stopped by our SIGTERM before Celery installed its handler is not one)
        codes = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
        code = (128 - codes[0] if codes[0] < 0 else codes[0]) if codes else 0
    return code
