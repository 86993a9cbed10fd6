"""Session fixtures for the real HDFS (scripts/hdfs.sh) and OpenBao (scripts/openbao.sh).

tests/conftest.py registers this module as a plugin, so ``hdfs_url`` and ``openbao`` are
fixtures every test can ask for; each starts only when a test asks. A running HDFS is reused
when ``SPAMQ_HDFS_URL`` is set; otherwise a private one is started in a temporary state dir
(the jar cache under .services/ is shared) and stopped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.local_services import free_port, private_hdfs, read_env_file, run_script
from spamq.storage.artifacts import HdfsArtifactStore

#: a loopback port nobody listens on (bound, then released)
closed_port = free_port


@pytest.fixture(scope="session")
def hdfs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """WebHDFS URL of a real NameNode+DataNode."""
    external = os.environ.get("SPAMQ_HDFS_URL")
    if external:
        yield external
        return
    with private_hdfs(tmp_path_factory.mktemp("hdfs")) as env:
        yield env["SPAMQ_HDFS_URL"]


def hdfs_store(url: str) -> HdfsArtifactStore:
    """A store on the HDFS at ``url`` under a fresh private root; ``delete("", recursive=True)``
    when done."""
    return HdfsArtifactStore(url, user="spamq", root=f"/spamq-test/{uuid.uuid4().hex}",
                             timeout_s=10)


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
