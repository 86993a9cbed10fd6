"""Where model artifacts live: HDFS over WebHDFS, or a local directory, behind one small interface.

Paths are relative POSIX strings ("models/spamq-sms/aliases/production.json") under the
store's root. Both implementations behave the same; the test suite runs against both.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import stat
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from spamq.errors import SpamqError

if TYPE_CHECKING:
    from spamq.settings import Settings

logger = logging.getLogger(__name__)


class ArtifactError(SpamqError, RuntimeError):
    """An artifact store operation failed (unreachable, refused, or bad arguments)."""

    http_status = 503
    code = "unavailable"
    public_message = "the artifact store failed; retry later"


class ArtifactNotFound(ArtifactError):
    """The path does not exist in the store."""

    http_status = 404
    code = "not_found"
    public_message = "no such file in the artifact store"


class ArtifactExists(ArtifactError):
    """The destination already exists and overwriting was not asked for."""

    http_status = 409
    code = "conflict"
    public_message = "the destination already exists in the artifact store"


def clean_path(path: str) -> str:
    """Normalise a store path; refuse absolute paths and '..' so nothing escapes the root."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts:
        raise ArtifactError(f"store paths are relative and stay under the root: {path!r}")
    s = p.as_posix()
    return "" if s == "." else s


def _join(*parts: str) -> str:
    return clean_path("/".join(p for p in parts if p))


@dataclass(frozen=True)
class FileStatus:
    """What ``stat`` tells about one path: ``type`` "file" or "dir", ``size`` in bytes (0 for a
    directory), ``mtime`` the last modification in milliseconds since the epoch (an int)."""

    type: str
    size: int
    mtime: int


# How much one read of a ranged stream asks the storage for at a time.
RANGE_CHUNK = 1 << 16


class _RangeReader(io.RawIOBase):
    """At most ``limit`` bytes (None: no limit) pulled from ``pull(n)`` (b"" at the end).

    Each read asks ``pull`` for no more than it returns, so nothing past the range is read.
    """

    def __init__(self, pull: Callable[[int], bytes], limit: int | None) -> None:
        self._pull, self._left = pull, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # b: any writable buffer
        n = len(b) if self._left is None else min(len(b), self._left)
        if n <= 0:
            return 0
        data = self._pull(n)
        b[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)


