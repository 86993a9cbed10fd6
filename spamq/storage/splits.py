"""Bulk input at data-lake scale: plan input splits cheaply, stream exactly one split.

The input side of a Hadoop/Spark-style bulk job, on any ArtifactStore (HDFS or local):

1. ``list_input(store, spec)``: the data files a spec names (a file, a directory, a glob).
2. ``sniff(store, file, column=...)``: check the columns exist; a CSV/TSV file's header.
3. ``plan_splits(store, files, split_bytes=...)``: byte ranges of uncompressed text files, one
   split per compressed file, one per Parquet row group (read from the footer only).
4. CSV/TSV only (``needs_quote_count``): ``quote_count`` of every split (a cheap streamed
   pass, parallel), then ``quote_parity`` turns the counts into each split's ``in_quotes``.
5. ``read_split(...)``: the split's records, streamed in bounded memory.

Where records start (CSV/TSV, RFC 4180): a record starts at offset 0 and right after every
LF that lies outside a quoted field; a CRLF's CR stays in the record it ends. In strict
RFC-4180 CSV a quote only opens or closes a quoted field (or is doubled inside one), so an
offset lies inside a quoted field exactly when the number of ``"`` bytes before it is odd.
Every reader applies this one rule, so each record belongs to exactly one split (the one
where it starts) whatever ``split_bytes`` is. A file breaking the rule (a stray ``"`` in an
unquoted field, as in ``5"6``) flips the parity for the rest of the file: the record with
the stray quote and the ones after it become rejected records ("csv: ...", or "record too
long" when the flipped parity merges much of the rest of the file into one record), never
an exception and never records invented from the middle of a field. A bare CR is no record
separator. JSON Lines records start after every LF.

Nothing here imports Redis, Celery, Flask, the API or torch. Messages never quote file
contents, never list a directory's names and never show the store's root.
"""

from __future__ import annotations

import bz2
import csv
import fnmatch
import gzip
import io
import json
import zlib
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from spamq.errors import InvalidRequest
from spamq.storage.artifacts import ArtifactStore, ArtifactSymlink
from spamq.storage.rows import CSV_ERRORS, shown, text_problem

if TYPE_CHECKING:
    import pyarrow.parquet as pq

TEXT_FORMATS = ("csv", "tsv", "jsonl")
FORMATS = (*TEXT_FORMATS, "parquet")
COMPRESSIONS = ("gz", "bz2")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".parquet": "parquet"}

CHUNK = 1 << 16  # bytes per read from the store, and per decompressed chunk
SNIFF_BYTES = 1 << 16  # what sniff reads at most of a text file
MAX_RECORD_BYTES = 1 << 20  # a longer record is rejected (and skipped without being held)
PARQUET_BATCH = 1024  # rows per Arrow record batch at most
BATCH_BYTES = 4 << 20  # bytes of values one batch of records turns into Python objects
BATCH_ROWS = 1024  # rows per batch of a text file's records at most
PARQUET_WINDOW = 4 << 20  # bytes one ranged read of a Parquet file asks for at most

_GLOB_CHARS = frozenset("*?[")

# csv's strict-mode errors in words; those that parse_upload cannot meet (it reads whole
# files through universal newlines) come from a bare CR or a stray quote here.
_CSV_PROBLEMS = {
    **CSV_ERRORS,
    "new-line character seen": "a line break outside quotes (a bare CR, or a stray quote "
                               "earlier in the file)",
    "line contains NUL": "contains a NUL character",
    "field larger than field limit": "a field is too large",
}


class InputError(InvalidRequest, ValueError):
    """The bulk input cannot be used: ``field`` is the request field at fault ("hdfs_input",
    "format", "column", "id_column", "keep_columns"), ``message`` says why in words (a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)


@dataclass(frozen=True)
class InputFile:
    """One data file: store path, size in bytes, mtime in ms (as the store says), format
    ("csv"|"tsv"|"jsonl"|"parquet") and compression (""|"gz"|"bz2")."""

    path: str
    size: int
    mtime: int
    fmt: str
    compression: str = ""


@dataclass(frozen=True)
class Split:
    """The part of ``files[file]`` one worker reads: bytes ``[start, start + length)`` (the
    records that start there), a whole compressed file, or the Parquet row groups
    ``row_group..last_group`` (None: ``row_group`` alone; start/length: their bytes, for
    sizing only; no row group: the whole file). ``index`` counts all splits."""

    index: int
    file: int
    start: int
    length: int
    row_group: int | None = None
    last_group: int | None = None

    def row_groups(self) -> list[int] | None:
        """The Parquet row groups this split reads, in order; None: all of the file's."""
        if self.row_group is None:
            return None
        last = self.row_group if self.last_group is None else self.last_group
        return list(range(self.row_group, last + 1))


