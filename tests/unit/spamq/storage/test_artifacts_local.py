"""LocalArtifactStore follows no symlink, at any depth (out of its root or into another
tenant's area); store paths that the OS or Redis would choke on are refused up front, without
echoing them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spamq.storage.artifacts import (
    ArtifactError,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactSymlink,
    LocalArtifactStore,
)
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
    with pytest.raises(ArtifactSymlink, match="symlink") as err:
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


def test_a_symlinked_root_works_but_no_symlink_inside_it(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")
    store = LocalArtifactStore(tmp_path / "root")
    store.write_bytes_atomic("a/b.json", b"{}")
    store.upload_file(Path(__file__), "a/c.py")
    assert store.read_bytes("a/b.json") == b"{}" and store.size("a/c.py") > 0
    os.symlink(tmp_path / "real" / "a", tmp_path / "real" / "alias")  # inside the root
    with pytest.raises(ArtifactSymlink):
        store.read_bytes("alias/b.json")
    assert store.list("") == ["a"]


def test_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    os.symlink("loop", tmp_path / "s" / "loop")
    with pytest.raises(ArtifactSymlink):
        LocalArtifactStore(tmp_path / "s").read_bytes("loop/x")


# ------------------------------------------------- symlinks inside the store, across tenants

A, B = "tenants/aaaa", "tenants/bbbb"


@pytest.fixture
def tenants(tmp_path: Path) -> LocalArtifactStore:
    """Two tenants' areas; B's holds in/rows.csv, out/part-00000.jsonl and a file at its top."""
    root = tmp_path / "store"
    for rel, data in [(f"{B}/in/rows.csv", b"text\nB's secret row\n"),
                      (f"{B}/out/part-00000.jsonl", b"{}\n"), (f"{B}/top.csv", b"text\nb\n"),
                      (f"{A}/in/mine.csv", b"text\nmine\n")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return LocalArtifactStore(root)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


# (where the link is made, what it points to, the path A then uses through it): a link at
# each depth of A's paths, from the tenant root down to the file itself.
LINKS = [
    ("tenants/aaaa", "bbbb", f"{A}/in/rows.csv"),  # A's whole home is a link to B's
    (f"{A}/linkB", "../bbbb", f"{A}/linkB/in/rows.csv"),  # in A's home
    (f"{A}/in/deeper", "../../bbbb/in", f"{A}/in/deeper/rows.csv"),  # in a subdirectory
    (f"{A}/in/rows.csv", "../../bbbb/in/rows.csv", f"{A}/in/rows.csv"),  # the file itself
    (f"{A}/in/self.csv", "mine.csv", f"{A}/in/self.csv"),  # even a link within A's own area
]


@pytest.mark.parametrize(("link", "target", "path"), LINKS)
def test_no_path_reads_through_a_symlink_at_any_depth(tenants, link, target, path):
    root = tenants.root
    if (root / link).is_dir():
        shutil.rmtree(root / link)
    os.symlink(target, root / link)
    before = _tree(root / B)
    reads = [lambda: tenants.read_bytes(path), lambda: tenants.size(path),
             lambda: tenants.stat(path), lambda: tenants.exists(path),
             lambda: tenants.download_file(path, root.parent / "got"),
             lambda: tenants.open_range(path, 0, 10).__enter__(),
             lambda: tenants.list_status(str(Path(path).parent)) if "rows" in path and
             link != f"{A}/in/rows.csv" else tenants.list_status(link),
             lambda: tenants.files(link), lambda: tenants.list(link)]
    for read in reads:
        with pytest.raises(ArtifactSymlink) as err:
            read()
        assert err.value.http_status == 422 and "secret" not in str(err.value)
        assert str(root) not in str(err.value)
    assert not (root.parent / "got").exists()
    assert _tree(root / B) == before


@pytest.mark.parametrize(("link", "target", "path"), LINKS)
def test_no_path_writes_through_a_symlink_at_any_depth(tenants, link, target, path):
    root = tenants.root
    if (root / link).is_dir():
        shutil.rmtree(root / link)
    os.symlink(target, root / link)
    before = _tree(root / B)
    parent = str(Path(path).parent)
    (root.parent / "local.bin").write_bytes(b"payload")
    writes = [lambda: tenants.write_bytes(path, b"x"),
              lambda: tenants.write_bytes(path, b"x", overwrite=False),
              lambda: tenants.write_bytes_atomic(path, b"x"),
              lambda: tenants.upload_file(root.parent / "local.bin", path, overwrite=True),
              lambda: tenants.rename(path, "stolen.csv"),
              lambda: tenants.delete(path), lambda: tenants.delete(link, recursive=True)]
    if (root / link).is_dir():  # a linked directory: nothing goes anywhere under it
        writes += [lambda: tenants.write_bytes_atomic(f"{parent}/_SUCCESS", b"{}"),
                   lambda: tenants.write_bytes(f"{parent}/_rejected/part-00000.jsonl", b""),
                   lambda: tenants.upload_file(root.parent / "local.bin",
                                               f"{parent}/part-00001.jsonl"),
                   lambda: tenants.rename("tenants/x.csv", f"{parent}/moved.csv")]
        (root / "tenants" / "x.csv").write_bytes(b"x")
    for write in writes:
        with pytest.raises(ArtifactSymlink):
            write()
    assert _tree(root / B) == before
    assert os.path.islink(root / link)  # not even the link itself was removed or replaced
    assert not (root / "stolen.csv").exists()


def test_a_symlink_swapped_in_after_the_listing_is_refused_at_the_read(tenants):
    # As a worker reads a split by path long after the submission listed it.
    root = tenants.root
    [(name, st)] = tenants.list_status(f"{A}/in")
    assert (name, st.type) == ("mine.csv", "file")
    os.rename(root / A / "in", root / A / "in.real")
    os.symlink("../bbbb/in", root / A / "in")
    (root / B / "in" / "mine.csv").write_bytes(b"text\nB's row\n")
    with pytest.raises(ArtifactSymlink):
        tenants.read_bytes(f"{A}/in/mine.csv")
    with pytest.raises(ArtifactSymlink):
        tenants.write_bytes_atomic(f"{A}/in/_SUCCESS", b"{}")
    assert sorted(os.listdir(root / B / "in")) == ["mine.csv", "rows.csv"]


def test_listings_walks_and_plain_paths_still_work(tenants):
    root = tenants.root
    os.symlink("../bbbb/in", root / A / "link")
    assert tenants.list(A) == ["in"] and [n for n, _ in tenants.list_status(A)] == ["in"]
    assert tenants.files(A) == {"in/mine.csv": 10}
    tenants.write_bytes_atomic(f"{A}/out/x/_SUCCESS", b"{}")
    tenants.rename(f"{A}/out/x/_SUCCESS", f"{A}/out/y/_SUCCESS")
    assert tenants.read_bytes(f"{A}/out/y/_SUCCESS") == b"{}"
    with pytest.raises(ArtifactExists):
        tenants.write_bytes(f"{A}/out/y/_SUCCESS", b"", overwrite=False)
    with pytest.raises(ArtifactNotFound):
        tenants.read_bytes(f"{A}/out/none")
    with pytest.raises(ArtifactError, match="a directory|not a regular file"):
        tenants.read_bytes(f"{A}/out")
    assert tenants.stat(f"{A}/in/mine.csv/x") is None and tenants.size(f"{A}/none") is None
    assert tenants.delete(f"{A}/out", recursive=True) and not tenants.exists(f"{A}/out")
    assert tenants.delete(f"{A}/out") is False


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
