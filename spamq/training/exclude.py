"""Texts held out for independent evaluation: never trained, validated or chosen on.

``settings.exclude_sha256_path`` (``../shared/data/exclude-sha256.txt``) lists one sha256 a
line, each of a text as its README defines it: whitespace collapsed, lower-cased, UTF-8
(:func:`excluded_hash`). A text is refused when that hash of the text as given, or of the text
as the model sees it (:func:`spamq.text.normalize`), is listed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from spamq.text import normalize

logger = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
T = TypeVar("T")


def excluded_hash(text: str) -> str:
    """sha256 hex of the text, whitespace collapsed and lower-cased (the list's README)."""
    return hashlib.sha256(" ".join(text.split()).lower().encode("utf-8")).hexdigest()


def load_excluded(path: Path | None) -> frozenset[str]:
    """The listed hashes; an absent file lists none (and says so in the log)."""
    if path is None or not Path(path).is_file():
        logger.warning("no exclusion list at %s: no text is excluded", path)
        return frozenset()
    hashes = {line.strip().lower() for line in Path(path).read_text().splitlines()}
    return frozenset(h for h in hashes if _HEX64.match(h))


def is_excluded(text: str, excluded: frozenset[str]) -> bool:
    return bool(excluded) and (excluded_hash(text) in excluded
                               or excluded_hash(normalize(text)) in excluded)


def drop_excluded(rows: Iterable[T], excluded: frozenset[str],
                  text: Callable[[T], str] = lambda r: r.text) -> tuple[list[T], int]:  # type: ignore[attr-defined]
    """``rows`` less the excluded ones, and how many were dropped."""
    rows = list(rows)
    kept = [r for r in rows if not is_excluded(text(r), excluded)]
    return kept, len(rows) - len(kept)
