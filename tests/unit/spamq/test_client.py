"""spamq.client without a server: error answers as typed errors, the streamed multipart body,
wait's pauses and its Retry-After."""

from __future__ import annotations

import io
import json

import pytest
import requests
from werkzeug.formparser import parse_form_data

from spamq import client as c


def _response(status: int, body: object, headers: dict[str, str] | None = None
              ) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    resp.headers.update(headers or {})
    resp.reason = "Reason"
    return resp


class Session:
    """Answers each call with the next of ``answers``; records what was asked."""

    def __init__(self, answers: list[requests.Response]) -> None:
        self.answers, self.calls = list(answers), []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.answers.pop(0)


@pytest.mark.parametrize(("status", "kind"), [
    (400, c.InvalidRequest), (401, c.Unauthorized), (403, c.Forbidden), (404, c.NotFound),
    (409, c.Conflict), (413, c.InvalidRequest), (422, c.InvalidRequest), (429, c.RateLimited),
    (503, c.Unavailable), (504, c.Timeout), (500, c.ApiError)])
def test_each_status_is_its_own_error_with_field_and_message(status, kind):
    body = {"error": "invalid_request", "field": "texts[3]", "message": "too long"}
    err = c.error_for(_response(status, body, {"Retry-After": "7"}))
    assert type(err) is kind and err.status == status
    assert (err.error, err.field, err.message, err.retry_after) == (
        "invalid_request", "texts[3]", "too long", 7.0)
    assert str(err) == f"{status} invalid_request (texts[3]): too long"


def test_a_body_that_is_not_json_still_gives_a_typed_error():
    err = c.error_for(_response(502, b"<html>bad gateway</html>"))
    assert type(err) is c.ApiError and err.error == "http_error" and err.field is None


def test_the_key_goes_with_every_call_and_an_error_is_raised():
    session = Session([_response(404, {"error": "not_found", "message": "no such job"})])
    api = c.Client("http://api.test/", "k1", session=session)
    with pytest.raises(c.NotFound):
        api.job("a" * 32)
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("GET", "http://api.test/v1/jobs/" + "a" * 32)
    assert kwargs["headers"] == {"X-API-Key": "k1"} and kwargs["timeout"] == 60.0


def test_the_upload_body_is_a_form_werkzeug_reads_back(tmp_path):
    source = tmp_path / 'in "x".csv'
    source.write_bytes(b"text\nhello\n" * 5000)
    body = c._Multipart(source, {"column": "text", "id_column": "id"}, progress=False)
    data = b"".join(body)
    assert len(data) == len(body)
    _, form, files = parse_form_data({
        "wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": body.content_type, "REQUEST_METHOD": "POST"})
    assert form.to_dict() == {"column": "text", "id_column": "id"}
    assert files["file"].read() == source.read_bytes()
    assert files["file"].filename == 'in "x".csv'  # the quote went percent-encoded


def test_wait_backs_off_and_sleeps_as_long_as_retry_after_says(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(c.time, "sleep", slept.append)
    job = {"id": "j", "progress": {"done": 0, "total": 2}}
    session = Session([
        _response(200, {**job, "status": "queued"}),
        _response(200, {**job, "status": "running"}),
        _response(429, {"error": "rate_limited", "message": "slow down"}, {"Retry-After": "3"}),
        _response(200, {**job, "status": "done", "results": []})])
    done = c.Client("http://api.test", session=session).wait("j", poll=0.1, max_poll=0.2)
    assert done["status"] == "done"
    assert slept == [0.1, 0.15000000000000002, 3.0, 0.2]  # the 429: 3 s, then on


def test_wait_raises_when_the_job_ends_otherwise():
    session = Session([_response(200, {"id": "j", "status": "failed", "error": "boom"})])
    with pytest.raises(c.JobEnded) as ended:
        c.Client("http://api.test", session=session).wait("j")
    assert ended.value.job["error"] == "boom"


def test_results_follow_next_until_there_is_none():
    session = Session([
        _response(200, {"results": [{"row": 0}, {"row": 1}],
                        "next": "/v1/jobs/j/results?offset=2&limit=2"}),
        _response(200, {"results": [{"row": 2}], "next": None})])
    rows = list(c.Client("http://api.test", session=session).results("j", page_size=2))
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert session.calls[1][1] == "http://api.test/v1/jobs/j/results?offset=2&limit=2"
