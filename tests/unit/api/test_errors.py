"""api/errors.py: every SpamqError kind answers with its own status, in one handler."""

import fakeredis
import pytest

import api.store_results  # noqa: F401 - every module that defines a SpamqError kind
import api.validation  # noqa: F401
import spamq.jobs.store  # noqa: F401
import spamq.models.manifest  # noqa: F401
import spamq.secrets.sources  # noqa: F401
import spamq.storage.splits  # noqa: F401
import spamq.webhooks.urls  # noqa: F401
import worker.model_source  # noqa: F401
from api import create_app
from spamq.errors import SpamqError
from spamq.jobs.store import JobStore
from spamq.settings import Settings

#: every kind and its answer; a new kind must be added here
STATUS = {
    "SpamqError": 500, "InvalidRequest": 422, "InputError": 422, "OutputTaken": 409,
    "JobNotFound": 404, "DuplicateJob": 409, "ArtifactError": 503, "ArtifactNotFound": 404,
    "ArtifactExists": 409, "ArtifactSymlink": 422, "RegistryError": 503, "ModelRefused": 503,
    "ManifestError": 500,
    "SecretError": 503, "ModelSourceError": 503, "UrlRefused": 422, "OutputChanged": 409,
    "PayloadTooLarge": 413, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404,
    "Conflict": 409, "RateLimited": 429, "Overloaded": 429, "Unavailable": 503,
    "JobFailed": 500, "Timeout": 504, "EventNotFound": 404,
}
SECRET = "/srv/spamq/tenants/other-team/in/data.csv at http://namenode:9870"


def kinds(cls=SpamqError):
    return [cls, *(k for sub in cls.__subclasses__() for k in kinds(sub))]


#: the kinds that name a request field (the others answer their public message only)
FIELD_KINDS = ("InvalidRequest", "InputError", "PayloadTooLarge")
#: kinds whose constructor takes what the answer shows
BUILT = {"UrlRefused": lambda k: k("scheme must be https"), "OutputTaken": lambda k: k(SECRET),
         "RateLimited": lambda k: k(3), "Overloaded": lambda k: k("4 tasks are queued")}


def make(kind):
    if kind.__name__ in FIELD_KINDS:
        return kind("column", "no column 'body' in the csv header")
    if kind.__name__ in BUILT:
        return BUILT[kind.__name__](kind)
    return kind(SECRET)


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(auth_required=False),
                     store=JobStore(fakeredis.FakeRedis(), ttl_s=60), send_task=lambda *a, **k: 0)
    by_name = {k.__name__: k for k in kinds()}

    @app.get("/raise/<name>")
    def _raise(name):
        raise make(by_name[name])

    return app.test_client()


def test_every_kind_is_mapped():
    assert {k.__name__ for k in kinds()} == set(STATUS)


@pytest.mark.parametrize("name", sorted(STATUS))
def test_each_kind_answers_with_its_status_and_never_its_server_side_text(client, name):
    resp = client.get(f"/raise/{name}")
    body = resp.get_json()
    assert resp.status_code == STATUS[name], body
    assert body["error"] and body["message"] and set(body) == {"error", "field", "message"}
    assert "namenode" not in resp.get_data(as_text=True)
    assert "other-team" not in resp.get_data(as_text=True)
    if name in FIELD_KINDS:
        assert body == {"error": "invalid_request", "field": "column",
                        "message": "no column 'body' in the csv header"}


def test_an_unknown_job_and_a_malformed_id_read_alike(client):
    unknown = client.get("/v1/jobs/" + "f" * 32)
    malformed = client.get("/v1/jobs/NOT-AN-ID")
    assert unknown.status_code == malformed.status_code == 404
    assert unknown.get_json() == malformed.get_json() == {
        "error": "not_found", "field": None, "message": "no such job (unknown or expired)"}


def test_headers_of_a_kind_come_with_its_answer(client):
    assert client.get("/raise/RateLimited").headers["Retry-After"] == "3"
    assert client.get("/raise/Overloaded").headers["Retry-After"] == "5"
    assert client.get("/raise/Unauthorized").headers["WWW-Authenticate"].startswith("Bearer")


def test_a_request_error_is_a_4xx_only():
    from spamq.errors import InvalidRequest

    with pytest.raises(ValueError):
        InvalidRequest("hdfs_input", "the artifact store failed", status=503)
