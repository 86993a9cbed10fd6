"""The hostile-client findings of the hardening issue, in-process (fakeredis, no worker)."""

import io
import json
import os

import redis

from api import JobIdConverter
from api.auth import hash_key, key_id
from tests.helpers.api import RecordingSender, make_api

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40
HOSTILE_IDS = ["HOSTILE", "x:results", "%s:results", "%s:texts", "../HOSTILE", "A" * 32,
               "%s%%00", "0" * 31, "0" * 33]


def _app(tmp_path=None, **overrides):
    base = dict(auth_required=True, api_keys=f"{hash_key(ALICE)},{hash_key(BOB)}",
                chunk_size=4, max_texts_per_request=10, max_chars_per_text=50,
                bulk_window_chunks=2, artifact_dir=tmp_path or "/nonexistent")
    sender = RecordingSender()
    client, store = make_api(sender, **{**base, **overrides})
    return client, store, sender


def as_(key):
    return {"X-API-Key": key}


def snapshot(r) -> dict:
    return {k: r.dump(k) for k in sorted(r.keys("*")) if not k.startswith(b"spamq:rate:")}


def test_every_route_with_a_job_id_checks_its_form_before_any_redis_call():
    client, _, _ = _app()
    with_id = [r for r in client.application.url_map.iter_rules() if "job_id" in r.arguments]
    assert len(with_id) >= 4
    for rule in with_id:
        assert isinstance(rule._converters["job_id"], JobIdConverter), rule.rule


def test_another_keys_job_cannot_be_written_read_or_told_apart_from_an_unknown_one():
    client, store, _ = _app()
    job_id = client.post("/v1/jobs", json={"texts": ["a", "b", "c", "d", "e"]},
                         headers=as_(ALICE)).get_json()["id"]
    store.results.store_chunk_next(job_id, 0, [{"label": "ham"}] * 4, model_version="v")
    before = snapshot(store.redis)
    unknown = client.get(f"/v1/jobs/{'f' * 32}", headers=as_(BOB))
    for hostile in HOSTILE_IDS + [job_id]:
        ident = hostile % job_id if "%s" in hostile else hostile
        for method, suffix in (("delete", ""), ("get", ""), ("get", "/results"),
                               ("get", "/rejected"), ("get", "/results?format=csv")):
            resp = getattr(client, method)(f"/v1/jobs/{ident}{suffix}", headers=as_(BOB))
            assert resp.status_code == 404, (method, ident, suffix, resp.status_code)
            assert resp.get_json()["error"] == "not_found"
            assert job_id not in resp.get_data(as_text=True)
    assert snapshot(store.redis) == before  # nothing written: no status, no counter
    assert unknown.status_code == 404
    owner_view = client.get(f"/v1/jobs/{job_id}", headers=as_(ALICE))
    assert owner_view.status_code == 200 and owner_view.get_json()["status"] == "running"
    for key in store.redis.keys("*"):
        assert b"HOSTILE" not in key and b":results:" not in key


def test_idempotency_keys_are_hashed_checked_against_the_body_and_scoped_per_key():
    client, store, _ = _app()
    h = {**as_(ALICE), "Idempotency-Key": "HOSTILE:key"}
    first = client.post("/v1/jobs", json={"texts": ["a", "b"]}, headers=h)
    assert first.status_code == 202
    same = client.post("/v1/jobs", json={"texts": ["a", "b"]}, headers=h)
    assert same.status_code == 200 and same.get_json()["id"] == first.get_json()["id"]
    other_body = client.post("/v1/jobs", json={"texts": ["a", "c"]}, headers=h)
    assert other_body.status_code == 422 and other_body.get_json()["field"] == "Idempotency-Key"
    bobs = client.post("/v1/jobs", json={"texts": ["a", "b"]},
                       headers={**as_(BOB), "Idempotency-Key": "HOSTILE:key"})
    assert bobs.status_code == 202 and bobs.get_json()["id"] != first.get_json()["id"]
    assert not [k for k in store.redis.keys("*") if b"HOSTILE" in k]


