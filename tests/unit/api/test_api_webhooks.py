"""The API's side of webhooks in-process (fakeredis, a recording task sender): the ``webhook``
field of POST /v1/jobs is checked and remembered, the watch sees the job, the attempts read
back, and a refusal is a 422 naming the field."""

import json

import fakeredis
import pytest
import redis as redis_lib

from api import create_app
from spamq.jobs.schema import WEBHOOK_WATCH_KEY
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from spamq.webhooks.outbox import Event, Outbox
from tests.helpers.api import RecordingSender, make_api

#: a public address literal: resolves with no DNS (the guard's own tests cover names)
HOOK = {"url": "https://93.184.216.34/spamq?t=1", "events": ["job.completed", "job.failed"]}
PUBLIC = "https://93.184.216.34/"


#: authentication off: the jobs' events are signed with the entry "-"
SECRETS = json.dumps({"-": {"current": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})


@pytest.fixture
def ctx():
    client, store = make_api(max_texts_per_request=10, chunk_size=4, webhook_secrets=SECRETS)
    settings = client.application.extensions["spamq"]["settings"]
    return client, store, Outbox(store.redis, settings), store.redis


def test_a_job_with_a_webhook_is_watched_and_its_subscription_kept(ctx):
    client, _, outbox, redis = ctx
    resp = client.post("/v1/jobs", json={"texts": ["a"], "webhook": HOOK})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    assert redis.smembers(WEBHOOK_WATCH_KEY) == {job_id.encode()}
    body = client.get(f"/v1/jobs/{job_id}/webhooks").get_json()
    assert body == {"id": job_id, "attempts": [], "webhook": {
        "url": HOOK["url"], "events": HOOK["events"], "gone": False}}


def test_the_attempts_read_back_in_order(ctx):
    client, _, outbox, _ = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a"], "webhook": HOOK}).get_json()["id"]
    event = Event("msg_" + "a" * 32, "job.completed", job_id, "-", HOOK["url"], "{}")
    assert outbox.enqueue(event) == event.id
    [claimed] = outbox.claim("tok", 1)
    record = {"event_id": event.id, "type": event.type, "attempt": 1, "status": 500,
              "outcome": "retry"}
    assert outbox.finish(claimed, "tok", "retry", record, next_due=0.0)
    attempts = client.get(f"/v1/jobs/{job_id}/webhooks").get_json()["attempts"]
    assert attempts == [record]


def test_a_job_without_a_webhook_is_not_watched(ctx):
    client, _, _, redis = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a"], "webhook": None}).get_json()["id"]
    assert redis.smembers(WEBHOOK_WATCH_KEY) == set()
    assert client.get(f"/v1/jobs/{job_id}/webhooks").get_json()["webhook"] is None


def test_v1_predict_takes_a_webhook_too(ctx):
    client, _, _, redis = ctx
    resp = client.post("/v1/predict", json={"texts": ["a"], "webhook": HOOK})
    assert resp.status_code == 504  # no worker here; the job is still told when it ends
    assert redis.smembers(WEBHOOK_WATCH_KEY) == {resp.get_json()["id"].encode()}


@pytest.mark.parametrize(("hook", "field"), [
    (PUBLIC, "webhook"),
    ({"url": PUBLIC}, "webhook.events"),
    ({"url": PUBLIC, "events": []}, "webhook.events"),
    ({"url": PUBLIC, "events": ["job.done"]}, "webhook.events[0]"),
    ({"url": PUBLIC, "events": ["job.completed"], "x": 1}, "webhook"),
    ({"url": "http://93.184.216.34/", "events": ["job.completed"]}, "webhook.url"),
    ({"url": "https://127.0.0.1/secret-path", "events": ["job.completed"]}, "webhook.url"),
    ({"url": "https://169.254.169.254/latest/meta-data/", "events": ["job.completed"]},
     "webhook.url"),
    ({"url": "https://10.0.0.7/", "events": ["job.completed"]}, "webhook.url"),
    ({"url": "file:///etc/passwd", "events": ["job.completed"]}, "webhook.url"),
])
def test_a_refused_webhook_is_422_naming_the_field_and_no_job(ctx, hook, field):
    client, store, _, redis = ctx
    resp = client.post("/v1/jobs", json={"texts": ["a"], "webhook": hook})
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()
    assert (body["error"], body["field"]) == ("invalid_request", field)
    assert "secret-path" not in body["message"] and "meta-data" not in body["message"]
    assert redis.smembers(WEBHOOK_WATCH_KEY) == set()


def test_an_upload_names_the_webhook_form_field(ctx):
    client, _, _, redis = ctx
    resp = client.post("/v1/jobs", data={"file": (b"text\nhello\n", "in.csv"),
                                          "webhook": '{"url": "https://10.1.1.1/", '
                                                     '"events": ["job.completed"]}'},
                       content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["field"] == "webhook.url"
    assert redis.smembers(WEBHOOK_WATCH_KEY) == set()


def test_the_metrics_show_the_webhook_figures(ctx):
    client = ctx[0]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'spamq_webhook_deliveries_total{outcome="delivered"} 0.0' in text
    assert "spamq_webhook_oldest_undelivered_age_seconds 0.0" in text


SURROGATE = {"url": "https://93.184.216.34/h\ud800", "events": ["job.completed"]}


def _upload(hook):
    return {"file": (b"text\nhello\n", "in.csv"), "webhook": json.dumps(hook)}


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/jobs", {"texts": ["a"], "webhook": SURROGATE}),
    ("/v1/predict", {"texts": ["a"], "webhook": SURROGATE}),
    ("/v1/jobs", {"hdfs_input": "in/x.csv", "hdfs_output": "out/x", "webhook": SURROGATE}),
    ("/v1/jobs", None),  # an upload, the webhook a JSON form field
])
def test_a_lone_surrogate_in_the_url_is_422_before_any_job(ctx, path, body):
    client, store, _, redis = ctx
    key = {"Idempotency-Key": "k-surrogate"}
    if body is None:
        resp = client.post(path, data=_upload(SURROGATE), headers=key,
                           content_type="multipart/form-data")
    else:
        resp = client.post(path, json=body, headers=key)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["field"] == "webhook.url"
    assert store.jobs.job_for_key("k-surrogate") is None  # the key is not burnt
    assert redis.smembers(WEBHOOK_WATCH_KEY) == set()
    ok = client.post("/v1/jobs", json={"texts": ["a"], "webhook": HOOK}, headers=key)
    assert ok.status_code == 202, ok.get_json()


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/predict"])
def test_a_key_without_a_signing_secret_is_422_naming_webhook(path):
    settings = Settings(max_texts_per_request=10, chunk_size=4,
                        webhook_secrets=json.dumps({"0123456789abcdef": {"current": "whsec_x"}}))
    redis = fakeredis.FakeRedis()
    store = JobStore(redis, ttl_s=600)
    client = create_app(settings, store=store, send_task=RecordingSender()).test_client()
    resp = client.post(path, json={"texts": ["a"], "webhook": HOOK},
                       headers={"Idempotency-Key": "k1"})
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()
    assert (body["error"], body["field"]) == ("invalid_request", "webhook")
    assert "signing secret" in body["message"]
    assert store.jobs.job_for_key("k1") is None and redis.smembers(WEBHOOK_WATCH_KEY) == set()
    assert not redis.keys("spamq:job:*")
    upload = client.post("/v1/jobs", data=_upload(HOOK), content_type="multipart/form-data")
    assert upload.status_code == 422 and upload.get_json()["field"] == "webhook"
    assert client.post("/v1/jobs", json={"texts": ["a"]}).status_code == 202  # no webhook: fine


def test_a_failed_subscription_fails_the_new_job_and_frees_its_key(ctx, monkeypatch):
    """Anything failing between the job's creation and the answer: the job is not left to run
    and the Idempotency-Key makes a new job next time."""
    client, store, outbox, redis = ctx

    def down(*args, **kwargs):
        raise redis_lib.ConnectionError("redis went away")

    monkeypatch.setattr(Outbox, "subscribe", down)
    resp = client.post("/v1/jobs", json={"texts": ["a"], "webhook": HOOK},
                       headers={"Idempotency-Key": "k2"})
    assert resp.status_code >= 500
    assert store.jobs.job_for_key("k2") is None
    [job_key] = [k for k in redis.keys("spamq:job:*") if k.count(b":") == 2]
    assert store.jobs.get(job_key.decode().rsplit(":", 1)[1]).status == "failed"
    monkeypatch.undo()
    again = client.post("/v1/jobs", json={"texts": ["a"], "webhook": HOOK},
                        headers={"Idempotency-Key": "k2"})
    assert again.status_code == 202 and not again.get_json().get("existing")