def _check_range(path: str, offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ArtifactError(f"{path!r}: bad byte range (offset {offset}, length {length})")


def _local_files(local: Path) -> list[Path]:
    return sorted(p for p in local.rglob("*") if p.is_file())


class ArtifactStore(ABC):
    """Files and directories under one root: the calls the model registry needs, no more."""

    @abstractmethod
    def describe(self) -> str:
        """Where this store points (for logs and errors)."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    def size(self, path: str) -> int | None:
        """Bytes in the file at ``path``; None when it is missing or not a file."""
        raise NotImplementedError

    def stat(self, path: str) -> FileStatus | None:
        """The file or directory at ``path``; None when nothing is there."""
        raise NotImplementedError

    def list_status(self, path: str = "") -> list[tuple[str, FileStatus]]:
        """``(name, status)`` of each entry directly under a directory, sorted by name; [] when
        it does not exist or is not a directory."""
        raise NotImplementedError

    def open_range(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """A context manager giving a binary file-like that streams bytes
        ``[offset, offset + length)`` of a file (``length`` None: to its end).

        It is read as it is consumed, never whole; a range past the end of the file gives
        fewer bytes, or none. ArtifactNotFound when there is no such file.
        """
        raise NotImplementedError

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        """Write a file, creating parent directories."""

    @abstractmethod
    def list(self, path: str = "") -> list[str]:
        """Names directly under a directory, sorted; [] when it does not exist."""

    @abstractmethod
    def files(self, path: str) -> dict[str, int]:
        """Every file under a directory, recursively: {relative posix path: size in bytes}."""

    @abstractmethod
    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Move ``src`` to exactly ``dst`` (never into it); ArtifactExists if ``dst`` exists.

        With ``overwrite`` an existing file at ``dst`` is replaced atomically.
        """

    @abstractmethod
    def delete(self, path: str, *, recursive: bool = False) -> bool:
        """Delete a file or directory; return False when there was nothing to delete."""

    @abstractmethod
    def upload_file(self, local: Path, path: str, *, overwrite: bool = False) -> None: ...

    @abstractmethod
    def download_file(self, path: str, local: Path) -> None: ...

    def upload_dir(self, local: Path, path: str) -> None:
        """Copy every file under ``local`` to ``path`` (which must not exist yet)."""
        if not local.is_dir():
            raise ArtifactError(f"{local}: not a directory")
        if self.exists(path):
            raise ArtifactExists(f"{self.describe()}: {path} already exists")
        for f in _local_files(local):
            self.upload_file(f, _join(path, f.relative_to(local).as_posix()))

    def download_dir(self, path: str, local: Path) -> None:
        """Copy every file under ``path`` into ``local`` (created if missing)."""
        listing = self.files(path)
        if not listing and not self.exists(path):
            raise ArtifactNotFound(f"{self.describe()}: {path} does not exist")
        local.mkdir(parents=True, exist_ok=True)
        for rel in sorted(listing):
            target = local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            self.download_file(_join(path, rel), target)

    def write_bytes_atomic(self, path: str, data: bytes) -> None:
        """Write to a temporary sibling, then rename over ``path``: readers never see half."""
        parent = str(PurePosixPath(clean_path(path)).parent)
        tmp = _join("" if parent == "." else parent, f".tmp-{uuid.uuid4().hex}")
        self.write_bytes(tmp, data, overwrite=False)
        try:
            self.rename(tmp, path, overwrite=True)
        except BaseException:
            self.delete(tmp)
            raise


class ArtifactSymlink(ArtifactError):
    """The path is a symlink, or goes through one, in a store that refuses them (the local one).

    A store path must be where it reads: tenancy (spamq/storage/tenancy.py) is checked on the
    path as written, which is its resolved path only while no component is a symlink.
    """

    http_status = 422
    code = "symlink_refused"
    public_message = "a path goes through a symlink in the artifact store; symlinks are refused"


# Each directory of a path is opened relative to the one above it, never following a symlink.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_FILE_FLAGS = {
    "rb": os.O_RDONLY | getattr(os, "O_NONBLOCK", 0),  # a FIFO never blocks the open
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


class LocalArtifactStore(ArtifactStore):
    """A directory on this machine; renames are os.rename/os.replace (atomic on one filesystem).

    No path goes through a symlink. Every path is walked from the root one directory at a time,
    each opened with O_NOFOLLOW relative to the descriptor of the one above (openat), and its
    last component is opened, stat'ed, renamed or deleted relative to its parent's descriptor:
    a symlink at any depth (a tenant's area, a directory in it, the file itself) is an
    :class:`ArtifactSymlink`, also one swapped in after an earlier check, since the descriptors
    hold the directories that were checked. So a path is its resolved path, and tenancy,
    checked on the path, holds for what is read and written. Listings skip symlinks. The root
    itself may be a symlink (an operator's choice).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"local:{self.root}"

    @staticmethod
    def _parts(path: str) -> list[str]:
        rel = clean_path(path)
        return rel.split("/") if rel else []

    def _root(self) -> Path:
        try:
            return self.root.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ArtifactError(f"{self.describe()}: the root cannot be resolved") from exc

    def _refuse(self, exc: OSError, fd: int, name: str, path: str) -> ArtifactError:
        """The store's error for ``exc``, raised on ``name`` in the directory ``fd``."""
        if _is_link(fd, name):
            return ArtifactSymlink(f"{path!r} goes through a symlink, which the store refuses")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ArtifactNotFound(f"{self.describe()}: {path} does not exist")
        if exc.errno == errno.EEXIST:
            return ArtifactExists(f"{self.describe()}: {path} already exists")
        if exc.errno == errno.EISDIR:
            return ArtifactError(f"{self.describe()}: {path} is a directory")
        return ArtifactError(f"{self.describe()}: {path}: {exc.strerror}")

    @contextmanager
    def _dir(self, parts: list[str], path: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``parts`` under the root, opened a component at a
        time without following a symlink (``create``: missing ones are made). ArtifactNotFound
        when one is missing or a file, ArtifactSymlink when one is a symlink."""
        root = self._root()
        if create:
            root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError as exc:
            raise ArtifactNotFound(f"{self.describe()}: the root does not exist") from exc
        try:
            for name in parts:
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise self._refuse(exc, fd, name, path) from exc
                except ValueError as exc:  # a NUL
                    raise ArtifactError(f"{path!r} cannot be resolved in the store") from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _lstat(self, path: str) -> os.stat_result | None:
        """The entry at ``path`` as it is (a directory, a file, ...); None when it is missing,
        ArtifactSymlink when it or a directory above it is a symlink."""
        parts = self._parts(path)
        try:
            with self._dir(parts[:-1], path) as fd:
                return self._lstat_at(fd, parts[-1], path) if parts else os.fstat(fd)
        except ArtifactNotFound:
            return None

    @staticmethod
    def _lstat_at(fd: int, name: str, path: str) -> os.stat_result | None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise ArtifactSymlink(f"{path!r} is a symlink, which the store refuses")
        return st

    def _open(self, path: str, mode: str, buffering: int = -1) -> BinaryIO:
        """Open a regular file (for writing: parent directories created), following no
        symlink on the way or at its end."""
        parts = self._parts(path)
        if not parts:
            raise ArtifactError(f"{self.describe()}: the root is a directory")
        with self._dir(parts[:-1], path, create="r" not in mode) as dir_fd:
            try:
                fd = os.open(parts[-1], _FILE_FLAGS[mode] | _NOFOLLOW | _CLOEXEC, 0o666,
                             dir_fd=dir_fd)
            except OSError as exc:
                raise self._refuse(exc, dir_fd, parts[-1], path) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ArtifactError(f"{self.describe()}: {path} is not a regular file")
        return os.fdopen(fd, "rb" if "r" in mode else "wb", buffering=buffering)

    def exists(self, path: str) -> bool:
        return self._lstat(path) is not None

    def size(self, path: str) -> int | None:
        st = self._lstat(path)
        return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None

    def stat(self, path: str) -> FileStatus | None:
        st = self._lstat(path)
        return None if st is None else _local_status(st)

    def _entries(self, path: str) -> list[tuple[str, os.stat_result]]:
        """The entries directly under the directory ``path`` but symlinks ([] when missing)."""
        out = []
        try:
            with self._dir(self._parts(path), path) as fd, os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # gone since the listing
                        continue
                    if not stat.S_ISLNK(st.st_mode):
                        out.append((entry.name, st))
        except ArtifactNotFound:
            return []
        return sorted(out, key=lambda item: item[0])

    def list_status(self, path: str = "") -> list[tuple[str, FileStatus]]:
        return [(name, fs) for name, st in self._entries(path)
                if (fs := _local_status(st)) is not None]

    @contextmanager
    def open_range(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> Iterator[BinaryIO]:
        _check_range(path, offset, length)
        with self._open(path, "rb", buffering=0) as raw:  # unbuffered: no read-ahead
            raw.seek(offset)
            with io.BufferedReader(_RangeReader(raw.read, length), RANGE_CHUNK) as reader:
                yield reader

    def read_bytes(self, path: str) -> bytes:
        with self._open(path, "rb") as fh:
            return fh.read()

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        with self._open(path, "wb" if overwrite else "xb") as fh:
            fh.write(data)

    def list(self, path: str = "") -> list[str]:
        return [name for name, _ in self._entries(path)]

    def files(self, path: str) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            with self._dir(self._parts(path), path) as fd:
                # fwalk never enters a symlinked directory; lstat leaves out symlinked files
                for d, _dirs, names, d_fd in os.fwalk(".", dir_fd=fd):
                    for name in names:
                        with suppress(FileNotFoundError):
                            st = os.stat(name, dir_fd=d_fd, follow_symlinks=False)
                            if stat.S_ISREG(st.st_mode):
                                out[PurePosixPath(d, name).as_posix()] = st.st_size
        except ArtifactNotFound:
            return {}
        return dict(sorted(out.items()))

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        s, d = self._parts(src), self._parts(dst)
        if not s or not d:
            raise ArtifactError(f"{self.describe()}: the root cannot be renamed")
        with self._dir(s[:-1], src) as src_fd:
            if self._lstat_at(src_fd, s[-1], src) is None:
                raise ArtifactNotFound(f"{self.describe()}: {src} does not exist")
            with self._dir(d[:-1], dst, create=True) as dst_fd:
                there = self._lstat_at(dst_fd, d[-1], dst)
                if overwrite and (there is None or not stat.S_ISDIR(there.st_mode)):
                    os.replace(s[-1], d[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    return
                # No renameat2(RENAME_NOREPLACE) in Python; check-then-rename will do here.
                if there is not None:
                    raise ArtifactExists(f"{self.describe()}: {dst} already exists")
                os.rename(s[-1], d[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def delete(self, path: str, *, recursive: bool = False) -> bool:
        parts = self._parts(path)
        if not parts:  # the whole store
            root = self._root()
            if not root.is_dir():
                return False
            if recursive:
                shutil.rmtree(root)
            else:
                root.rmdir()
            return True
        try:
            with self._dir(parts[:-1], path) as fd:
                st = self._lstat_at(fd, parts[-1], path)
                if st is None:
                    return False
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(parts[-1], dir_fd=fd)
                elif recursive:  # fd-based: never follows a symlink inside
                    shutil.rmtree(parts[-1], dir_fd=fd)
                else:
                    try:
                        os.rmdir(parts[-1], dir_fd=fd)
                    except OSError as exc:
                        raise ArtifactError(
                            f"{self.describe()}: {path} is a non-empty directory") from exc
        except ArtifactNotFound:
            return False
        return True

    def upload_file(self, local: Path, path: str, *, overwrite: bool = False) -> None:
        with open(local, "rb") as src, self._open(path, "wb" if overwrite else "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def download_file(self, path: str, local: Path) -> None:
        with self._open(path, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except (OSError, ValueError):
        return False


def _local_status(st: os.stat_result) -> FileStatus | None:
    """A regular file or a directory (as ``lstat`` saw it: never a symlink's target)."""
    if stat.S_ISREG(st.st_mode):
        return FileStatus("file", st.st_size, st.st_mtime_ns // 1_000_000)
    if stat.S_ISDIR(st.st_mode):
        return FileStatus("dir", 0, st.st_mtime_ns // 1_000_000)
    return None


class HdfsArtifactStore(ArtifactStore):
    """HDFS through WebHDFS (HdfsCLI), simple auth as ``user``; every call has a timeout.

    Only WebHDFS operations that Hadoop 2.7 and 3.x share are used. Unlike the local store it
    needs no symlink checks: symlinks are disabled in released Hadoop (the NameNode answers
    CREATESYMLINK with "Symlinks not supported" unless a test-only switch is on), so in
    practice a path here is where it reads and tenancy checked on the path holds.
    """

    def __init__(
        self, url: str, *, user: str, root: str = "/spamq", timeout_s: float = 30.0
    ) -> None:
        from hdfs import (
            InsecureClient,  # light import, but keeps `import spamq.storage.artifacts` cheap
        )

        self.url, self.user = url.rstrip("/"), user
        self.root = "/" + root.strip("/")
        # HdfsCLI's timeout goes to requests: (connect, read).
        self._client = InsecureClient(
            self.url, user=user, root=self.root, timeout=(min(timeout_s, 5.0), timeout_s)
        )

    def describe(self) -> str:
        return f"{self.url}{self.root}"

    def _p(self, path: str) -> str:
        rel = clean_path(path)
        return f"{self.root}/{rel}" if rel else self.root

    @contextmanager
    def _errors(self, what: str, path: str) -> Iterator[None]:
        import requests
        from hdfs.util import HdfsError

        try:
            yield
        except HdfsError as exc:
            name = getattr(exc, "exception", None)
            msg = f"{self.describe()}: {what} {path}: {exc.message}"
            if name == "FileNotFoundException" or "does not exist" in exc.message:
                raise ArtifactNotFound(msg) from exc
            if name == "FileAlreadyExistsException" or "already exists" in exc.message:
                raise ArtifactExists(msg) from exc
            raise ArtifactError(msg) from exc
        except requests.RequestException as exc:
            raise ArtifactError(
                f"{self.describe()}: {what} {path}: HDFS unreachable ({exc})"
            ) from exc

    def _status(self, path: str) -> dict | None:
        with self._errors("stat", path):
            return self._client.status(self._p(path), strict=False)

    def exists(self, path: str) -> bool:
        return self._status(path) is not None

    def size(self, path: str) -> int | None:
        st = self._status(path)
        return int(st["length"]) if st is not None and st["type"] == "FILE" else None

    def stat(self, path: str) -> FileStatus | None:
        st = self._status(path)
        return None if st is None else _hdfs_status(st)

    def list_status(self, path: str = "") -> list[tuple[str, FileStatus]]:
        with self._errors("list", path):
            st = self._client.status(self._p(path), strict=False)
            if st is None or st["type"] != "DIRECTORY":
                return []
            listing = self._client.list(self._p(path), status=True)
        return sorted((name, _hdfs_status(fst)) for name, fst in listing)

    @contextmanager
    def open_range(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> Iterator[BinaryIO]:
        import requests
        from hdfs.util import HdfsError

        _check_range(path, offset, length)
        if length == 0:
            yield io.BufferedReader(_RangeReader(lambda n: b"", 0))
            return
        try:
            with self._errors("read", path):
                ctx = self._client.read(
                    self._p(path), offset=offset, length=length, chunk_size=RANGE_CHUNK
                )
                chunks = ctx.__enter__()
        except ArtifactError as exc:
            cause = exc.__cause__
            if isinstance(cause, HdfsError) and "out of the range" in cause.message:
                yield io.BufferedReader(_RangeReader(lambda n: b"", 0))  # at or past the end
                return
            raise
        left = memoryview(b"")

        def pull(n: int) -> bytes:
            # Network errors while streaming become ArtifactError here, not in the caller's
            # hands as an OSError (requests' errors are OSErrors).
            nonlocal left
            try:
                while not left:
                    left = memoryview(next(chunks))
            except StopIteration:
                return b""
            except requests.RequestException as exc:
                raise ArtifactError(
                    f"{self.describe()}: read {path}: HDFS unreachable ({exc})"
                ) from exc
            data, left = bytes(left[:n]), left[n:]
            return data

        try:
            with io.BufferedReader(_RangeReader(pull, length), RANGE_CHUNK) as reader:
                yield reader
        finally:
            ctx.__exit__(None, None, None)  # closes the HTTP response

    def read_bytes(self, path: str) -> bytes:
        with self._errors("read", path), self._client.read(self._p(path)) as reader:
            return reader.read()

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        with self._errors("write", path):
            self._client.write(self._p(path), data=data, overwrite=overwrite)

    def list(self, path: str = "") -> list[str]:
        with self._errors("list", path):
            st = self._client.status(self._p(path), strict=False)
            if st is None or st["type"] != "DIRECTORY":
                return []
            return sorted(self._client.list(self._p(path)))

    def files(self, path: str) -> dict[str, int]:
        base = self._p(path)
        out: dict[str, int] = {}
        with self._errors("walk", path):
            st = self._client.status(base, strict=False)
            if st is None or st["type"] != "DIRECTORY":
                return {}
            for dirpath, _dirs, fnames in self._client.walk(base, status=True):
                d = dirpath[0]
                for name, fst in fnames:
                    rel = PurePosixPath(d, name).relative_to(base).as_posix()
                    out[rel] = int(fst["length"])
        return dict(sorted(out.items()))

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        # rename2 via `renameoptions`: NONE never clobbers and never moves *into* an existing
        # directory (plain RENAME does both), OVERWRITE replaces a file atomically.
        s, d = self._p(src), self._p(dst)
        parent = str(PurePosixPath(d).parent)
        with self._errors("rename", f"{src} -> {dst}"):
            if self._client.status(s, strict=False) is None:
                raise ArtifactNotFound(f"{self.describe()}: {src} does not exist")
            self._client.makedirs(parent)
            self._client._rename(
                s, destination=d, renameoptions="OVERWRITE" if overwrite else "NONE"
            )

    def delete(self, path: str, *, recursive: bool = False) -> bool:
        with self._errors("delete", path):
            return bool(self._client.delete(self._p(path), recursive=recursive))

    def upload_file(self, local: Path, path: str, *, overwrite: bool = False) -> None:
        with self._errors("upload", path), open(local, "rb") as fh:
            self._client.write(self._p(path), data=fh, overwrite=overwrite)

    def download_file(self, path: str, local: Path) -> None:
        with (
            self._errors("download", path),
            self._client.read(self._p(path)) as reader,
            open(local, "wb") as out,
        ):
            shutil.copyfileobj(reader, out, 1 << 20)


def _hdfs_status(st: dict) -> FileStatus:
    return FileStatus(
        "dir" if st["type"] == "DIRECTORY" else "file",
        int(st.get("length", 0)),
        int(st.get("modificationTime", 0)),
    )


def artifact_store_from_settings(settings: Settings) -> ArtifactStore:
    """HDFS when ``hdfs_url`` is set, else the local registry directory."""
    if settings.hdfs_url:
        return HdfsArtifactStore(
            settings.hdfs_url,
            user=settings.hdfs_user,
            root=settings.hdfs_root,
            timeout_s=settings.hdfs_timeout_s,
        )
    logger.info("no HDFS URL configured: artifacts in %s", settings.artifact_dir)
    return LocalArtifactStore(settings.artifact_dir)
