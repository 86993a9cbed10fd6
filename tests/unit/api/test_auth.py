"""API keys, per-key rate limits, job ownership, backpressure and deadlines (in-process)."""

import secrets
import time

import fakeredis
import pytest

from api import create_app
from api.auth import KeyRing, hash_key, key_id, parse_key_list
from spamq.jobs.store import JobStore
from spamq.secrets.sources import SecretError
from spamq.settings import Settings

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40


def _app(**overrides):
    base = dict(auth_required=True, api_keys=f"{ALICE},{hash_key(BOB)}", chunk_size=4,
                max_texts_per_request=10, max_chars_per_text=50)
    settings = Settings(**{**base, **overrides})
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    sent = []
    app = create_app(
        settings, store=store, send_task=lambda name, *, args, queue, **_: sent.append(args)
    )
    return app.test_client(), store, sent


def test_every_endpoint_but_health_page_and_openapi_needs_a_key():
    client, _, _ = _app()
    for path in ("/healthz", "/", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/readyz").status_code == 503  # public, just not ready (no worker)
    for method, path in (("post", "/v1/jobs"), ("get", "/v1/jobs/" + "0" * 32),
                         ("post", "/v1/predict"), ("get", "/predict"),
                         ("get", f"/v1/jobs/{'0' * 32}/results"),
                         ("delete", f"/v1/jobs/{'0' * 32}")):
        resp = getattr(client, method)(path, json={"texts": ["hi"]})
        assert resp.status_code == 401, (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    bad = client.post("/v1/jobs", json={"texts": ["hi"]}, headers={"X-API-Key": "nope"})
    assert bad.status_code == 401 and "nope" not in bad.get_data(as_text=True)


def test_both_header_forms_work_and_a_key_sees_only_its_own_jobs():
    client, store, _ = _app()
    created = client.post("/v1/jobs", json={"texts": ["hi"]}, headers={"X-API-Key": ALICE})
    assert created.status_code == 202
    url = created.get_json()["status_url"]
    assert store.jobs.get(created.get_json()["id"]).owner == key_id(hash_key(ALICE))
    assert client.get(url, headers={"Authorization": f"Bearer {ALICE}"}).status_code == 200
    for path in (url, url + "/results", url + "/rejected"):
        assert client.get(path, headers={"X-API-Key": BOB}).status_code == 404
    assert client.delete(url, headers={"X-API-Key": BOB}).status_code == 404
    assert store.jobs.status(created.get_json()["id"]) == "queued"
    # the same Idempotency-Key from another key is another job
    first = client.post("/v1/jobs", json={"texts": ["x"]},
                        headers={"X-API-Key": ALICE, "Idempotency-Key": "k1"}).get_json()
    other = client.post("/v1/jobs", json={"texts": ["x"]},
                        headers={"X-API-Key": BOB, "Idempotency-Key": "k1"}).get_json()
    assert first["id"] != other["id"]


def test_keys_are_held_hashed_and_reread_and_kept_while_the_source_fails():
    now = [0.0]
    answers = [f"{hash_key('k2')}", SecretError("vault down")]

    def read():
        value = answers.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    ring = KeyRing(parse_key_list(["k1"]), read=read, refresh_s=5, clock=lambda: now[0])
    assert ring.identify("k1") == key_id(hash_key("k1")) and ring.identify("k2") is None
    now[0] = 6  # re-read: k1 revoked, k2 issued
    assert ring.identify("k1") is None and ring.identify("k2")
    now[0] = 12  # source down: the held keys stay
    assert ring.identify("k2")
    assert all(h.startswith("sha256:") and "k1" not in h for h in parse_key_list(["k1"]))


def test_rate_limit_is_a_token_bucket_per_key():
    client, _, _ = _app(rate_limit_per_s=0.5, rate_limit_burst=3)
    codes = [client.get("/v1/jobs/" + "0" * 32, headers={"X-API-Key": ALICE}).status_code
             for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    limited = client.get("/v1/jobs/" + "0" * 32, headers={"X-API-Key": ALICE})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/v1/jobs/" + "0" * 32, headers={"X-API-Key": BOB}).status_code == 404


def test_full_queue_answers_429_with_retry_after():
    client, store, _ = _app(max_queue_depth=3, queue_share_floor=1)
    for _ in range(3):  # Alice holds the whole share of a full queue
        assert client.post("/v1/jobs", json={"texts": ["hi"]},
                           headers={"X-API-Key": ALICE}).status_code == 202
    store.redis.rpush("spamq.bulk", "m1", "m2")
    store.redis.rpush("spamq.interactive", "m3")
    resp = client.post("/v1/jobs", json={"texts": ["hi"]}, headers={"X-API-Key": ALICE})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    store.redis.delete("spamq.bulk")
    assert client.post("/v1/jobs", json={"texts": ["hi"]},
                       headers={"X-API-Key": ALICE}).status_code == 202


@pytest.mark.parametrize("bad", [0, -1, "soon", True, None, 1e12, float("nan")])
def test_deadline_must_be_a_positive_bounded_number(bad):
    client, _, _ = _app(auth_required=False)
    resp = client.post("/v1/jobs", json={"texts": ["hi"], "deadline_s": bad})
    assert resp.status_code in (400, 422) and resp.get_json()["field"] in ("deadline_s", None)


def test_deadline_is_stored_on_the_job():
    client, store, _ = _app(auth_required=False)
    body = client.post("/v1/jobs", json={"texts": ["hi"], "deadline_s": 30}).get_json()
    assert time.time() + 25 < store.jobs.get(body["id"]).deadline < time.time() + 31


def test_job_ids_are_128_random_bits():
    _, store, _ = _app()
    ids = {store.jobs.create(["x"], chunk_size=4, queue="q")[0].id for _ in range(200)}
    assert len(ids) == 200 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert secrets.token_hex(16) not in ids
