"""The API in-process: fakeredis job store, a recording task sender, no worker."""

import threading
import time

import fakeredis
import pytest

from api import create_app
from api.openapi import openapi_path
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from tests.helpers.api import RecordingSender, make_api


@pytest.fixture
def ctx():
    sender = RecordingSender()
    client, store = make_api(sender, max_texts_per_request=10, max_chars_per_text=50,
                             chunk_size=4, predict_timeout_s=0.2)
    return client, store, sender


def test_post_job_queues_one_task_per_chunk(ctx):
    client, store, sender = ctx
    resp = client.post("/v1/jobs", json={"texts": ["a", "b", "c", "d", "e"]})
    assert resp.status_code == 202
    body = resp.get_json()
    assert resp.headers["Location"] == body["status_url"] == f"/v1/jobs/{body['id']}"
    assert [s[1][1:] for s in sender.sent] == [[0, 0, 4], [1, 4, 5]]
    assert all(s[1][0] == body["id"] and s[0] == "spamq.score_chunk" for s in sender.sent)
    assert sender.sent[0][2] == "spamq.bulk"  # more than a chunk: the bulk queue
    job = client.get(body["status_url"]).get_json()
    assert job["status"] == "queued" and job["progress"] == {"done": 0, "total": 5}
    assert "results" not in job


def test_small_jobs_go_to_the_interactive_queue(ctx):
    client, _, sender = ctx
    assert client.post("/v1/jobs", json={"texts": ["a"]}).status_code == 202
    assert sender.sent[0][2] == "spamq.interactive"


def test_done_job_shows_results(ctx):
    client, store, _ = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a", "b"]}).get_json()["id"]
    rows = [{"label": "ham", "spam_probability": 0.1, "truncated": False, "model_version": "v"},
            {"label": "spam", "spam_probability": 0.9, "truncated": False, "model_version": "v"}]
    store.results.store_chunk_next(job_id, 0, rows, model_version="v")
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "done" and job["results"] == rows and job["model_version"] == "v"
    assert job["progress"] == {"done": 2, "total": 2}
    assert job["finished_at"].endswith("+00:00")


def test_unknown_job_is_404(ctx):
    client, _, _ = ctx
    resp = client.get("/v1/jobs/" + "f" * 32)
    assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "texts"),
        ({"texts": "hello"}, 422, "texts"),
        ({"texts": []}, 422, "texts"),
        ({"texts": ["ok", 3]}, 422, "texts[1]"),
        ({"texts": ["ok", None]}, 422, "texts[1]"),
        ({"texts": ["ok", "   "]}, 422, "texts[1]"),
        ({"texts": ["x" * 51]}, 413, "texts[0]"),
        ({"texts": ["a"] * 11}, 413, "texts"),
        ({"texts": ["a\x00b"]}, 422, "texts[0]"),
        (["a", "b"], 400, None),
        ("just a string", 400, None),
    ],
)
def test_invalid_bodies_name_the_field(ctx, body, status, field):
    client, _, sender = ctx
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == status
    assert resp.get_json()["field"] == field
    assert sender.sent == []


def test_malformed_json_is_400(ctx):
    client, _, _ = ctx
    for data in (b"{not json", b"", b"\xff\xfe"):
        resp = client.post("/v1/jobs", data=data, content_type="application/json")
        assert resp.status_code == 400, data
        assert "JSON" in resp.get_json()["message"]


def test_legacy_predict_validates_the_text_field(ctx):
    client, _, _ = ctx
    resp = client.open("/predict", method="GET", json={"texts": ["wrong field"]})
    assert resp.status_code == 422 and resp.get_json()["field"] == "text"


def test_sync_predict_times_out_with_504_and_the_job_to_poll(ctx):
    client, _, _ = ctx
    resp = client.post("/v1/predict", json={"texts": ["nobody scores this"]})
    assert resp.status_code == 504
    body = resp.get_json()
    assert body["error"] == "timeout" and resp.headers["Location"] == body["status_url"]


def test_health_and_readiness(ctx):
    client, store, _ = ctx
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503
    store.workers.beat("w", {"name": "w", "model_version": "v1", "at": time.time()}, ttl_s=5)
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"ready": True, "status": "ready", "workers": 1}


def test_redis_down_is_503_not_500():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2)
    client = create_app(settings, send_task=RecordingSender()).test_client()
    resp = client.post("/v1/jobs", json={"texts": ["a"]})
    assert resp.status_code == 503
    assert client.get("/readyz").status_code == 503