@dataclass
class Record:
    """One input row. ``ref`` is stable across runs: the record's byte offset in an
    uncompressed text file, its row index in a Parquet file, its data-record index (header
    and blank lines not counted) in a compressed file. ``text`` is the scored column (None when
    missing or unreadable), ``extra`` the id and kept columns in that order (None when
    missing), ``problem`` why it cannot be scored (None: it can)."""

    ref: int
    text: Any
    extra: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class RowBatch:
    """Consecutive input rows as columns: each row's ``ref``, ``text`` and ``problem`` (as in
    :class:`Record`), and ``extra``: the id and kept columns' values, one list per column."""

    refs: list[int] = field(default_factory=list)
    texts: list[Any] = field(default_factory=list)
    extra: dict[str, list[Any]] = field(default_factory=dict)
    problems: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)

    def records(self) -> Iterator[Record]:
        cols = list(self.extra)
        for r, ref in enumerate(self.refs):
            yield Record(ref, self.texts[r], {c: self.extra[c][r] for c in cols},
                         self.problems[r])


class _Batching:
    """Rows appended one at a time, handed out as a :class:`RowBatch` once it holds
    ``rows`` rows or ``nbytes`` bytes of raw records."""

    def __init__(self, cols: list[str], rows: int, nbytes: int) -> None:
        self.cols, self.rows, self.nbytes = cols, rows, nbytes
        self._new()

    def _new(self) -> None:
        self.batch = RowBatch(extra={c: [] for c in self.cols})
        self.size = 0

    def add(self, ref: int, text: Any, extra: Sequence[Any] | None, problem: str | None,
            size: int = 0) -> RowBatch | None:
        b = self.batch
        b.refs.append(ref)
        b.texts.append(text)
        b.problems.append(problem)
        for c, v in zip(self.cols, extra or [None] * len(self.cols), strict=True):
            b.extra[c].append(v)
        self.size += size
        return self.take() if len(b.refs) >= self.rows or self.size >= self.nbytes else None

    def take(self) -> RowBatch | None:
        b = self.batch
        self._new()
        return b if b.refs else None


class SplitRows:
    """What :func:`read_split` returns: the split's rows, iterated as :class:`Record` objects,
    or as columns with :meth:`batches` (the bulk path: no object per row)."""

    def __init__(self, batches: Callable[[], Iterator[RowBatch]]) -> None:
        self._batches = batches

    def batches(self) -> Iterator[RowBatch]:
        return self._batches()

    def __iter__(self) -> Iterator[Record]:
        for batch in self._batches():
            yield from batch.records()


# ---------------------------------------------------------------------------------- listing


def file_format(name: str, fmt: str | None = None) -> tuple[str, str] | None:
    """``(format, compression)`` from a file name's extension, or None when it has none we
    read. ``fmt`` (a text format) overrides the format; the compression still comes from a
    ``.gz``/``.bz2`` ending."""
    lower = name.lower()
    compression = ""
    for c in COMPRESSIONS:
        if lower.endswith("." + c):
            compression, lower = c, lower[: -len(c) - 1]
            break
    if fmt is not None:
        return fmt, compression
    suffix = PurePosixPath(lower).suffix
    found = EXTENSIONS.get(suffix)
    if found is None or (found == "parquet" and compression):
        return None
    return found, compression


def list_input(store: ArtifactStore, spec: str, *, fmt: str | None = None) -> list[InputFile]:
    """The data files ``spec`` names, sorted by path.

    ``spec`` is a store path: a file; a directory (its files, not recursively, leaving out
    names that start with ``_`` or ``.``, such as ``_SUCCESS`` and ``.crc`` files, as Hadoop
    does); or a pattern in its last component (``data/sms/part-*.csv.gz``: fnmatch on the
    names in the parent directory, hidden names left out; no ``**``). ``fmt`` forces a text
    format (for names without an extension, such as Hadoop's ``part-00000``).
    """
    if fmt is not None and fmt not in TEXT_FORMATS:
        raise InputError("format", f"'format' must be csv, tsv or jsonl, not {shown(fmt, 50)}")
    spec = PurePosixPath(spec).as_posix() if spec not in ("", ".") else ""
    st = _no_links(store.stat, spec)
    if st is not None and st.type == "file":
        found = [(spec, st)]
    elif st is not None:
        found = [(_child(spec, name), s) for name, s in _no_links(store.list_status, spec)
                 if s.type == "file" and not _hidden(name)]
        if not found:
            raise InputError("hdfs_input", f"the directory {shown(spec)} has no data files")
    else:
        parent, pattern = _split_pattern(spec)
        if pattern is None:
            raise InputError("hdfs_input", f"nothing found at {shown(spec)}")
        found = [(_child(parent, name), s) for name, s in _no_links(store.list_status, parent)
                 if s.type == "file" and not _hidden(name)
                 and fnmatch.fnmatchcase(name, pattern)]
        if not found:
            raise InputError("hdfs_input", f"no data files match {shown(spec)}")
    files: list[InputFile] = []
    unknown = 0
    for path, s in sorted(found, key=lambda item: item[0]):
        known = file_format(PurePosixPath(path).name, fmt)
        if known is None:
            unknown += 1
        else:
            files.append(InputFile(path, s.size, s.mtime, *known))
    if unknown:
        what = "the input file has" if len(found) == 1 else \
            f"{unknown} of the {len(found)} input files have"
        raise InputError("format", f"{what} no known format: name them .csv, .tsv, .jsonl, "
                         ".ndjson or .parquet (text formats may end .gz or .bz2), or give "
                         "the 'format' field")
    formats = sorted({f.fmt for f in files})
    if len(formats) > 1:
        raise InputError("format", f"the input mixes formats ({', '.join(formats)}): "
                         "one format per job")
    return files


