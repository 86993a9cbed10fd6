"""Which store paths an API key may read and write: its own area, plus what an operator grants.

A key works under ``<store_tenant_root>/<key id>/`` of the artifact store (its "home"), and
under any prefix that ``store_grants`` gives its key id (an operator's setting, or the
``store_grants`` secret when Vault holds the secrets). Paths are store paths, already made
relative and checked by :func:`spamq.bulk_io.store_path`; with authentication off there is one
tenant, who may use the whole store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath


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
