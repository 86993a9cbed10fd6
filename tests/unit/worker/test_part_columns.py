"""Parts written from columns (PartWriter.write_columns) are byte for byte what the row
writer (PartWriter.write, one dict per row) writes: JSONL, CSV and Parquet, any values."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.split_tasks import RESULT_FIELDS, PartWriter

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.sampled_from('ab ,"\r\n\t%é\x00\x01\\/\u2028'), max_size=8),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2),
                   st.dictionaries(st.text(max_size=3), scalars, max_size=2))


def _columns(kind):
    """A column of one type (the fast path), or of mixed ones."""
    return st.one_of(st.lists(kind, min_size=1, max_size=6), st.lists(values, min_size=1,
                                                                       max_size=6))


@st.composite
def tables(draw):
    n = draw(st.integers(1, 6))
    def col(kind):
        v = draw(_columns(kind))
        return (v * n)[:n]
    data = {
        "id": col(st.one_of(st.text(max_size=5), st.integers())),
        "keep": col(values),
        "file": [draw(st.integers(0, 3))] * n,
        "ref": col(st.integers(0, 2**40)),
        "label": col(st.sampled_from(["spam", "ham", None])),
        "spam_probability": col(st.floats(0, 1)),
        "truncated": col(st.booleans()),
        "model_version": ["v-1"] * n,
    }
    if draw(st.booleans()):
        data["error"] = col(st.one_of(st.none(), st.text(max_size=5)))
    return data


def _rows(data):
    n = len(data["ref"])
    rows = []
    for r in range(n):
        row = {c: v[r] for c, v in data.items() if c != "error"}
        if data.get("error") and data["error"][r] is not None:
            row["error"] = data["error"][r]
        rows.append(row)
    return rows


def _written(tmp_path, fmt, data, *, columns, batches=1):
    cols = ["id", "keep", "file", "ref", *RESULT_FIELDS]
    writer = PartWriter(fmt, cols, tmpdir=str(tmp_path))
    try:
        if columns:
            n = len(data["ref"])
            step = max(1, -(-n // batches))
            for start in range(0, n, step):
                writer.write_columns({c: v[start:start + step] for c, v in data.items()})
        else:
            for row in _rows(data):
                writer.write(row)
        writer.close()
        with open(writer.path, "rb") as fh:
            return fh.read(), writer.rows
    finally:
        writer.discard()


@settings(max_examples=300, deadline=None)
@given(data=tables(), batches=st.integers(1, 3))
def test_jsonl_and_csv_parts_from_columns_equal_the_row_writers(tmp_path_factory, data,
                                                                batches):
    tmp = tmp_path_factory.mktemp("parts")
    for fmt in ("jsonl", "csv"):
        try:
            old = _written(tmp, fmt, data, columns=False)
        except (TypeError, ValueError, UnicodeEncodeError):
            continue  # what the row writer refuses is no row
        assert _written(tmp, fmt, data, columns=True, batches=batches) == old


@settings(max_examples=60, deadline=None)
@given(data=tables())
def test_parquet_parts_from_columns_equal_the_row_writers(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("parts")
    data["keep"] = [v if not isinstance(v, float) or math.isfinite(v) else None
                    for v in data["keep"]]
    try:
        old = _written(tmp, "parquet", data, columns=False)
    except Exception:  # noqa: BLE001 - mixed types Arrow refuses: no row either way
        return
    assert _written(tmp, "parquet", data, columns=True) == old


def test_a_parquet_part_from_columns_has_row_groups_of_8192(tmp_path):
    n = 20_000
    data = {"id": [str(i) for i in range(n)], "keep": [None] * n, "file": [0] * n,
            "ref": list(range(n)), "label": ["ham"] * n, "spam_probability": [0.25] * n,
            "truncated": [False] * n, "model_version": ["v"] * n}
    old = _written(tmp_path, "parquet", data, columns=False)
    assert _written(tmp_path, "parquet", data, columns=True, batches=7) == old


def test_a_rejected_row_file_keeps_its_key_order(tmp_path):
    writer = PartWriter("jsonl", [], tmpdir=str(tmp_path))
    writer.write_columns({"id": ["a", None], "file": [0, 0], "ref": [3, 9],
                          "reason": ["missing", 'csv: a "bad" one']})
    writer.close()
    with open(writer.path, encoding="utf-8") as fh:
        assert fh.read() == (
            '{"id": "a", "file": 0, "ref": 3, "reason": "missing"}\n'
            '{"id": null, "file": 0, "ref": 9, "reason": "csv: a \\"bad\\" one"}\n')
    writer.discard()


def test_columns_of_one_type_with_special_values_equal_the_row_writers(tmp_path):
    inf = float("inf")
    cases = [[float("nan"), inf, -inf, 1e-05, 0.1, 1e16], [1, 2**70, -3, 0, 5, 6],
             [True, False, 1, 0, None, 2], ["a,b", 'q"', "x\r", "y\n", "%s", "é"],
             [1.5, "1.5", None, [1, "a"], {"k": None}, "\x00"]]
    for keep in cases:
        n = len(keep)
        data = {"id": keep, "keep": keep, "file": [1] * n, "ref": list(range(n)),
                "label": ["spam"] * n, "spam_probability": [1e-05] * n,
                "truncated": [True] * n, "model_version": ["v"] * n}
        for fmt in ("jsonl", "csv"):
            assert _written(tmp_path, fmt, data, columns=True) == \
                _written(tmp_path, fmt, data, columns=False), (fmt, keep)
