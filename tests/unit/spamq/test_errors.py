"""spamq.errors: one base for every spamq error, and what an HTTP client may read of it."""

import pytest

from spamq.errors import InvalidRequest, SpamqError
from spamq.jobs.schema import JobNotFound
from spamq.jobs.store import DuplicateJob, OutputTaken
from spamq.storage.artifacts import ArtifactError
from spamq.storage.splits import InputError


def test_the_class_gives_the_answer_an_instance_may_override_it():
    err = ArtifactError("HDFS at http://namenode:9870 refused /tenants/x")
    assert (err.http_status, err.code) == (503, "unavailable")
    assert "namenode" not in str(err.as_dict()) and "/tenants" not in str(err.as_dict())
    custom = SpamqError("internal detail", http_status=418, code="teapot", field="f",
                        public_message="short and stout")
    assert custom.as_dict() == {"error": "teapot", "message": "short and stout"}
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
