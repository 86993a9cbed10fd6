import io
import json
import logging

from spamq.logs import JobIdFilter, JsonFormatter, job_context, make_handler


def capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = make_handler(fmt)
    handler.setStream(stream)
    log = logging.getLogger(f"test.logs.{fmt}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, stream


def test_json_lines_carry_the_job_id_of_their_context():
    log, stream = capture("json")
    log.info("outside")
    with job_context("a" * 32):
        log.info("scored %d texts", 3)
    log.info("explicit", extra={"job_id": "b" * 32})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["job_id"], e["message"]) for e in lines] == [
        (None, "outside"), ("a" * 32, "scored 3 texts"), ("b" * 32, "explicit")]
    assert lines[0]["level"] == "INFO" and lines[0]["ts"].endswith("Z")


def test_text_lines_name_the_job():
    log, stream = capture("text")
    with job_context("c" * 32):
        log.warning("chunk %d failed", 2)
    assert f"[job={'c' * 32}]: chunk 2 failed" in stream.getvalue()


def test_exceptions_are_kept_in_json():
    log, stream = capture("json")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    entry = json.loads(stream.getvalue())
    assert "ValueError: boom" in entry["exc"] and entry["message"] == "failed"
    assert isinstance(JsonFormatter(), logging.Formatter) and JobIdFilter().filter(
        logging.makeLogRecord({"msg": "x"}))
