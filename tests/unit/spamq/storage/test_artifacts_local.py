"""LocalArtifactStore never follows a symlink out of its root; store paths that the OS or
Redis would choke on are refused up front, without echoing them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spamq.storage.artifacts import ArtifactError, LocalArtifactStore
from spamq.storage.tenancy import store_path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_bytes(b"root:x:0:0")
    return d


@pytest.fixture
def store(tmp_path: Path, outside: Path) -> LocalArtifactStore:
    root = tmp_path / "store"
    (root / "d").mkdir(parents=True)
    (root / "d" / "real.txt").write_bytes(b"real")
    os.symlink(outside / "secret.txt", root / "d" / "passwd")
    os.symlink(outside, root / "out")
    return LocalArtifactStore(root)


ESCAPING = [
    lambda s, _: s.read_bytes("d/passwd"),
    lambda s, _: s.read_bytes("out/secret.txt"),
    lambda s, _: s.write_bytes("out/part-00000.jsonl", b"x"),
    lambda s, _: s.write_bytes("d/passwd", b"x"),
    lambda s, _: s.write_bytes_atomic("out/_SUCCESS", b"x"),
    lambda s, _: s.size("d/passwd"),
    lambda s, _: s.exists("out/secret.txt"),
    lambda s, _: s.delete("out/secret.txt"),
    lambda s, _: s.delete("out", recursive=True),
    lambda s, _: s.rename("d/real.txt", "out/moved.txt"),
    lambda s, _: s.rename("out/secret.txt", "d/stolen.txt"),
    lambda s, _: s.files("out"),
    lambda s, _: s.list("out"),
    lambda s, tmp: s.download_file("d/passwd", tmp / "got"),
    lambda s, tmp: s.upload_file(tmp / "outside" / "secret.txt", "out/up.txt"),
]


@pytest.mark.parametrize("op", ESCAPING)
def test_symlinks_out_of_the_store_are_refused(store, outside, tmp_path, op):
    with pytest.raises(ArtifactError, match="escapes the store root") as err:
        op(store, tmp_path)
    assert str(tmp_path) not in str(err.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"root:x:0:0"
    assert (store.root / "d" / "real.txt").read_bytes() == b"real"
    assert not (tmp_path / "got").exists()


def test_listings_skip_symlinks(store):
    store.write_bytes("d/sub/f.txt", b"abc")
    assert store.list("") == ["d"]
    assert store.list("d") == ["real.txt", "sub"]
    assert store.files("") == {"d/real.txt": 4, "d/sub/f.txt": 3}
    assert store.files("d") == {"real.txt": 4, "sub/f.txt": 3}
    assert store.files("absent") == {} and store.files("d/real.txt") == {}


def test_a_symlink_swapped_in_after_the_check_is_not_followed(store, outside, monkeypatch):
    # As if the path was checked, then replaced by a symlink before the open.
    monkeypatch.setattr(LocalArtifactStore, "_p", lambda self, path: self.root / path)
    with pytest.raises(ArtifactError, match="is a symlink"):
        store.read_bytes("d/passwd")
    with pytest.raises(ArtifactError, match="is a symlink"):
        store.write_bytes("d/passwd", b"overwritten")
    assert (outside / "secret.txt").read_bytes() == b"root:x:0:0"


def test_a_symlinked_root_and_symlinks_inside_it_still_work(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")
    store = LocalArtifactStore(tmp_path / "root")
    store.write_bytes_atomic("a/b.json", b"{}")
    store.upload_file(Path(__file__), "a/c.py")
    assert store.read_bytes("a/b.json") == b"{}" and store.size("a/c.py") > 0
    os.symlink(tmp_path / "real" / "a", tmp_path / "real" / "alias")  # stays inside the root
    assert store.read_bytes("alias/b.json") == b"{}"
    assert store.list("") == ["a"]


def test_a_symlink_loop_is_an_artifact_error(tmp_path):
    (tmp_path / "s").mkdir()
    os.symlink("loop", tmp_path / "s" / "loop")
    with pytest.raises(ArtifactError, match="cannot be resolved"):
        LocalArtifactStore(tmp_path / "s").read_bytes("loop/x")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("data/in\x00.csv", "control character"),
        ("data/in\n.csv", "control character"),
        ("data/\x7f", "control character"),
        ("data/\x85.csv", "control character"),
        ("data/" + "a" * 256 + "/in.csv", "component longer than 255 bytes"),
        ("data/" + "\u00e9" * 128, "component longer than 255 bytes"),  # 256 bytes in UTF-8
        ("/".join(["abcdefgh"] * 120), "longer than 1024 bytes"),
        ("data/\ud800.csv", "lone surrogate"),
    ],
)
def test_unusable_store_paths_are_refused_without_echoing_them(path, why):
    with pytest.raises(ValueError, match=why) as err:
        store_path(path)
    assert "data" not in str(err.value) and "abcdefgh" not in str(err.value)


def test_store_paths_keep_their_rules():
    assert store_path("/data/in.csv") == "data/in.csv"
    assert store_path("data/./x//y.csv") == "data/x/y.csv"
    assert store_path("data/" + "a" * 255) == "data/" + "a" * 255
    assert store_path("d/caf\u00e9 \u00fcber.csv") == "d/caf\u00e9 \u00fcber.csv"
    for bad in ("", "/", ".", "../x", "a/../../b"):
        with pytest.raises((ValueError, ArtifactError)):
            store_path(bad)
