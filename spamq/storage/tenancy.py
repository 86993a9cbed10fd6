"""Which store paths an API key may read and write: its own area, plus what an operator grants.

A key works under ``<store_tenant_root>/<key id>/`` of the artifact store (its "home"), and
under any prefix that ``store_grants`` gives its key id (an operator's setting, or the
``store_grants`` secret when Vault holds the secrets). Paths are store paths, already made
relative and checked by :func:`store_path`; with authentication off there is one tenant, who
may use the whole store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from spamq.storage.artifacts import clean_path


def store_path(path: str) -> str:
    """A user-given path as a store path (ValueError if it is unusable or escapes the root).

    The ValueError messages never quote the path: it may be huge or hold control characters.
    """
    path = path if isinstance(path, str) else ""
    try:
        size = len(path.encode())
    except UnicodeEncodeError:
        raise ValueError("a path that is not valid Unicode (a lone surrogate)") from None
    if size > 1024:
        raise ValueError("a path longer than 1024 bytes")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in path):
        raise ValueError("a path with a NUL or other control character")
    if any(len(part.encode()) > 255 for part in path.split("/")):
        raise ValueError("a path with a component longer than 255 bytes")
    if ".." in path.split("/"):
        raise ValueError("a path with a '..' part (paths stay under the store root)")
    rel = clean_path(path.lstrip("/"))
    if not rel:
        raise ValueError("an empty path or the store root itself")
    return rel


def prefixes(owner: str | None, *, tenant_root: str,
             grants: Mapping[str, Sequence[str]]) -> list[str]:
    """The store prefixes ``owner`` (a key id) may use; [""] (everything) without an owner."""
    if not owner:
        return [""]
    home = str(PurePosixPath(tenant_root.strip("/")) / owner)
    return [home, *(g.strip("/") for g in grants.get(owner, ()))]


def allowed(path: str, allowed_prefixes: Sequence[str]) -> bool:
    """True when the store path ``path`` lies under one of ``allowed_prefixes``."""
    parts = PurePosixPath(path).parts
    for prefix in allowed_prefixes:
        head = PurePosixPath(prefix).parts if prefix else ()
        if parts[:len(head)] == head:
            return True
    return False
