"""spamq.errors: one base for every spamq error, and what an HTTP client may read of it."""

import pytest

from spamq.errors import InvalidRequest, Overloaded, PayloadTooLarge, SpamqError
from spamq.jobs.schema import EventNotFound, JobNotFound
from spamq.jobs.store import DuplicateJob, OutputTaken
from spamq.storage.artifacts import ArtifactError
from spamq.storage.splits import InputError
from spamq.webhooks.urls import UrlRefused


def test_the_class_gives_the_answer_an_instance_may_override_it():
    err = ArtifactError("HDFS at http://namenode:9870 refused /tenants/x")
    assert (err.http_status, err.code) == (503, "unavailable")
    assert "namenode" not in str(err.as_dict()) and "/tenants" not in str(err.as_dict())
    custom = SpamqError("internal detail", http_status=418, code="teapot", field="f",
                        public_message="short and stout")
    assert custom.as_dict() == {"error": "teapot", "field": "f", "message": "short and stout"}
    assert custom.field == "f" and SpamqError().http_status == 500


def test_request_errors_keep_the_field_naming_shape():
    err = InvalidRequest("texts[3]", "'texts[3]' must be a string, not a number")
    assert err.as_dict() == {"error": "invalid_request", "field": "texts[3]",
                             "message": "'texts[3]' must be a string, not a number"}
    assert (err.status, err.http_status) == (422, 422)
    assert InvalidRequest(None, "too big", status=413).status == 413
    taken = OutputTaken("/abs/server/path/out")
    assert (taken.status, taken.field) == (409, "hdfs_output")
    assert "/abs/server" not in str(taken.as_dict())


def test_existing_except_sites_still_catch_them():
    with pytest.raises(KeyError):
        raise JobNotFound("f" * 32)
    with pytest.raises(ValueError):
        raise InputError("column", "no column 'x'")
    with pytest.raises(RuntimeError):
        raise ArtifactError("down")
    assert DuplicateJob("a" * 32).job_id == "a" * 32
    assert issubclass(InputError, InvalidRequest)


def test_every_answer_has_the_one_shape_and_a_kind_may_add_public_figures():
    assert JobNotFound("f" * 32).as_dict() == {
        "error": "not_found", "field": None, "message": "no such job (unknown or expired)"}
    over = Overloaded("9 tasks are queued", queue_depth=9, key_queued=4)
    assert over.as_dict() == {"error": "overloaded", "field": None,
                              "message": "9 tasks are queued", "queue_depth": 9, "key_queued": 4}
    assert over.headers == {"Retry-After": "5"} and over.http_status == 429
    assert PayloadTooLarge("texts", "too many").status == 413


def test_the_errors_outside_the_api_are_spamq_errors_too():
    assert issubclass(EventNotFound, SpamqError) and issubclass(EventNotFound, KeyError)
    refused = UrlRefused("scheme must be https")
    assert isinstance(refused, InvalidRequest) and isinstance(refused, ValueError)
    assert refused.as_dict()["field"] == "webhook.url" and str(refused) == "scheme must be https"


def test_a_jobs_error_is_the_kinds_public_message_never_its_text():
    from worker.tasks import public_error

    down = public_error(ArtifactError("HDFS at http://namenode:9870 refused /tenants/x"))
    assert down == ("the artifact store failed; retry later (see the worker log; resubmit to "
                    "resume)")
    assert public_error(InputError("column", "no column 'x'")) == "column: no column 'x'"
    assert public_error(KeyError("/srv/secret")) == (
        "KeyError (see the worker log); resubmit to resume")
