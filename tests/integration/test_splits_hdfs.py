"""spamq/storage/splits.py on a real HDFS (WebHDFS): ranged reads, listing, planning."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spamq.storage.artifacts import ArtifactNotFound, HdfsArtifactStore
from spamq.storage.splits import (
    InputError,
    InputFile,
    Record,
    list_input,
    needs_quote_count,
    plan_splits,
    quote_count,
    quote_parity,
    read_split,
    sniff,
)
from tests.helpers.services import hdfs_store

pytestmark = pytest.mark.integration


@pytest.fixture
def store(hdfs_url: str) -> Iterator[HdfsArtifactStore]:  # noqa: F811
    s = hdfs_store(hdfs_url)
    yield s
    s.delete("", recursive=True)


def read_all(store: HdfsArtifactStore, files: list[InputFile], split_bytes: int,
             **kw: object) -> list[Record]:
    splits = plan_splits(store, files, split_bytes=split_bytes)
    counts = [quote_count(store, files[s.file], s) if needs_quote_count(files[s.file]) else 0
              for s in splits]
    headers = {i: sniff(store, f, column="text") for i, f in enumerate(files)}
    out: list[Record] = []
    for split, in_quotes in zip(splits, quote_parity(splits, counts), strict=True):
        out += read_split(store, files[split.file], split, header=headers[split.file],
                          column="text", in_quotes=in_quotes, **kw)  # type: ignore[arg-type]
    return out


def sample_csv(n: int, seed: int) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "text", "note"])
    for i in range(n):
        text = f'WIN {i}, "free"\r\nprize\nnow é€ 😀' if (i + seed) % 3 else f"plain {i}"
        writer.writerow([f"r{i}", text, "x\ny" if i % 5 == 0 else ""])
    return buffer.getvalue().encode()


def expected(raw: bytes) -> list[tuple[str, dict[str, str]]]:
    return [(row["text"], {"id": row["id"], "note": row["note"]})
            for row in csv.DictReader(io.StringIO(raw.decode(), newline=""))]


def test_stat_list_status_and_open_range(store: HdfsArtifactStore) -> None:
    data = os.urandom(300_000)
    store.write_bytes("r/blob.bin", data)
    store.write_bytes("r/sub/x", b"x")
    st = store.stat("r/blob.bin")
    assert st is not None and (st.type, st.size) == ("file", len(data))
    assert st.mtime > 1_600_000_000_000  # milliseconds
    assert store.stat("r").type == "dir" and store.stat("r/none") is None
    assert [(n, s.type, s.size) for n, s in store.list_status("r")] == [
        ("blob.bin", "file", len(data)), ("sub", "dir", 0)]
    assert store.list_status("r/blob.bin") == [] and store.list_status("nothing") == []
    for offset, length in [(0, None), (0, 10), (65_535, 70_000), (1, 65_536), (299_999, 5),
                           (300_000, 5), (300_000, None), (400_000, None), (123, 0)]:
        with store.open_range("r/blob.bin", offset, length) as fh:
            got = b"".join(iter(lambda fh=fh: fh.read(10_007), b""))
        end = len(data) if length is None else offset + length
        assert got == data[offset:end], (offset, length)
    with store.open_range("r/blob.bin", 100, 1000) as fh:  # small reads, then readline
        assert fh.read(1) == data[100:101] and fh.read(2) == data[101:103]
    store.write_bytes("r/empty", b"")
    with store.open_range("r/empty") as fh:
        assert fh.read(10) == b""
    with pytest.raises(ArtifactNotFound), store.open_range("r/missing", 0, 10):
        pass


def test_csv_with_multiline_fields_split_into_ranges(store: HdfsArtifactStore) -> None:
    parts = [sample_csv(300, 0), sample_csv(120, 1)]
    for i, raw in enumerate(parts):
        store.write_bytes(f"in/part-{i:05d}.csv", raw)
    store.write_bytes("in/_SUCCESS", b"")
    store.write_bytes("in/.part-00000.csv.crc", b"crc")
    files = list_input(store, "in")
    assert [(f.path, f.size) for f in files] == [
        (f"in/part-{i:05d}.csv", len(raw)) for i, raw in enumerate(parts)]
    want = expected(parts[0]) + expected(parts[1])
    for split_bytes in (len(parts[0]) // 7, 1000, 4097):
        splits = plan_splits(store, files, split_bytes=split_bytes)
        assert len(splits) > 4
        records = read_all(store, files, split_bytes, id_column="id", keep_columns=["note"])
        assert [(r.text, r.extra) for r in records] == want, split_bytes
    assert [f.path for f in list_input(store, "in/part-*1.csv")] == ["in/part-00001.csv"]
    with pytest.raises(InputError) as err:
        sniff(store, files[0], column="body")
    assert err.value.field == "column" and "(3 columns)" in err.value.message


def test_compressed_files_are_read_whole(store: HdfsArtifactStore) -> None:
    raw = sample_csv(2000, 2)
    store.write_bytes("c/a.csv.gz", gzip.compress(raw))
    files = list_input(store, "c/a.csv.gz")
    assert (files[0].fmt, files[0].compression) == ("csv", "gz")
    assert len(plan_splits(store, files, split_bytes=100)) == 1
    records = read_all(store, files, 100, id_column="id", keep_columns=["note"])
    assert [(r.text, r.extra) for r in records] == expected(raw)
    assert [r.ref for r in records] == list(range(2000))

    lines = "".join(json.dumps({"id": i, "text": f"t {i}"}) + "\n" for i in range(3000))
    store.write_bytes("j/b.jsonl.bz2", bz2.compress(lines.encode()))
    records = read_all(store, list_input(store, "j"), 100, id_column="id")
    assert [(r.ref, r.text, r.extra["id"]) for r in records] == \
        [(i, f"t {i}", i) for i in range(3000)]


def test_parquet_one_split_per_row_group(store: HdfsArtifactStore, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 3000
    table = pa.table({"id": list(range(n)), "text": [f"text {i}" for i in range(n)],
                      "blob": [os.urandom(100).hex() for _ in range(n)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    store.upload_file(tmp_path / "t.parquet", "p/t.parquet")
    files = list_input(store, "p")
    splits = plan_splits(store, files, split_bytes=10)
    assert [s.row_group for s in splits] == [0, 1, 2]
    assert sniff(store, files[0], column="text", id_column="id") is None
    records = [r for s in splits
               for r in read_split(store, files[0], s, column="text", id_column="id")]
    assert [(r.ref, r.text, r.extra, r.problem) for r in records] == \
        [(i, f"text {i}", {"id": i}, None) for i in range(n)]