def _child(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


_T = TypeVar("_T")


def _no_links(call: Callable[[str], _T], path: str) -> _T:
    """``call(path)``; a symlink on the way (spamq/storage/artifacts.py refuses them) is the
    request's fault: a 422 naming hdfs_input, which never says where the link leads."""
    try:
        return call(path)
    except ArtifactSymlink as exc:
        raise InputError("hdfs_input", "'hdfs_input' goes through a symlink in the artifact "
                         "store; symlinks are refused") from exc


def _split_pattern(spec: str) -> tuple[str, str | None]:
    """(parent, pattern) when the last component of ``spec`` is a glob, else (spec, None)."""
    p = PurePosixPath(spec)
    parent = "" if str(p.parent) == "." else str(p.parent)
    if _GLOB_CHARS & set(parent):
        raise InputError("hdfs_input", "a pattern may only be in the last path component")
    if not _GLOB_CHARS & set(p.name):
        return spec, None
    if "**" in p.name:
        raise InputError("hdfs_input", "'**' is not supported: patterns match one directory")
    return parent, p.name


# --------------------------------------------------------------------------------- planning


def plan_splits(
    store: ArtifactStore, files: Sequence[InputFile], *, split_bytes: int,
    parquet_footers: bool = True, max_splits: int | None = None,
) -> list[Split]:
    """Splits of ``files``: ranges of at most ``split_bytes`` of uncompressed text files (a
    record crossing a boundary belongs to the split where it starts), one split per
    compressed file, one per non-empty Parquet row group (only the footer is read), or with
    ``parquet_footers`` False one per Parquet file (no read at all: for inputs of many files,
    planned in the HTTP request). Empty files give no split.

    ``max_splits`` caps the plan: over it, consecutive row groups of a Parquet file are merged
    into one split up to ``split_bytes``, and then the split size doubles (text ranges and
    merged row groups alike) until the plan fits. A split never spans files, so more
    non-empty files than ``max_splits`` is an InputError."""
    if split_bytes < 1:
        raise ValueError("split_bytes must be at least 1")
    if max_splits is not None:
        check_file_count(files, max_splits)
    groups = {i: _row_groups(store, f) for i, f in enumerate(files)
              if f.fmt == "parquet" and f.size and parquet_footers}
    size, merge = split_bytes, False
    while max_splits is not None and _count(files, groups, size, merge, max_splits + 1) \
            > max_splits:
        size, merge = (size * 2 if merge else size), True
    return [Split(k, *r) for k, r in enumerate(_ranges(files, groups, size, merge))]


def plan_job_input(store: ArtifactStore, files: Sequence[InputFile], *, split_bytes: int,
                   max_splits: int, footers_max_files: int) -> list[Split]:
    """A store job's plan (the request's, or its plan task's): footers read when the input
    has at most ``footers_max_files`` Parquet files, at most ``max_splits`` splits."""
    footers = sum(f.fmt == "parquet" for f in files) <= footers_max_files
    return plan_splits(store, files, split_bytes=split_bytes, parquet_footers=footers,
                       max_splits=max_splits)


def check_file_count(files: Sequence[InputFile], max_files: int) -> None:
    """InputError (hdfs_input) when more than ``max_files`` of ``files`` hold data."""
    n = sum(1 for f in files if f.size)
    if n > max_files:
        raise InputError("hdfs_input", f"'hdfs_input' names {n} data files; a job reads at "
                         f"most {max_files}: merge them, or submit several jobs")


@dataclass(frozen=True)
class _Groups:
    """A Parquet file's non-empty row groups: their indices, first bytes and byte sizes."""

    index: array
    start: array
    length: array


def _row_groups(store: ArtifactStore, file: InputFile) -> _Groups:
    out = _Groups(array("q"), array("q"), array("q"))
    with _parquet_file(store, file) as pf:
        md = pf.metadata
        for rg in range(md.num_row_groups):
            group = md.row_group(rg)
            if group.num_rows == 0:
                continue
            start, length = _row_group_bytes(group)
            out.index.append(rg)
            out.start.append(start)
            out.length.append(length)
    return out


_Range = tuple[int, int, int, int | None, int | None]  # file, start, length, row groups


def _ranges(files: Sequence[InputFile], groups: dict[int, _Groups], size: int,
            merge: bool) -> Iterator[_Range]:
    """The splits' fields but their index: text ranges of ``size`` bytes; row groups one by
    one, or with ``merge`` consecutive ones of a file together up to ``size`` bytes."""
    for i, f in enumerate(files):
        if f.size == 0:
            continue
        g = groups.get(i)
        if g is not None:
            yield from _group_ranges(i, g, size, merge)
        elif f.fmt == "parquet" or f.compression:
            yield i, 0, f.size, None, None
        else:
            for start in range(0, f.size, size):
                yield i, start, min(size, f.size - start), None, None


def _group_ranges(i: int, g: _Groups, size: int, merge: bool) -> Iterator[_Range]:
    if not merge:
        for rg, start, length in zip(g.index, g.start, g.length, strict=True):
            yield i, start, length, rg, None
        return
    first, nbytes = 0, 0
    for k, length in enumerate(g.length):
        if k > first and nbytes + length > size:
            yield _merged(i, g, first, k - 1, nbytes)
            first, nbytes = k, 0
        nbytes += length
    if len(g.length):
        yield _merged(i, g, first, len(g.length) - 1, nbytes)


def _merged(i: int, g: _Groups, first: int, last: int, nbytes: int) -> _Range:
    last_group = g.index[last] if last > first else None
    return i, min(g.start[first:last + 1]), nbytes, g.index[first], last_group


def _count(files: Sequence[InputFile], groups: dict[int, _Groups], size: int, merge: bool,
           stop: int) -> int:
    """How many splits :func:`_ranges` gives (counted no further than ``stop``)."""
    n = 0
    for i, f in enumerate(files):
        if f.size == 0:
            continue
        g = groups.get(i)
        if g is not None and not merge:
            n += len(g.index)
        elif g is not None:
            n += sum(1 for _ in _group_ranges(i, g, size, True))
        elif f.fmt == "parquet" or f.compression:
            n += 1
        else:
            n += -(-f.size // size)
        if n >= stop:
            return n
    return n


def parquet_footer_bytes(store: ArtifactStore, file: InputFile) -> int:
    """The size of a Parquet file's footer, from its last 8 bytes (one small ranged read);
    an InputError when the file does not end like a Parquet file."""
    tail = b""
    if file.size >= 12:
        with store.open_range(file.path, file.size - 8, 8) as fh:
            while len(tail) < 8 and (chunk := fh.read(8 - len(tail))):
                tail += chunk
    n = int.from_bytes(tail[:4], "little") if len(tail) == 8 else -1
    if tail[4:] != b"PAR1" or not 0 < n <= file.size - 12:
        raise not_parquet()
    return n


def not_parquet() -> InputError:
    return InputError("hdfs_input", "an input file is not a readable Parquet file")


def _row_group_bytes(group: Any) -> tuple[int, int]:
    starts, length = [], 0
    for c in range(group.num_columns):
        col = group.column(c)
        offsets = [col.data_page_offset]
        if col.has_dictionary_page and col.dictionary_page_offset:
            offsets.append(col.dictionary_page_offset)
        starts.append(min(offsets))
        length += col.total_compressed_size
    return (min(starts) if starts else 0), length


def needs_quote_count(file: InputFile) -> bool:
    """Whether ``file``'s splits need ``quote_count`` before they can be read: uncompressed
    CSV/TSV (a quoted field may hold line breaks and cross a split boundary)."""
    return file.fmt in ("csv", "tsv") and not file.compression


def quote_count(store: ArtifactStore, file: InputFile, split: Split) -> int:
    """The number of ``"`` bytes in the split's byte range, streamed."""
    if not needs_quote_count(file):
        raise ValueError(f"{file.fmt} files need no quote count")
    n = 0
    with store.open_range(file.path, split.start, split.length) as fh:
        while chunk := fh.read(CHUNK):
            n += chunk.count(b'"')
    return n


def quote_parity(splits: Sequence[Split], counts: Sequence[int]) -> list[bool]:
    """``in_quotes`` for each split: whether its start lies inside a quoted field, from the
    quote counts of the splits (``counts[k]`` for ``splits[k]``; 0 where none is needed) —
    the parity of the counts of the same file's splits before it."""
    ordered = sorted(range(len(splits)), key=lambda k: (splits[k].file, splits[k].start))
    out = [False] * len(splits)
    seen: dict[int, int] = {}
    for k in ordered:
        out[k] = seen.get(splits[k].file, 0) % 2 == 1
        seen[splits[k].file] = seen.get(splits[k].file, 0) + counts[k]
    return out


# ---------------------------------------------------------------------------------- sniffing


def sniff(
    store: ArtifactStore, file: InputFile, *, column: str, id_column: str | None = None,
    keep_columns: Iterable[str] = (),
) -> list[str] | None:
    """Check the named columns exist, reading at most ~64 KB (for Parquet: the schema).

    CSV/TSV: the header row (returned: readers of the file's splits but the first need it;
    every file has its own header, so sniff each file). JSON Lines: the first object must
    parse and have ``column`` (other keys may be absent in some rows: not checked). Parquet:
    the schema has every named column. Returns None for JSON Lines and Parquet.
    """
    wanted = [("column", column)]
    if id_column is not None:
        wanted.append(("id_column", id_column))
    wanted += [("keep_columns", c) for c in keep_columns]
    if file.fmt == "parquet":
        with _parquet_file(store, file) as pf:
            names = pf.schema_arrow.names
        _require(wanted, names, "Parquet schema")
        return None
    head, whole = _head(store, file)
    if file.fmt == "jsonl":
        _sniff_jsonl(head, whole, column)
        return None
    end = _first_record_end(head, whole)
    if end is None:
        raise InputError("hdfs_input", f"the {file.fmt} header row is longer than "
                         f"{SNIFF_BYTES // 1024} KB")
    try:
        header = next(csv.reader([head[:end].decode("utf-8-sig")],
                                 delimiter=_delimiter(file.fmt), strict=True), [])
    except UnicodeDecodeError:
        raise InputError("hdfs_input", f"the {file.fmt} header row is not UTF-8") from None
    except csv.Error as exc:
        raise InputError("hdfs_input", f"the {file.fmt} header row cannot be read: "
                         f"{_csv_problem(exc)}") from None
    _require(wanted, header, f"{file.fmt} header")
    return header


def _require(wanted: list[tuple[str, str]], names: Sequence[str], where: str) -> None:
    for fld, name in wanted:
        if name not in names:
            n = len(names)
            raise InputError(fld, f"no column {shown(name)} in the {where} "
                             f"({n} column{'' if n == 1 else 's'})")


def _head(store: ArtifactStore, file: InputFile) -> tuple[bytes, bool]:
    """The first SNIFF_BYTES bytes of the file's (decompressed) content; whether that is all
    of it."""
    with ExitStack() as stack:
        if file.compression:
            raw = stack.enter_context(store.open_range(file.path, 0))
            stream = _decompressor(raw, file.compression)
            stack.callback(stream.close)
        else:
            stream = stack.enter_context(store.open_range(file.path, 0, SNIFF_BYTES))
        parts, n = [], 0
        try:
            while n < SNIFF_BYTES and (chunk := stream.read(SNIFF_BYTES - n)):
                parts.append(chunk)
                n += len(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            _raise_if_store_error(exc)
            raise InputError("hdfs_input", f"a .{file.compression} input file is corrupt or "
                             "truncated") from None
        return b"".join(parts), n < SNIFF_BYTES


def _sniff_jsonl(head: bytes, whole: bool, column: str) -> None:
    lines = head.split(b"\n")
    for line in lines if whole else lines[:-1]:  # not a line cut at SNIFF_BYTES
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("format", "the first line is not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise InputError("format", "the first line is not valid JSON: is the file "
                             "JSON Lines?") from None
        if not isinstance(obj, dict):
            raise InputError("format", "the first line is not a JSON object")
        if column not in obj:
            n = len(obj)
            raise InputError("column", f"the first JSON object has no key {shown(column)} "
                             f"({n} key{'' if n == 1 else 's'})")
        return
    # No whole line in the first 64 KB (or no line at all): nothing to check here; the
    # records will say what is wrong with them.


def _first_record_end(data: bytes, whole: bool) -> int | None:
    """The end (after its LF) of the record starting at 0, or None when it does not end in
    ``data``; when ``data`` is the whole file, its end ends the record."""
    j, _ = _find_end(data, 0, False, True)
    if j >= 0:
        return j + 1
    return len(data) if whole else None


# ---------------------------------------------------------------------------------- reading


def read_split(
    store: ArtifactStore, file: InputFile, split: Split, *, header: Sequence[str] | None = None,
    column: str, id_column: str | None = None, keep_columns: Iterable[str] = (),
    in_quotes: bool = False, max_chars: int = 5000, max_record_bytes: int = MAX_RECORD_BYTES,
    batch_bytes: int = BATCH_BYTES, batch_rows: int = BATCH_ROWS,
) -> SplitRows:
    """The records of ``split``, streamed (as Records, or in columns: ``.batches()``, each
    of at most ``batch_rows`` rows and about ``batch_bytes`` of values): memory stays
    bounded by a batch and one record (at most ``max_record_bytes``; a longer record is a
    rejected "record too long", skipped without being held). Parquet: by ``batch_bytes``
    (see :func:`_read_parquet`).

    Uncompressed CSV/TSV: the records that start in ``[start, start + length)``, found with
    ``in_quotes`` (from ``quote_parity``); the split at offset 0 skips the file's header row,
    the others need ``header`` (from ``sniff``). A record running past the range is read to
    its end. Each record is parsed on its own with csv (strict), so a bad record is one
    rejected record ("csv: ...", "not UTF-8") and never desynchronises the next ones (but see
    the module docstring on stray quotes). Blank lines are no rows. JSON Lines: every
    non-blank line starting in the range. A compressed file: the whole file, decompressed
    as it streams. Parquet: the split's row group, only the needed columns, in batches.
    """
    cols = list(dict.fromkeys([*([id_column] if id_column is not None else []),
                               *keep_columns]))
    if file.fmt == "parquet":
        return SplitRows(lambda: _read_parquet(store, file, split, column, cols, max_chars,
                                               max_record_bytes, batch_bytes, batch_rows))
    return SplitRows(lambda: _text_batches(
        store, file, split, header, column, cols, in_quotes, max_chars, max_record_bytes,
        _Batching(cols, batch_rows, batch_bytes)))


def _text_batches(store: ArtifactStore, file: InputFile, split: Split,
                  header: Sequence[str] | None, column: str, cols: list[str], in_quotes: bool,
                  max_chars: int, max_record_bytes: int, out: _Batching
                  ) -> Iterator[RowBatch]:
    with ExitStack() as stack:
        if file.compression:
            chunks = stack.enter_context(closing(_decompressed_chunks(store, file)))
            raw = _records(chunks, 0, None, quoted=file.fmt != "jsonl", in_quotes=False,
                           seek=False, limit=max_record_bytes)
        else:
            first = max(split.start - 1, 0)  # from start-1: is there a record AT start?
            end = split.start + split.length
            chunks = stack.enter_context(closing(_range_chunks(store, file, first, end)))
            raw = _records(chunks, first, end, quoted=file.fmt != "jsonl",
                           in_quotes=in_quotes, seek=split.start > 0, limit=max_record_bytes)
        raw = stack.enter_context(closing(raw))
        if file.fmt == "jsonl":
            rows = _jsonl_records(raw, file, column, cols, max_chars, max_record_bytes, out)
        else:
            rows = _csv_rows(raw, file, split, header, column, cols, max_chars,
                             max_record_bytes, out)
        for batch in rows:
            if batch is not None:
                yield batch
        last = out.take()
        if last is not None:
            yield last


def _csv_rows(raw: Iterator[tuple[int, bytes | None]], file: InputFile, split: Split,
              header: Sequence[str] | None, column: str, cols: list[str],
              max_chars: int, limit: int, out: _Batching) -> Iterator[RowBatch | None]:
    delimiter = _delimiter(file.fmt)
    own_header = file.compression != "" or split.start == 0
    if not own_header and header is None:
        raise ValueError("read_split needs the header (from sniff) for a split not at 0")
    index: dict[str, int] = {}
    if header is not None and not own_header:
        index = _first_index(header)
    n = 0  # data records so far: the ref in a compressed file
    for offset, data in raw:
        if own_header and offset == 0:
            try:
                head = next(csv.reader([(data or b"").decode("utf-8-sig")],
                                       delimiter=delimiter, strict=True), [])
            except (UnicodeDecodeError, csv.Error):
                head = []  # sniff says why; every row is then "missing"
            index = _first_index(head)
            continue
        ref = n if file.compression else offset
        if data is None:
            yield out.add(ref, None, None, f"record too long: more than {limit} bytes (an "
                          "unclosed or stray quote?)")
            n += 1
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield out.add(ref, None, None, "not UTF-8", len(data))
            n += 1
            continue
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            yield out.add(ref, None, None, f"csv: {_csv_problem(exc)}", len(data))
            n += 1
            continue
        if not fields:  # a blank line is no row
            continue
        text_value = _field(fields, index, column)
        yield out.add(ref, text_value, [_field(fields, index, c) for c in cols],
                      text_problem(text_value, max_chars=max_chars), len(data))
        n += 1


def _jsonl_records(raw: Iterator[tuple[int, bytes | None]], file: InputFile, column: str,
                   cols: list[str], max_chars: int, limit: int, out: _Batching
                   ) -> Iterator[RowBatch | None]:
    n = 0
    for offset, data in raw:
        ref = n if file.compression else offset
        if data is None:
            yield out.add(ref, None, None, f"record too long: more than {limit} bytes")
            n += 1
            continue
        try:
            line = data.decode("utf-8-sig" if offset == 0 else "utf-8")
        except UnicodeDecodeError:
            if data.strip():
                yield out.add(ref, None, None, "not UTF-8", len(data))
                n += 1
            continue
        if not line.strip():  # a blank line is no row
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            yield out.add(ref, None, None, "not valid JSON (nested too deep)", len(data))
        except ValueError:
            yield out.add(ref, None, None, "not valid JSON", len(data))
        else:
            if isinstance(obj, dict):
                text = obj.get(column)
                yield out.add(ref, text, [obj.get(c) for c in cols],
                              text_problem(text, max_chars=max_chars), len(data))
            else:
                yield out.add(ref, None, None, "not a JSON object", len(data))
        n += 1


def _field(fields: list[str], index: dict[str, int], name: str) -> str | None:
    at = index.get(name)
    return fields[at] if at is not None and at < len(fields) else None


def _first_index(header: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)  # the first of duplicate names, as parse_upload does
    return index


def _delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def _csv_problem(exc: csv.Error) -> str:
    return next((v for k, v in _CSV_PROBLEMS.items() if k in str(exc)), "a malformed record")


# ------------------------------------------------------------------------- record boundaries


def _find_end(buf: bytes, i: int, in_q: bool, quoted: bool) -> tuple[int, bool]:
    """The index of the first LF at or after ``i`` that ends a record (outside quotes when
    ``quoted``; ``in_q``: whether ``i`` is inside quotes), or -1; and whether the scan ends
    inside quotes. One step per line, the quotes counted in C."""
    if not quoted:
        return buf.find(b"\n", i), False
    while True:
        nl = buf.find(b"\n", i)
        if nl < 0:
            return -1, in_q != bool(buf.count(b'"', i) & 1)
        if buf.count(b'"', i, nl) & 1:
            in_q = not in_q
        if not in_q:
            return nl, False
        i = nl + 1


def _records(chunks: Iterator[bytes], pos: int, stop: int | None, *, quoted: bool,
             in_quotes: bool, seek: bool, limit: int
             ) -> Generator[tuple[int, bytes | None], None, None]:
    """``(offset, raw bytes)`` of each record starting before ``stop`` (None: no end), the
    bytes None when longer than ``limit``. ``chunks`` stream the file from offset ``pos``.

    ``seek``: ``pos`` is a split's start minus one and ``in_quotes`` the quote parity at the
    split's start; the first record is the first one starting after ``pos``. Otherwise a
    record starts at ``pos``.
    """
    buf, base, i = b"", pos, 0
    if seek:
        buf = next(chunks, b"")
        if not buf:
            return
        # The parity before pos: the byte at pos is the one before the split's start.
        in_q = quoted and in_quotes != (buf[0] == 0x22)
        while True:
            j, in_q = _find_end(buf, i, in_q, quoted)
            if j >= 0:
                i = j + 1
                break
            base += len(buf)
            if stop is not None and base >= stop:
                return  # no record starts in this split
            buf, i = next(chunks, b""), 0
            if not buf:
                return
    start = base + i
    while stop is None or start < stop:
        parts: list[bytes] = []
        size, too_long, in_q, ended = 0, False, False, False
        while not ended:
            if i >= len(buf):
                base += len(buf)
                buf, i = next(chunks, b""), 0
                if not buf:
                    break  # the end of the file ends the record
            j, in_q = _find_end(buf, i, in_q, quoted)
            end = j + 1 if j >= 0 else len(buf)
            size += end - i
            if not too_long:
                if size > limit:
                    too_long, parts = True, []
                else:
                    parts.append(buf[i:end])
            i, ended = end, j >= 0
        if size == 0:
            return
        yield start, (None if too_long else b"".join(parts))
        start = base + i


def _range_chunks(store: ArtifactStore, file: InputFile, first: int, end: int
                  ) -> Generator[bytes, None, None]:
    """Bytes ``[first, end)`` of the file, then, only while the consumer asks (a record
    running past the split), the rest of the file through a second ranged read."""
    got = 0
    with store.open_range(file.path, first, end - first) as fh:
        while chunk := fh.read(CHUNK):
            got += len(chunk)
            yield chunk
    if got < end - first:
        return  # the file is shorter than planned: its end ends the split
    with store.open_range(file.path, end) as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _decompressor(raw: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gz":
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    return cast(BinaryIO, bz2.BZ2File(raw, mode="rb"))


def _decompressed_chunks(store: ArtifactStore, file: InputFile
                         ) -> Generator[bytes, None, None]:
    with store.open_range(file.path, 0) as raw, _decompressor(raw, file.compression) as dec:
        while True:
            try:
                chunk = dec.read(CHUNK)
            except (OSError, EOFError, zlib.error) as exc:
                _raise_if_store_error(exc)
                raise InputError("hdfs_input", f"a .{file.compression} input file is corrupt "
                                 "or truncated") from None
            if not chunk:
                return
            yield chunk


def _raise_if_store_error(exc: BaseException) -> None:
    """Re-raise an error of the store itself (not of the compressed data)."""
    from spamq.storage.artifacts import ArtifactError

    if isinstance(exc, ArtifactError):
        raise exc


# ---------------------------------------------------------------------------------- parquet


class _RangeFile(io.RawIOBase):
    """A seekable read-only file over ``store.open_range``: each read streams from where it
    is, through ranged reads of at most PARQUET_WINDOW bytes (so reading a footer reads
    only the footer)."""

    def __init__(self, store: ArtifactStore, path: str, size: int) -> None:
        self._store, self._path, self._size = store, path, size
        self._pos = 0
        self._stack = ExitStack()
        self._stream: BinaryIO | None = None
        self._stream_pos = self._stream_end = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        if self._stream is None or self._stream_pos != self._pos or \
                self._stream_pos >= self._stream_end:
            self._stack.close()
            self._stack = ExitStack()
            length = min(self._size - self._pos, max(n, PARQUET_WINDOW))
            self._stream = self._stack.enter_context(
                self._store.open_range(self._path, self._pos, length))
            self._stream_pos, self._stream_end = self._pos, self._pos + length
        stream = cast(io.RawIOBase, self._stream)  # a store's stream is a raw binary file
        got = stream.readinto(memoryview(b)[: min(n, self._stream_end - self._pos)])
        if not got:
            return 0
        self._pos += got
        self._stream_pos += got
        return got

    def close(self) -> None:
        self._stack.close()
        self._stream = None
        super().close()


class _ParquetHandle:
    def __init__(self, store: ArtifactStore, file: InputFile) -> None:
        self._raw = _RangeFile(store, file.path, file.size)

    def __enter__(self) -> pq.ParquetFile:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # buffer_size: column chunks are read in pieces, never a whole chunk at once.
            return pq.ParquetFile(self._raw, buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:  # a bad footer: ArrowInvalid, OSError
            self._raw.close()
            _raise_if_store_error(exc)
            raise not_parquet() from None

    def reopen(self, pf: pq.ParquetFile, dictionary: list[str]) -> pq.ParquetFile:
        """``pf`` again (its footer not read twice), the ``dictionary`` columns (of Parquet
        type BYTE_ARRAY) read as Arrow dictionary arrays."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(self._raw, metadata=pf.metadata, buffer_size=1 << 20,
                              pre_buffer=False, read_dictionary=dictionary or None)

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def _parquet_file(store: ArtifactStore, file: InputFile) -> _ParquetHandle:
    return _ParquetHandle(store, file)


def _read_parquet(store: ArtifactStore, file: InputFile, split: Split, column: str,
                  cols: list[str], max_chars: int, limit: int, batch_bytes: int,
                  batch_rows: int = PARQUET_BATCH) -> Iterator[RowBatch]:
    """The split's rows in bounded memory, whatever their values' sizes: string and binary
    columns stay dictionary-encoded in Arrow (one copy of a value repeated in every row); a
    batch holds about ``batch_bytes`` of decoded values (from the row groups' sizes); a text
    longer than ``max_chars`` (measured in Arrow) is rejected "too long" and a row with a
    value over ``limit`` bytes "record too long", neither ever made a Python string; the
    rest become Python objects at most ~``batch_bytes`` at a time."""
    handle = _parquet_file(store, file)
    with handle as pf:
        present = set(pf.schema_arrow.names)
        needed = [c for c in dict.fromkeys([column, *cols]) if c in present]
        md = pf.metadata
        groups = split.row_groups()  # None: the whole file
        if groups is None:
            groups = list(range(md.num_row_groups))
        ref = sum(md.row_group(g).num_rows for g in range(groups[0])) if groups else 0
        rows = sum(md.row_group(g).num_rows for g in groups)
        size = sum(md.row_group(g).column(c).total_uncompressed_size for g in groups
                   for c in range(md.num_columns)
                   if md.schema.column(c).path in needed)
        per_row = size // rows if rows else 1
        batch_rows = max(1, min(batch_rows, PARQUET_BATCH, batch_bytes // max(1, per_row)))
        byte_arrays = [c for c in needed if any(
            md.schema.column(i).path == c and md.schema.column(i).physical_type == "BYTE_ARRAY"
            for i in range(md.num_columns))]
        reader = handle.reopen(pf, byte_arrays)
        for batch in reader.iter_batches(batch_size=batch_rows, row_groups=groups,
                                         columns=needed, use_threads=False):
            yield from _batch_records(batch, ref, column, cols, max_chars, limit, batch_bytes)
            ref += batch.num_rows


def _lengths(arr: Any, *, chars: bool) -> Any:
    """Each row's length in a string or binary array (plain or dictionary-encoded; in
    characters for strings when ``chars``, else in bytes; 0 for a null), measured in Arrow
    (an int64 array); None for other types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dictionary = pa.types.is_dictionary(arr.type)
    values = arr.dictionary if dictionary else arr
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        lengths = (pc.utf8_length if chars else pc.binary_length)(values)
    elif (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and not chars:
        lengths = pc.binary_length(values)
    else:
        return None
    lengths = pc.take(lengths, arr.indices) if dictionary else lengths
    return pc.fill_null(lengths.cast(pa.int64()), 0)


def _decoded(arr: Any) -> Any:
    """A dictionary-encoded slice as plain values (bounded: the slice's values fit the batch's
    bytes), which turn into Python objects much faster."""
    import pyarrow as pa

    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _nulled(arr: Any, drop: list[bool]) -> Any:
    """``arr`` with the rows where ``drop`` is true set to null, no value decoded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not any(drop):
        return arr
    mask = pa.array(drop, type=pa.bool_())
    if pa.types.is_dictionary(arr.type):
        indices = pc.if_else(mask, pa.scalar(None, arr.indices.type), arr.indices)
        return pa.DictionaryArray.from_arrays(indices, arr.dictionary)
    return pc.if_else(mask, pa.scalar(None, arr.type), arr)


def _batch_records(batch: Any, ref: int, column: str, cols: list[str], max_chars: int,
                   limit: int, batch_bytes: int) -> Iterator[RowBatch]:
    """The records of one Arrow batch: sizes checked in Arrow first, then the values that
    pass made Python objects a slice of about ``batch_bytes`` at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    names = [c for c in dict.fromkeys([column, *cols]) if c in batch.schema.names]
    zeros = pa.array([0] * n, pa.int64())

    def measured(c: str, chars: bool = False) -> Any:
        found = _lengths(batch.column(c), chars=chars) if c in names else None
        return zeros if found is None else found

    text_bytes, chars = measured(column), measured(column, chars=True)
    extras = [measured(c) for c in names if c != column]
    extra_max = pc.max_element_wise(*extras) if extras else zeros
    extra_sum = extras[0] if extras else zeros
    for more in extras[1:]:
        extra_sum = pc.add(extra_sum, more)
    whole = pc.or_(pc.greater(extra_max, limit), pc.greater(text_bytes, limit))
    text = pc.and_(pc.invert(whole), pc.greater(chars, max_chars))
    cost = pc.if_else(whole, 0, pc.add(extra_sum, pc.if_else(text, 0, text_bytes)))
    drop_all, drop_text = whole.to_pylist(), pc.or_(whole, text).to_pylist()
    problems: list[str | None] = [None] * n
    costs = cost.to_pylist()
    char_counts = chars.to_pylist()
    for r in pc.indices_nonzero(pc.or_(whole, text)).to_pylist():
        problems[r] = (f"record too long: a value of more than {limit} bytes" if drop_all[r]
                       else f"too long: {char_counts[r]} characters, at most {max_chars}")
    arrays = {c: _nulled(batch.column(c), drop_text if c == column else drop_all)
              for c in names}
    start = 0
    while start < n:
        stop, used = start + 1, costs[start]
        while stop < n and used + costs[stop] <= batch_bytes:
            used += costs[stop]
            stop += 1
        values = {c: _decoded(a.slice(start, stop - start)).to_pylist()
                  for c, a in arrays.items()}
        k = stop - start
        texts = values.get(column) or [None] * k
        yield RowBatch(
            list(range(ref + start, ref + stop)), texts,
            {c: values[c] if c in values else [None] * k for c in cols},
            [p or text_problem(t, max_chars=max_chars)
             for p, t in zip(problems[start:stop], texts, strict=True)])
        start = stop
