"""Hostile-client inputs to the validation layer: each is a named 4xx or a rejected row, never a
500, and no message quotes the uploaded file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from api.requests import RequestModels, validate
from spamq.errors import InvalidRequest
from spamq.settings import Settings
from spamq.storage import splits
from spamq.storage.artifacts import LocalArtifactStore

INVISIBLE = ["\u200b\u200d\ufeff", "\u2060", " \u200e\t\u202e\U000e0001 ", ""]


SETTINGS = Settings(max_texts_per_request=10, max_chars_per_text=50, results_page_max=100)
MODELS = RequestModels.for_settings(SETTINGS)


def texts(*items):
    """The texts of a ``{"texts": [...]}`` body, as the request model reads them."""
    return validate(MODELS.texts, {"texts": list(items)}, SETTINGS).texts


def upload(content: str | bytes, fmt: str = "jsonl", column: str = "text"):
    """(texts, their record numbers, rejected {row, reason}) as a store job reads the file."""
    data = content.encode() if isinstance(content, str) else content
    with tempfile.TemporaryDirectory() as root:
        store = LocalArtifactStore(Path(root))
        store.write_bytes(f"in.{fmt}", data)
        files = splits.list_input(store, f"in.{fmt}")
        header = splits.sniff(store, files[0], column=column)
        records = [r for split in splits.plan_splits(store, files, split_bytes=1 << 20)
                   for r in splits.read_split(store, files[0], split, header=header,
                                              column=column, max_chars=50)]
    ok = [(i, r.text) for i, r in enumerate(records) if r.problem is None]
    return ([t for _, t in ok], [i for i, _ in ok],
            [{"row": i, "reason": r.problem} for i, r in enumerate(records) if r.problem])


def test_a_lone_surrogate_is_a_422_naming_the_text():
    payload = json.loads('{"texts": ["ok", "fine", "good", "bad \\ud800 here"]}')
    with pytest.raises(InvalidRequest) as err:
        validate(MODELS.texts, payload, SETTINGS)
    assert (err.value.field, err.value.status) == ("texts[3]", 422)
    assert "not valid Unicode (a lone surrogate)" in err.value.message
    assert texts("caf\u00e9 \U0001f600") == ["caf\u00e9 \U0001f600"]  # a real pair is fine


def test_a_lone_surrogate_in_an_upload_is_a_rejected_row():
    lines = '{"text": "hi"}\n{"text": "x\\udc00"}\n{"text": "yo"}\n'
    assert upload(lines) == (["hi", "yo"], [0, 2], [
        {"row": 1, "reason": "not valid Unicode (a lone surrogate)"}])


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_only_texts_are_blank(text):
    with pytest.raises(InvalidRequest, match=r"'texts\[0\]' is empty or blank") as err:
        texts(text)
    assert err.value.status == 422
    lines = json.dumps({"text": text}) + "\n" + json.dumps({"text": "ok"}) + "\n"
    assert upload(lines) == (["ok"], [1], [{"row": 0, "reason": "empty or blank"}])


def test_invisible_characters_around_words_are_kept():
    assert texts("fr\u200bee\u200d cash") == ["fr\u200bee\u200d cash"]


def test_a_deeply_nested_jsonl_line_is_a_rejected_row():
    lines = '{"text": "a"}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"text": "b"}\n'
    assert upload(lines) == (["a", "b"], [0, 2], [
        {"row": 1, "reason": "not valid JSON (nested too deep)"}])


def test_an_unclosed_csv_quote_is_a_rejected_record_not_one_merged_row():
    texts_, _, rejected = upload('text\nhi\n"never closed\nrest,of\nthe file\n', fmt="csv")
    assert texts_ == ["hi"]  # the rest of the file is not scored as one silent row
    assert rejected == [{"row": 1, "reason": "csv: a quoted field is not closed"}]
    with pytest.raises(splits.InputError, match="header row cannot be read"):
        upload('"text\nhi\n', fmt="csv")


def test_text_after_a_closing_quote_is_a_rejected_record():
    assert upload('text,n\n"secret"junk,1\n', fmt="csv")[2] == [
        {"row": 0, "reason": "csv: a quoted field has text after its closing quote"}]


def test_quoted_multiline_fields_and_crlf_still_work():
    content = 'id,text\r\n1,"two\r\nlines"\r\n2,"say ""hi"", ok"\r\n\r\n3,plain\r\n'
    assert upload(content, fmt="csv") == (
        ["two\r\nlines", 'say "hi", ok', "plain"], [0, 1, 2], [])
    assert upload('text\tn\n"a\tb"\t1\nc\n', fmt="tsv") == (["a\tb", "c"], [0, 1], [])


def test_a_missing_column_names_it_but_not_the_header():
    with pytest.raises(splits.InputError) as err:
        upload("secret_one,secret_two,secret_three\n1,2,3\n", fmt="csv", column="body")
    assert err.value.field == "column"
    assert err.value.message == "no column 'body' in the csv header (3 columns)"
    with pytest.raises(splits.InputError) as err:
        upload("a\n", fmt="csv", column="b" * 500)
    assert len(err.value.message) < 200 and "(1 column)" in err.value.message


def test_echoed_client_input_is_cut_short():
    form = validate(MODELS.upload, {}, SETTINGS)
    for call in (lambda: form.input_format("x" * 1000),
                 lambda: validate(MODELS.upload, {"format": "y" * 1000}, SETTINGS),
                 lambda: validate(MODELS.results, {"limit": "9" * 1000 + "z"}, SETTINGS)):
        with pytest.raises(InvalidRequest) as err:
            call()
        assert len(err.value.message) < 200, err.value.message