def test_a_failed_submission_frees_its_idempotency_key(monkeypatch):
    client, store, _ = _app()
    h = {**as_(ALICE), "Idempotency-Key": "k-1"}
    bad = client.post("/v1/jobs", data=b'{"texts": ["\\ud800"]}', headers=h,
                      content_type="application/json")
    assert bad.status_code == 422 and bad.get_json()["field"] == "texts[0]"
    real_execute = store.redis.pipeline().__class__.execute
    calls = []

    def failing(self, *a, **k):  # Redis refuses the job's write (a MULTI pipeline) once
        if self.transaction and not calls:
            calls.append(1)
            raise redis.ConnectionError("redis went away")
        return real_execute(self, *a, **k)

    monkeypatch.setattr(store.redis.pipeline().__class__, "execute", failing)
    down = client.post("/v1/jobs", json={"texts": ["fine"]}, headers=h)
    assert down.status_code == 503 and calls
    again = client.post("/v1/jobs", json={"texts": ["fine"]}, headers=h)
    assert again.status_code == 202, again.get_json()  # not "no job" for 24 h


def test_a_cancelled_or_expired_job_resumes_under_its_key():
    client, store, sender = _app()
    h = {**as_(ALICE), "Idempotency-Key": "resume-me"}
    body = {"texts": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}
    job_id = client.post("/v1/jobs", json=body, headers=h).get_json()["id"]
    assert [s[1][1] for s in sender.sent] == [0, 1]  # a window of 2 chunks of 3
    store.results.store_chunk_next(job_id, 0, [{"label": "ham"}] * 4, model_version="v")
    assert client.delete(f"/v1/jobs/{job_id}", headers=as_(ALICE)).status_code == 200
    sender.sent.clear()
    again = client.post("/v1/jobs", json=body, headers=h)
    assert again.status_code == 200 and again.get_json()["id"] == job_id
    assert store.jobs.get(job_id).status == "running"
    assert sorted(s[1][1] for s in sender.sent) == [1, 2]  # chunk 1 again, then the window
    store.jobs.expire(job_id)
    sender.sent.clear()
    assert client.post("/v1/jobs", json=body, headers=h).status_code == 200
    assert store.jobs.get(job_id).status == "running" and store.jobs.get(job_id).deadline is None


def test_one_413_message_whatever_the_transfer():
    client, _, _ = _app(max_body_bytes=2048, max_chars_per_text=5000)
    big = json.dumps({"texts": ["x" * 3000]}).encode()
    sized = client.post("/v1/jobs", data=big, headers=as_(ALICE),
                        content_type="application/json")
    chunked = client.post("/v1/jobs", input_stream=io.BytesIO(big), headers={
        **as_(ALICE), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True})  # as gunicorn sets it for chunked bodies
    exact = json.dumps({"texts": ["x" * (2048 - 15)]}).encode()
    assert len(exact) == 2048
    assert client.post("/v1/jobs", input_stream=io.BytesIO(exact), headers={
        **as_(ALICE), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True}).status_code == 202  # at it: fine
    assert sized.status_code == chunked.status_code == 413
    assert sized.get_json()["message"] == chunked.get_json()["message"]
    assert "2048 bytes" in sized.get_json()["message"]


def test_a_keys_backlog_is_capped_and_the_cap_is_per_key():
    client, store, _ = _app(max_pending_rows_per_key=12, max_texts_per_request=10)
    for _ in range(2):
        assert client.post("/v1/jobs", json={"texts": ["a"] * 6},
                           headers=as_(ALICE)).status_code == 202
    over = client.post("/v1/predict", json={"texts": ["hi"]}, headers=as_(ALICE))
    assert over.status_code == 429 and over.get_json()["error"] == "over_quota"
    assert "Retry-After" in over.headers
    assert client.post("/v1/jobs", json={"texts": ["b"]}, headers=as_(BOB)).status_code == 202
    for job_id in store.jobs.active():  # ended jobs stop counting
        store.jobs.cancel(job_id)
    assert client.post("/v1/jobs", json={"texts": ["a"]}, headers=as_(ALICE)).status_code == 202


