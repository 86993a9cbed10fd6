"""Session fixtures for the real HDFS (scripts/hdfs.sh) and OpenBao (scripts/openbao.sh).

Import the fixtures into a test module (``from ... import hdfs_url, openbao``). A running
HDFS is reused when ``SPAMQ_HDFS_URL`` is set; otherwise a private one is started in a
temporary state dir (the jar cache under .services/ is shared) and stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def run_script(script: str, *args: str, env: dict[str, str], timeout: float) -> None:
    proc = subprocess.run(
        [str(SCRIPTS / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def hdfs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """WebHDFS URL of a real NameNode+DataNode."""
    external = os.environ.get("SPAMQ_HDFS_URL")
    if external:
        yield external
        return
    state = tmp_path_factory.mktemp("hdfs")
    env = {"SPAMQ_HDFS_DIR": str(state)}
    run_script("hdfs.sh", "start", env=env, timeout=600)  # first run downloads ~220 MB
    try:
        yield read_env_file(state / "env")["SPAMQ_HDFS_URL"]
    finally:
        run_script("hdfs.sh", "stop", env=env, timeout=60)


@dataclass(frozen=True)
class Bao:
    addr: str
    root_token: str
    state_dir: Path

    def client(self, token: str | None = None):  # noqa: ANN201 - hvac is imported lazily
        import hvac

        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=5)


def start_openbao(state: Path) -> Bao:
    run_script("openbao.sh", "start", env={"SPAMQ_OPENBAO_DIR": str(state)}, timeout=60)
    env = read_env_file(state / "env")
    return Bao(env["SPAMQ_VAULT_ADDR"], env["SPAMQ_VAULT_TOKEN"], state)


def stop_openbao(bao: Bao) -> None:
    run_script("openbao.sh", "stop", env={"SPAMQ_OPENBAO_DIR": str(bao.state_dir)}, timeout=30)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A real OpenBao dev server (Vault API) on a free loopback port, root token in hand."""
    bao = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield bao
    finally:
        stop_openbao(bao)
