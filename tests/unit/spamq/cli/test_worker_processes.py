"""``spamq worker --processes N``: the option's parsing, and what the command starts."""

from __future__ import annotations

import argparse
import signal
import sys

import pytest

from spamq.cli import main as cli
from spamq.cli import processes


@pytest.mark.parametrize(("argv", "expected"), [([], None), (["--processes", "1"], 1),
                                                 (["--processes=4"], 4)])
def test_processes_parses(argv, expected):
    args = cli.build_parser().parse_args(["worker", *argv])
    assert args.processes == expected


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_a_bad_processes_value_is_a_clear_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["worker", "--processes", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --processes: must be an integer >= 1" in err


def test_the_setting_must_be_at_least_one(monkeypatch):
    from pydantic import ValidationError

    from spamq.settings import Settings

    monkeypatch.setenv("SPAMQ_WORKER_PROCESSES", "0")
    with pytest.raises(ValidationError, match="worker_processes"):
        Settings()


@pytest.mark.parametrize(("name", "k", "expected"), [
    ("spamq@%h", 2, "spamq-2@%h"), ("w@host", 1, "w-1@host"), ("plain", 3, "plain-3")])
def test_node_names_are_distinct(name, k, expected):
    assert processes.node_name(name, k) == expected


def test_threads_are_cores_over_processes(monkeypatch):
    monkeypatch.setattr(processes.os, "cpu_count", lambda: 8)
    assert processes.threads_per_process(2, None) == 4
    assert processes.threads_per_process(16, None) == 1
    assert processes.threads_per_process(2, 3) == 3  # SPAMQ_TORCH_THREADS wins


def _run_worker(monkeypatch, args: argparse.Namespace, env: dict[str, str] | None = None):
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SPAMQ_TORCH_THREADS", raising=False)
    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "_exec", lambda argv: seen.update(exec=argv) or 0)
    monkeypatch.setattr(processes, "run_group", lambda argvs: seen.update(group=argvs) or 0)
    monkeypatch.setattr(processes.os, "cpu_count", lambda: 4)
    cli._worker(args)
    return seen


def test_one_process_execs_celery_as_before(monkeypatch):
    seen = _run_worker(monkeypatch, argparse.Namespace(queues=None, name="w@h", processes=1))
    assert "group" not in seen
    assert "--hostname=w@h" in seen["exec"]


def test_n_processes_start_n_celery_nodes_with_distinct_names(monkeypatch):
    seen = _run_worker(monkeypatch, argparse.Namespace(queues="q", name="w@h", processes=2))
    argvs = seen["group"]
    assert len(argvs) == 2
    assert [a for argv in argvs for a in argv if a.startswith("--hostname=")] == [
        "--hostname=w-1@h", "--hostname=w-2@h"]
    assert all("--queues=q" in argv for argv in argvs)
    import os

    assert os.environ["SPAMQ_TORCH_THREADS"] == "2"  # 4 cores / 2 processes


def test_the_setting_gives_the_default(monkeypatch):
    seen = _run_worker(monkeypatch, argparse.Namespace(queues=None, name="w@h", processes=None),
                       env={"SPAMQ_WORKER_PROCESSES": "3"})
    assert len(seen["group"]) == 3


def _sleeper(code: int, seconds: float = 30) -> list[str]:
    return [sys.executable, "-c",
            f"import time, sys; time.sleep({seconds}); sys.exit({code})"]


def test_a_child_that_exits_stops_the_others_and_gives_its_code():
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)}
    try:
        code = processes.run_group([_sleeper(0, 60), _sleeper(7, 0.2)], poll_s=0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert code == 7