def test_a_full_bulk_queue_does_not_close_the_synchronous_endpoints():
    client, store, _ = _app(max_queue_depth=3, predict_timeout_s=0.05, queue_share_floor=1,
                            bulk_window_per_key=4)
    for _ in range(2):  # Alice's 4 chunks queued (her key's window): her share is full
        assert client.post("/v1/jobs", json={"texts": ["a"] * 8},
                           headers=as_(ALICE)).status_code == 202
    for _ in range(3):
        store.redis.lpush("spamq.bulk", b"{}")
    assert client.post("/v1/jobs", json={"texts": ["a"]}, headers=as_(ALICE)).status_code == 429
    resp = client.post("/v1/predict", json={"texts": ["a"]}, headers=as_(ALICE))
    assert resp.status_code == 504  # admitted (no worker here to answer it in time)


def test_a_running_job_without_progress_shows_stalled_and_no_eta():
    client, store, _ = _app(stalled_after_s=5)
    job_id = client.post("/v1/jobs", json={"texts": list("abcdefgh")},
                         headers=as_(ALICE)).get_json()["id"]
    store.results.store_chunk_next(job_id, 0, [{"label": "ham"}] * 4, model_version="v")
    view = client.get(f"/v1/jobs/{job_id}", headers=as_(ALICE)).get_json()
    assert view["status"] == "running" and view["rate"]["eta_s"] is not None
    store.redis.hset(f"spamq:job:{job_id}", "progress_at", repr(1.0))  # long ago
    view = client.get(f"/v1/jobs/{job_id}", headers=as_(ALICE)).get_json()
    assert view["status"] == "stalled" and view["stalled_for_s"] > 5
    assert view["rate"]["eta_s"] is None


def test_metrics_need_the_operator_credential_not_an_api_key():
    client, _, _ = _app(metrics_token="op-token")
    assert client.get("/metrics", headers=as_(ALICE)).status_code == 403
    assert client.get("/metrics").status_code == 403
    ok = client.get("/metrics", headers={"Authorization": "Bearer op-token"})
    assert ok.status_code == 200 and b"spamq_jobs_total" in ok.data
    closed, _, _ = _app()
    assert closed.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403


def test_store_jobs_stay_in_the_keys_area_and_never_echo_the_store(tmp_path):
    client, _, _ = _app(tmp_path)
    home = tmp_path / "tenants" / key_id(hash_key(ALICE))
    (home / "in").mkdir(parents=True)
    (home / "in" / "ok.csv").write_text("text\nhello\n")
    os.symlink("/etc/passwd", home / "in" / "passwd.csv")
    os.symlink("/tmp", home / "out-link")
    rel = f"tenants/{key_id(hash_key(ALICE))}"

    def post(body, key=ALICE):
        return client.post("/v1/jobs", json=body, headers=as_(key))

    cases = [
        ({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/out/a"}, BOB, 403),
        ({"hdfs_input": f"{rel}/in/passwd.csv", "hdfs_output": f"{rel}/out/b"}, ALICE, 422),
        ({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/out-link/x"}, ALICE, 422),
        ({"hdfs_input": f"{rel}/in/{'a' * 300}.csv", "hdfs_output": f"{rel}/o"}, ALICE, 422),
        ({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/o\u0000x"}, ALICE, 422),
        ({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/in/ok.csv/x"}, ALICE, 422),
        ({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/o", "HOSTILE": 1}, ALICE, 422),
    ]
    for body, key, status in cases:
        resp = post(body, key)
        text = resp.get_data(as_text=True)
        assert resp.status_code == status, (body, text)
        assert "root:" not in text and str(tmp_path) not in text and "HOSTILE" not in text
    assert not list((tmp_path / "tenants").rglob("part-*"))
    ok = post({"hdfs_input": f"{rel}/in/ok.csv", "hdfs_output": f"{rel}/out/ok",
               "deadline_s": 60})
    assert ok.status_code == 202, ok.get_json()
