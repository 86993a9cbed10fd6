"""One behaviour, two stores: LocalArtifactStore (tmp dir) and HdfsArtifactStore (real HDFS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spamq.storage.artifacts import (
    ArtifactError,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactStore,
    HdfsArtifactStore,
)

pytestmark = pytest.mark.integration


def make_tree(base: Path) -> dict[str, bytes]:
    content = {
        "config.json": b'{"a": 1}\n',
        "weights.bin": os.urandom(300_000),
        "tok/vocab.txt": "héllo\nworld\n".encode(),
        "tok/deeper/empty.txt": b"",
    }
    for rel, data in content.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return content


def test_bytes_round_trip(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 100
    store.write_bytes("a/b/blob.bin", data)
    assert store.read_bytes("a/b/blob.bin") == data
    assert store.exists("a/b/blob.bin") and store.exists("a/b")
    store.write_bytes("a/b/blob.bin", b"second")
    assert store.read_bytes("a/b/blob.bin") == b"second"
    with pytest.raises(ArtifactExists):
        store.write_bytes("a/b/blob.bin", b"third", overwrite=False)
    assert store.read_bytes("a/b/blob.bin") == b"second"
    store.write_bytes("empty", b"")
    assert store.read_bytes("empty") == b""
    with pytest.raises(ArtifactNotFound):
        store.read_bytes("nope/missing.bin")


def test_upload_and_download_dir(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    content = make_tree(src)
    store.upload_dir(src, "models/m1")
    assert store.files("models/m1") == {rel: len(data) for rel, data in sorted(content.items())}
    with pytest.raises(ArtifactExists):
        store.upload_dir(src, "models/m1")
    dst = tmp_path / "dst"
    store.download_dir("models/m1", dst)
    got = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert got == content
    with pytest.raises(ArtifactNotFound):
        store.download_dir("models/absent", tmp_path / "x")


def test_list_and_exists(store: ArtifactStore) -> None:
    assert store.list("") == []
    assert store.list("missing") == []
    for name in ("b.txt", "a.txt", "sub/c.txt"):
        store.write_bytes(f"d/{name}", b"x")
    assert store.list("d") == ["a.txt", "b.txt", "sub"]
    assert store.list("d/a.txt") == []
    assert store.exists("d/sub/c.txt")
    assert not store.exists("d/sub/zzz")
    assert store.files("d") == {"a.txt": 1, "b.txt": 1, "sub/c.txt": 1}
    assert store.files("absent") == {}


def test_rename(store: ArtifactStore) -> None:
    store.write_bytes("tmp-1/f.txt", b"one")
    store.rename("tmp-1", "final/v1")
    assert not store.exists("tmp-1")
    assert store.read_bytes("final/v1/f.txt") == b"one"

    # Never moves *into* an existing directory, never clobbers one.
    store.write_bytes("tmp-2/f.txt", b"two")
    with pytest.raises(ArtifactExists):
        store.rename("tmp-2", "final/v1")
    assert store.files("final/v1") == {"f.txt": 3}
    assert store.read_bytes("tmp-2/f.txt") == b"two"

    # Files: refused without overwrite, replaced with it.
    store.write_bytes("x.json", b"old")
    store.write_bytes("y.json", b"new")
    with pytest.raises(ArtifactExists):
        store.rename("y.json", "x.json")
    store.rename("y.json", "x.json", overwrite=True)
    assert store.read_bytes("x.json") == b"new"
    assert not store.exists("y.json")

    with pytest.raises(ArtifactNotFound):
        store.rename("does-not-exist", "anywhere")


def test_write_bytes_atomic_leaves_no_temporary(store: ArtifactStore) -> None:
    store.write_bytes_atomic("aliases/prod.json", b'{"version": "a"}')
    store.write_bytes_atomic("aliases/prod.json", b'{"version": "b"}')
    assert store.read_bytes("aliases/prod.json") == b'{"version": "b"}'
    assert store.list("aliases") == ["prod.json"]


def test_delete(store: ArtifactStore) -> None:
    store.write_bytes("d/f.txt", b"x")
    store.write_bytes("d/sub/g.txt", b"y")
    assert store.delete("d/f.txt") is True
    assert not store.exists("d/f.txt")
    assert store.delete("d/f.txt") is False
    with pytest.raises(ArtifactError):
        store.delete("d")  # not empty, not recursive
    assert store.exists("d/sub/g.txt")
    assert store.delete("d", recursive=True) is True
    assert not store.exists("d")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "a/../../b"])
def test_paths_cannot_escape_the_root(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ArtifactError, match="stay under the root"):
        store.write_bytes(bad, b"x")


def test_unreachable_hdfs_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = HdfsArtifactStore(f"http://127.0.0.1:{port}", user="spamq", timeout_s=2)
    with pytest.raises(ArtifactError, match="HDFS unreachable"):
        store.exists("anything")
