"""spamq/storage/splits.py on a LocalArtifactStore: listing, planning, quote parity, reading."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import tempfile
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spamq.storage.artifacts import ArtifactStore, FileStatus, LocalArtifactStore
from spamq.storage.splits import (
    InputError,
    InputFile,
    Record,
    Split,
    list_input,
    needs_quote_count,
    plan_splits,
    quote_count,
    quote_parity,
    read_split,
    sniff,
)

PIECES = ["a", "b", "Z", " ", ",", '"', '""', "\n", "\r\n", "\r", "\t", "é", "€", "😀", "ß",
          "x y", "'", ";"]
field_text = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)
rows_strategy = st.lists(st.tuples(field_text, field_text), min_size=0, max_size=12)


def read_all(store: ArtifactStore, files: list[InputFile], split_bytes: int,
             **kw: object) -> tuple[list[Split], list[Record]]:
    """Plan, count quotes, read every split: what a job's map side does, in one process."""
    splits = plan_splits(store, files, split_bytes=split_bytes)
    counts = [quote_count(store, files[s.file], s) if needs_quote_count(files[s.file]) else 0
              for s in splits]
    parity = quote_parity(splits, counts)
    headers = {i: sniff(store, f, column=kw.get("column", "text"))  # type: ignore[arg-type]
               for i, f in enumerate(files)}
    out: list[Record] = []
    for split, in_quotes in zip(splits, parity, strict=True):
        out += read_split(store, files[split.file], split, header=headers[split.file],
                          in_quotes=in_quotes, **kw)  # type: ignore[arg-type]
    return splits, out


def csv_bytes(rows: list[tuple[str, str]], *, delimiter: str = ",", bom: bool = False,
              blank_lines: bool = False) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["id", "text", "note"])
    for i, (text, note) in enumerate(rows):
        writer.writerow([f"r{i}", text, note])
        if blank_lines and i % 3 == 1:
            buffer.write("\r\n")
    return ("\ufeff" if bom else "").encode() + buffer.getvalue().encode()


def expected_csv(data: bytes, delimiter: str = ",") -> list[tuple[str, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""),
                            delimiter=delimiter, strict=True)
    return [(row["text"], {"id": row["id"], "note": row["note"]}) for row in reader]