def test_api_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, api, api.wsgi; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_page_and_openapi_document_are_served(ctx):
    client, _, _ = ctx
    page = client.get("/")
    assert page.status_code == 200 and b"<title>spamq" in page.data
    assert b'name="flower-url" content="http://127.0.0.1:5555"' in page.data
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    rules = {openapi_path(r) for r in client.application.url_map.iter_rules()}
    documented = set(doc["paths"])
    assert documented <= rules
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/predict", "/predict"} <= documented
    limits = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    schemas = doc["components"]["schemas"]
    texts_body, store_body = (schemas[ref["$ref"].rsplit("/", 1)[1]]
                              for ref in limits["schema"]["oneOf"])
    assert texts_body["properties"]["texts"]["maxItems"] == 10
    assert store_body["required"] == ["hdfs_input", "hdfs_output"]


def test_metrics_report_requests_jobs_queues_and_workers(ctx):
    import json as _json

    client, store, _ = ctx
    store.redis.lpush("spamq.bulk", _json.dumps({"headers": {"spamq_enqueued_at": 1.0}}))
    client.post("/v1/jobs", json={"texts": ["a", "b"]})
    client.post("/v1/jobs", json={"texts": []})
    store.workers.beat("w1", {"name": "w1", "model_version": "v9", "device": "cpu",
                      "precision": "int8", "at": time.time() - 1.5}, ttl_s=5)
    store.redis.set("spamq:lease:" + "a" * 32 + ":3", "w1|t1")
    store.redis.set("spamq:lease:" + "a" * 32 + ":4", "w1|t2")
    store.redis.set("spamq:lease:" + "b" * 32 + ":0", "gone:7|t3")
    store.workers.set_batch_stats("w1", {"batches": 4, "rows": 40, "max_rows": 16,
                                         "mean_rows": 10.0, "fill": 0.8}, ttl_s=5)
    text = client.get("/metrics").get_data(as_text=True)
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line and not line.startswith("#")}
    assert lines['spamq_http_requests_total{endpoint="/v1/jobs",method="POST",status="202"}'] == 1
    assert lines['spamq_http_requests_total{endpoint="/v1/jobs",method="POST",status="422"}'] == 1
    assert lines['spamq_http_request_seconds_count{endpoint="/v1/jobs"}'] == 2
    assert lines['spamq_jobs_total{event="submitted"}'] == 1
    assert lines["spamq_jobs_in_flight"] == 1
    assert lines['spamq_queue_depth{queue="spamq.bulk"}'] == 1
    assert lines['spamq_queue_oldest_age_seconds{queue="spamq.bulk"}'] > 1e9  # since 1970
    assert lines['spamq_queue_oldest_age_seconds{queue="spamq.interactive"}'] == 0
    key = 'spamq_worker_model{device="cpu",model_version="v9",precision="int8",worker="w1"}'
    assert lines[key] == 1
    assert lines['spamq_worker_items_total{worker="w1"}'] == 40
    assert lines['spamq_worker_batch_fill{worker="w1"}'] == 0.8
    assert 1.5 <= lines['spamq_worker_heartbeat_age_seconds{worker="w1"}'] < 60
    assert lines['spamq_worker_leases{worker="w1"}'] == 2
    assert lines['spamq_worker_leases{worker="gone:7"}'] == 1
    assert lines["spamq_redis_up"] == 1


class GatedSender(RecordingSender):
    """Holds its first publish until ``release`` is set, as a slow broker would."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def __call__(self, name, *, args, queue, headers=None):
        if not self.sent:
            self.release.wait(5)
        super().__call__(name, args=args, queue=queue, headers=headers)


def test_single_text_jobs_posted_during_a_publish_share_one_group_message():
    settings = Settings(chunk_size=4)
    sender = GatedSender()
    app = create_app(settings, store=JobStore(fakeredis.FakeRedis(), ttl_s=600),
                     send_task=sender)
    ids: list[str] = []

    def post(text):
        ids.append(app.test_client().post("/v1/jobs", json={"texts": [text]}).get_json()["id"])

    first = threading.Thread(target=post, args=("first",))
    first.start()
    time.sleep(0.2)  # the first publish is in flight
    rest = [threading.Thread(target=post, args=(f"t{i}",)) for i in range(5)]
    for t in rest:
        t.start()
    time.sleep(0.3)  # all five wait behind it
    sender.release.set()
    for t in [first, *rest]:
        t.join(5)
    assert len(ids) == 6 and len(set(ids)) == 6
    (name1, args1, _), (name2, args2, queue2) = sender.sent
    # the lone first one: a group of one (group tasks send no Celery task events)
    assert name1 == "spamq.score_group" and len(args1[0]) == 1 and args1[0][0][1:] == [0, 0, 1]
    args1 = args1[0][0]
    assert name2 == "spamq.score_group" and queue2 == "spamq.interactive"
    assert sorted(item[0] for item in args2[0]) == sorted(i for i in ids if i != args1[0])
    assert all(item[1:] == [0, 0, 1] for item in args2[0])