# One store for all hypothesis examples (a function-scoped tmp_path would be shared anyway).
_PROP_DIR = tempfile.TemporaryDirectory(prefix="spamq-splits-")
_PROP_STORE = LocalArtifactStore(Path(_PROP_DIR.name))
PROP = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROP
@given(rows=rows_strategy, bom=st.booleans(), blank_lines=st.booleans(), data=st.data())
def test_csv_splits_read_every_row_once_in_order(rows, bom, blank_lines, data) -> None:
    raw = csv_bytes(rows, bom=bom, blank_lines=blank_lines)
    _PROP_STORE.write_bytes("prop/in.csv", raw)
    files = list_input(_PROP_STORE, "prop/in.csv")
    split_bytes = data.draw(st.integers(1, len(raw)), label="split_bytes")
    splits, records = read_all(_PROP_STORE, files, split_bytes, column="text",
                               id_column="id", keep_columns=("note",))
    assert len(splits) == -(-len(raw) // split_bytes)
    assert [(r.text, r.extra) for r in records] == expected_csv(raw)
    refs = [r.ref for r in records]
    assert refs == sorted(set(refs))
    for r in records:  # the ref is the byte offset where the record starts
        fields = next(csv.reader(io.StringIO(raw[r.ref:].decode(), newline="")))
        assert fields[0] == r.extra["id"]
    assert all(r.problem in (None, "empty or blank") for r in records)


@PROP
@given(rows=rows_strategy, data=st.data())
def test_tsv_splits_read_every_row_once_in_order(rows, data) -> None:
    raw = csv_bytes(rows, delimiter="\t")
    _PROP_STORE.write_bytes("prop/in.tsv", raw)
    files = list_input(_PROP_STORE, "prop/in.tsv")
    assert files[0].fmt == "tsv"
    split_bytes = data.draw(st.integers(1, len(raw)), label="split_bytes")
    _, records = read_all(_PROP_STORE, files, split_bytes, column="text", id_column="id",
                          keep_columns=("note",))
    assert [(r.text, r.extra) for r in records] == expected_csv(raw, "\t")


json_value = st.one_of(field_text, st.integers(), st.none(), st.lists(st.integers(), max_size=2))


@PROP
@given(objs=st.lists(st.fixed_dictionaries({"text": json_value, "note": field_text}),
                     max_size=12),
       endings=st.lists(st.sampled_from(["\n", "\r\n", "\n\n", "\n  \n"]), min_size=12,
                        max_size=12),
       data=st.data())
def test_jsonl_splits_read_every_line_once_in_order(objs, endings, data) -> None:
    lines = [json.dumps({"id": i, **o}, ensure_ascii=i % 2 == 0) for i, o in enumerate(objs)]
    raw = "".join(line + end for line, end in zip(lines, endings, strict=False)).encode()
    if not raw:
        raw = b"\n"
    _PROP_STORE.write_bytes("prop/in.jsonl", raw)
    files = list_input(_PROP_STORE, "prop/in.jsonl")
    split_bytes = data.draw(st.integers(1, len(raw)), label="split_bytes")
    splits, records = read_all(_PROP_STORE, files, split_bytes, column="text",
                               id_column="id", keep_columns=("note",))
    assert all(not needs_quote_count(files[s.file]) for s in splits)
    assert [(r.text, r.extra) for r in records] == \
        [(o["text"], {"id": i, "note": o["note"]}) for i, o in enumerate(objs)]
    for r in records:
        assert json.loads(raw[r.ref:].split(b"\n", 1)[0])["id"] == r.extra["id"]
    assert [r.problem is None for r in records] == \
        [isinstance(o["text"], str) and o["text"].strip() != "" for o in objs]


# ------------------------------------------------------------------------- csv edge cases


def one_file(store: LocalArtifactStore, name: str, raw: bytes) -> list[InputFile]:
    store.write_bytes(name, raw)
    return list_input(store, name)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def test_a_record_starting_exactly_at_a_split_start_is_read_once(store) -> None:
    raw = b'id,text\r\n1,"a\r\nb"\r\n2,c\r\n'
    files = one_file(store, "x.csv", raw)
    at = raw.index(b"2,c")
    for split_bytes in (at, at - 1, at + 1, 1, 2):
        _, records = read_all(store, files, split_bytes, column="text", id_column="id")
        assert [(r.ref, r.text) for r in records] == [(9, "a\r\nb"), (at, "c")], split_bytes


def test_a_stray_quote_gives_rejected_records_whatever_the_splits(store) -> None:
    raw = b'id,text\n1,5"6 inch\n2,fine\n3,"ok"\n'
    files = one_file(store, "x.csv", raw)
    results = set()
    for split_bytes in range(1, len(raw) + 1):
        _, records = read_all(store, files, split_bytes, column="text")
        results.add(tuple((r.ref, r.text, r.problem) for r in records))
    assert len(results) == 1  # the same records, however the file is split
    (only,) = results
    assert len(only) == 1 and only[0][0] == 8 and only[0][2].startswith("csv: ")


def test_an_unclosed_quote_is_one_rejected_record(store) -> None:
    raw = b'id,text\n1,fine\n2,"never closed\n3,x\n'
    files = one_file(store, "x.csv", raw)
    for split_bytes in (1, 5, 100):
        _, records = read_all(store, files, split_bytes, column="text")
        assert [(r.text, r.problem) for r in records] == [
            ("fine", None), (None, "csv: a quoted field is not closed")]


def test_bad_records_are_rejected_not_raised(store) -> None:
    raw = (b'id,text\n1,"a"b\n2,\xff\xfe\n3,' + b"x" * 300 + b'\n4,"' + b"y" * 500
           + b'"\n5,   \n6,ok\n7\n')
    files = one_file(store, "x.csv", raw)
    _, records = read_all(store, files, 7, column="text", max_record_bytes=400,
                          max_chars=100)
    assert [r.problem for r in records] == [
        "csv: a quoted field has text after its closing quote",
        "not UTF-8",
        "too long: 300 characters, at most 100",
        "record too long: more than 400 bytes (an unclosed or stray quote?)",
        "empty or blank",
        None,
        "missing",
    ]
    assert records[5].text == "ok"


def test_a_split_inside_one_long_record_has_no_rows(store) -> None:
    raw = b'id,text\n1,"' + b"a\n" * 50 + b'"\n2,b\n'
    files = one_file(store, "x.csv", raw)
    splits = plan_splits(store, files, split_bytes=20)
    counts = [quote_count(store, files[0], s) for s in splits]
    parity = quote_parity(splits, counts)
    header = sniff(store, files[0], column="text")
    per_split = [list(read_split(store, files[0], s, header=header, column="text",
                                 in_quotes=q)) for s, q in zip(splits, parity, strict=True)]
    assert [len(r) for r in per_split] == [1] + [0] * (len(splits) - 2) + [1]
    assert per_split[0][0].text == "a\n" * 50
    assert per_split[-1][0].text == "b"


def test_a_split_not_at_zero_needs_the_header(store) -> None:
    files = one_file(store, "x.csv", b"id,text\n1,a\n2,b\n")
    split = plan_splits(store, files, split_bytes=8)[1]
    with pytest.raises(ValueError, match="header"):
        list(read_split(store, files[0], split, column="text"))


def test_quote_parity_is_per_file_in_file_order() -> None:
    splits = [Split(0, 0, 0, 10), Split(1, 0, 10, 10), Split(2, 1, 0, 10), Split(3, 0, 20, 5)]
    assert quote_parity(splits, [3, 2, 1, 0]) == [False, True, False, True]
    assert quote_parity(list(reversed(splits)), [0, 1, 2, 3]) == [True, False, True, False]


# ------------------------------------------------------------------------------ compressed


def test_gz_and_bz2_files_are_one_split_read_whole(store) -> None:
    rows = [(f"text {i}, \"quoted\"\nline", f"n{i}") for i in range(2000)]
    raw = csv_bytes(rows)
    store.write_bytes("c/a.csv.gz", gzip.compress(raw))
    lines = [json.dumps({"id": i, "text": f"t{i}"}) for i in range(1500)]
    store.write_bytes("j/b.jsonl.bz2", bz2.compress(("\n".join(lines) + "\n\n").encode()))
    files = list_input(store, "c/a.csv.gz")
    assert (files[0].fmt, files[0].compression) == ("csv", "gz")
    splits, records = read_all(store, files, 100, column="text", id_column="id",
                               keep_columns=("note",))
    assert len(splits) == 1 and (splits[0].start, splits[0].length) == (0, files[0].size)
    assert [(r.text, r.extra) for r in records] == expected_csv(raw)
    assert [r.ref for r in records] == list(range(2000))

    files = list_input(store, "j")
    assert (files[0].fmt, files[0].compression) == ("jsonl", "bz2")
    splits, records = read_all(store, files, 100, column="text", id_column="id")
    assert len(splits) == 1
    assert [(r.ref, r.text, r.extra["id"]) for r in records] == \
        [(i, f"t{i}", i) for i in range(1500)]


def test_a_corrupt_gz_file_is_an_input_error(store) -> None:
    good = gzip.compress(csv_bytes([("hello", "n")] * 5000))
    files = one_file(store, "a.csv.gz", good[: len(good) // 2])
    split = plan_splits(store, files, split_bytes=10)[0]
    with pytest.raises(InputError, match="corrupt or truncated") as err:
        list(read_split(store, files[0], split, column="text"))
    assert err.value.field == "hdfs_input"


# ---------------------------------------------------------------------------------- listing


def test_a_directory_lists_its_data_files_only(store, tmp_path) -> None:
    for name in ("part-00001.csv", "part-00000.csv", "_SUCCESS", ".hidden.csv",
                 "._part-00000.csv.crc", "_tmp/part-9.csv", "sub/part-7.csv", "empty.csv"):
        store.write_bytes(f"out/{name}", b"" if name == "empty.csv" else b"id,text\n1,a\n")
    files = list_input(store, "out")
    assert [f.path for f in files] == ["out/empty.csv", "out/part-00000.csv",
                                       "out/part-00001.csv"]
    assert all(f.fmt == "csv" and f.compression == "" for f in files)
    assert files[1].size == 12 and files[1].mtime > 1_600_000_000_000  # milliseconds
    splits = plan_splits(store, files, split_bytes=1000)
    assert [(s.index, s.file) for s in splits] == [(0, 1), (1, 2)]  # the empty file: none
    assert list_input(store, "out/") == files


def test_a_glob_in_the_last_component(store) -> None:
    for name in ("part-00000.csv.gz", "part-00001.csv.gz", "part-00002.csv", "_part-3.csv.gz",
                 "other.csv.gz"):
        store.write_bytes(f"d/{name}", gzip.compress(b"id,text\n1,a\n"))
    assert [f.path for f in list_input(store, "d/part-*.csv.gz")] == \
        ["d/part-00000.csv.gz", "d/part-00001.csv.gz"]
    assert [f.path for f in list_input(store, "d/part-0000[02].csv*")] == \
        ["d/part-00000.csv.gz", "d/part-00002.csv"]
    for bad in ("d*/part-*.csv", "d/**.csv"):
        with pytest.raises(InputError) as err:
            list_input(store, bad)
        assert err.value.field == "hdfs_input"


def test_format_is_forced_for_names_without_an_extension(store) -> None:
    store.write_bytes("h/part-00000", b"id\ttext\n1\thello\n")
    store.write_bytes("h/part-00001.gz", gzip.compress(b"id\ttext\n2\tworld\n"))
    files = list_input(store, "h", fmt="tsv")
    assert [(f.fmt, f.compression) for f in files] == [("tsv", ""), ("tsv", "gz")]
    _, records = read_all(store, files, 4, column="text", id_column="id")
    assert [(r.text, r.extra) for r in records] == [("hello", {"id": "1"}),
                                                   ("world", {"id": "2"})]


def test_listing_errors_say_what_without_names_or_server_paths(store, tmp_path) -> None:
    store.write_bytes("u/data.txt", b"x")
    store.write_bytes("u/secret-name.csv", b"id,text\n")
    store.write_bytes("m/a.csv", b"id,text\n")
    store.write_bytes("m/b.jsonl", b"{}\n")
    store.write_bytes("only/_SUCCESS", b"")
    cases = [
        ("nothing/here.csv", "hdfs_input", "nothing found"),
        ("u/nomatch-*.csv", "hdfs_input", "no data files match"),
        ("only", "hdfs_input", "no data files"),
        ("u", "format", "1 of the 2 input files have no known format"),
        ("u/data.txt", "format", "the input file has no known format"),
        ("m", "format", "mixes formats (csv, jsonl)"),
    ]
    for spec, fld, words in cases:
        with pytest.raises(InputError) as err:
            list_input(store, spec)
        assert (err.value.field, words in err.value.message) == (fld, True), err.value.message
        for secret in (str(tmp_path), "secret-name", "data.txt", "a.csv"):
            assert secret not in err.value.message
    with pytest.raises(InputError) as err:
        list_input(store, "u", fmt="parquet")
    assert err.value.field == "format"


# ---------------------------------------------------------------------------------- sniffing


def test_sniff_names_the_missing_column_and_only_counts_the_others(store) -> None:
    files = one_file(store, "s.csv", b"\xef\xbb\xbfid,private_column,text\n1,x,hello\n")
    assert sniff(store, files[0], column="text", id_column="id",
                 keep_columns=["private_column"]) == ["id", "private_column", "text"]
    for kwargs, fld, name in [
        ({"column": "body"}, "column", "'body'"),
        ({"column": "text", "id_column": "key"}, "id_column", "'key'"),
        ({"column": "text", "keep_columns": ["id", "nope"]}, "keep_columns", "'nope'"),
    ]:
        with pytest.raises(InputError) as err:
            sniff(store, files[0], **kwargs)
        assert err.value.field == fld
        assert name in err.value.message and "(3 columns)" in err.value.message
        assert "private_column" not in err.value.message
    with pytest.raises(InputError) as err:
        sniff(store, files[0], column="z" * 500)
    assert len(err.value.message) < 200


def test_sniff_reads_only_the_head(store) -> None:
    raw = b'id,text\n' + b'1,"hello"\n' * 200_000
    files = one_file(store, "big.csv", raw)
    counting = CountingStore(store.root)
    assert sniff(counting, files[0], column="text") == ["id", "text"]
    assert counting.bytes_read <= 1 << 16


def test_sniff_jsonl_and_errors(store) -> None:
    files = one_file(store, "a.jsonl", b'\n{"text": "x", "id": 1, "secret": 2}\n')
    assert sniff(store, files[0], column="text") is None
    with pytest.raises(InputError) as err:
        sniff(store, files[0], column="body")
    assert err.value.field == "column" and "(3 keys)" in err.value.message
    assert "secret" not in err.value.message
    files = one_file(store, "b.jsonl", b"hidden_col,text\n1,a\n")
    with pytest.raises(InputError) as err:
        sniff(store, files[0], column="text")
    assert err.value.field == "format" and "hidden_col" not in err.value.message


def test_a_header_longer_than_the_sniff_is_an_error(store) -> None:
    files = one_file(store, "w.csv", b",".join(b"c%d" % i for i in range(20000)) + b"\n")
    with pytest.raises(InputError, match="header row is longer"):
        sniff(store, files[0], column="c1")


# ---------------------------------------------------------------------------------- parquet


class CountingStore(LocalArtifactStore):
    """Counts the bytes its ranged reads hand out."""

    bytes_read = 0

    @contextmanager
    def open_range(self, path: str, offset: int = 0, length: int | None = None
                   ) -> Iterator[io.BufferedReader]:
        store = self

        class Counted(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, b) -> int:
                n = inner.readinto(b)
                store.bytes_read += n
                return n

        with super().open_range(path, offset, length) as inner:
            yield io.BufferedReader(Counted(), 1 << 12)


def test_parquet_one_split_per_row_group_reading_the_footer_only(store, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 3000
    table = pa.table({
        "id": [f"k{i}" for i in range(n)],
        "text": [None if i == 7 else os.urandom(200).hex() for i in range(n)],
        "big": [os.urandom(500).hex() for _ in range(n)],
        "score": list(range(n)),
    })
    local = tmp_path / "t.parquet"
    pq.write_table(table, local, row_group_size=1000, compression="none")
    store.upload_file(local, "pq/t.parquet")
    files = list_input(store, "pq")
    assert files[0].fmt == "parquet"
    counting = CountingStore(store.root)
    splits = plan_splits(counting, files, split_bytes=1 << 30)
    assert [s.row_group for s in splits] == [0, 1, 2]
    assert counting.bytes_read < files[0].size // 20  # the footer, not the data
    assert all(0 < s.start < files[0].size and s.length > 1000 * 400 for s in splits)
    assert sniff(store, files[0], column="text", id_column="id") is None
    with pytest.raises(InputError) as err:
        sniff(store, files[0], column="body")
    assert err.value.field == "column" and "(4 columns)" in err.value.message

    counting.bytes_read = 0
    records = [r for s in splits for r in read_split(
        counting, files[0], s, column="text", id_column="id", keep_columns=["score"])]
    assert counting.bytes_read < files[0].size * 0.5  # never the "big" column
    assert [r.ref for r in records] == list(range(n))
    assert [r.extra for r in records] == [{"id": f"k{i}", "score": i} for i in range(n)]
    assert [r.text for r in records] == table.column("text").to_pylist()
    assert [i for i, r in enumerate(records) if r.problem] == [7]
    assert records[7].problem == "missing"


def test_many_parquet_files_plan_a_split_per_file_reading_nothing(store, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for k in range(3):
        local = tmp_path / f"p{k}.parquet"
        pq.write_table(pa.table({"id": [f"{k}-{i}" for i in range(50)],
                                 "text": [f"t{i}" for i in range(50)]}), local, row_group_size=20)
        store.upload_file(local, f"many/part-{k}.parquet")
    files = list_input(store, "many")
    counting = CountingStore(store.root)
    splits = plan_splits(counting, files, split_bytes=1 << 30, parquet_footers=False)
    assert counting.bytes_read == 0 and [(s.file, s.row_group) for s in splits] == [
        (0, None), (1, None), (2, None)]
    records = [r for s in splits for r in read_split(store, files[s.file], s, column="text",
                                                     id_column="id")]
    assert [r.extra["id"] for r in records] == [f"{k}-{i}" for k in range(3) for i in range(50)]
    assert [r.ref for r in records[:50]] == list(range(50))  # each file's rows, all groups


def test_a_file_that_is_not_parquet(store) -> None:
    files = one_file(store, "bad.parquet", b"id,text\n" * 100)
    with pytest.raises(InputError) as err:
        plan_splits(store, files, split_bytes=100)
    assert err.value.field == "hdfs_input"


# ------------------------------------------------------------------------------ store calls


def test_local_stat_list_status_and_open_range(store, tmp_path) -> None:
    data = bytes(range(256)) * 40
    store.write_bytes("r/blob.bin", data)
    os.symlink(tmp_path / "store" / "r" / "blob.bin", tmp_path / "store" / "r" / "link")
    st = store.stat("r/blob.bin")
    assert st is not None and (st.type, st.size) == ("file", len(data))
    assert store.stat("r").type == "dir" and store.stat("r/none") is None
    assert [(n, s.type) for n, s in store.list_status("r")] == [("blob.bin", "file")]
    assert store.list_status("r/blob.bin") == [] and store.list_status("nothing") == []
    assert isinstance(st, FileStatus)
    for offset, length in [(0, None), (0, 10), (100, 5000), (10239, 5), (10240, 5),
                           (99999, None), (7, 0)]:
        with store.open_range("r/blob.bin", offset, length) as fh:
            got = b"".join(iter(lambda fh=fh: fh.read(333), b""))
        end = len(data) if length is None else offset + length
        assert got == data[offset:end], (offset, length)


# ----------------------------------------------------------------------------------- memory


@pytest.mark.slow
def test_reading_a_50mb_split_holds_a_few_mb(store, tmp_path) -> None:
    local = tmp_path / "big.csv"
    line = '{i},"spam, ""free"" prize\n call now ' + "lorem ipsum dolor " * 200 + '",n{i}\r\n'
    with open(local, "w", newline="") as fh:
        fh.write("id,text,note\r\n")
        i = 0
        while fh.tell() < 50 << 20:
            fh.write("".join(line.format(i=j) for j in range(i, i + 1000)))
            i += 1000
    store.upload_file(local, "big.csv")
    files = list_input(store, "big.csv")
    (split,) = plan_splits(store, files, split_bytes=files[0].size)
    tracemalloc.start()
    try:
        count = 0
        for record in read_split(store, files[0], split, column="text", id_column="id",
                                 keep_columns=["note"]):
            count += record.problem is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == i
    assert peak < 16 << 20, peak
