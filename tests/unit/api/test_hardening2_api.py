"""Uploads' lifecycle and quota, defensive part reading, security headers, a bare /readyz and
no echo of a malformed key header: the API in-process (fakeredis, a local store)."""

from __future__ import annotations

import io
import time

import pytest

from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from spamq.storage.uploads import DUE_KEY, JOB_KEY, Upload, Uploads
from tests.helpers.api import RecordingSender, make_api, scored_upload

CSV = "id,body\n1,hello there\n2,win a prize now\n"


@pytest.fixture
def ctx(tmp_path):
    client, store = make_api(max_texts_per_request=10, chunk_size=4, max_texts_per_job=100,
                             artifact_dir=tmp_path, max_upload_bytes_per_key=2 * len(CSV) + 10,
                             job_ttl_s=600)
    return client, store, tmp_path


def upload(client, content=CSV, **form):
    data = {"file": (io.BytesIO(content.encode()), "in.csv"), "column": "body", **form}
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data")


def stored_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def held(store) -> int:
    return int(store.redis.hget("spamq:uploads:bytes:-", "total") or 0)


def test_a_refused_upload_leaves_nothing_in_the_store(ctx):
    client, store, root = ctx
    resp = upload(client, column="nope")  # refused after the file was stored: no such column
    assert resp.status_code == 422 and resp.get_json()["field"] == "column"
    assert stored_files(root) == [] and held(store) == 0
    assert store.redis.zcard(DUE_KEY) == 0


def test_an_accepted_upload_is_kept_and_recorded_with_its_job(ctx):
    client, store, root = ctx
    resp = upload(client)
    assert resp.status_code == 202
    files = stored_files(root)
    assert len(files) == 1 and files[0].startswith("uploads/") and files[0].endswith("input.csv")
    assert held(store) == len(CSV)
    token = files[0].split("/")[1]
    assert store.redis.hget(JOB_KEY, f"-/{token}").decode() == resp.get_json()["id"]


def test_uploads_past_the_key_quota_are_413_naming_file_and_leave_nothing(ctx):
    client, store, root = ctx
    assert upload(client).status_code == 202
    assert upload(client).status_code == 202
    before = stored_files(root)
    resp = upload(client)  # a third one passes 2 * len(CSV) + 10 bytes
    assert resp.status_code == 413
    body = resp.get_json()
    assert body["field"] == "file" and "uploads" in body["message"]
    assert stored_files(root) == before and held(store) == 2 * len(CSV)


def test_an_idempotent_resubmission_keeps_no_second_copy(ctx, monkeypatch):
    client, store, root = ctx

    def send():
        return client.post("/v1/jobs", data={"file": (io.BytesIO(CSV.encode()), "in.csv"),
                                             "column": "body"},
                           content_type="multipart/form-data", headers={"Idempotency-Key": "k1"})

    first = send()
    assert first.status_code == 202
    # two submissions at once: the second passes the first look and loses at the job's creation
    monkeypatch.setattr(store.jobs, "job_for_key", lambda *a, **k: None)
    again = send()
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert len(stored_files(root)) == 1 and held(store) == len(CSV)


def test_the_sweep_deletes_uploads_whose_job_is_gone_and_frees_their_bytes(ctx):
    client, store, root = ctx
    kept = upload(client).get_json()["id"]
    gone = upload(client).get_json()["id"]
    uploads = Uploads(store.redis, LocalArtifactStore(root), tenant_root="tenants",
                      quota_bytes=10**6, ttl_s=600)
    assert uploads.sweep(time.time() + 10) == 0  # nothing due yet
    store.redis.delete(*store.redis.keys(f"spamq:job:{gone}*"))  # the job expired
    later = time.time() + 601
    assert uploads.sweep(later) == 1
    files = stored_files(root)
    assert len(files) == 1
    token = files[0].split("/")[1]
    assert store.redis.hget(JOB_KEY, f"-/{token}").decode() == kept
    assert held(store) == len(CSV)
    # the kept job's upload is looked at again when its keys are due to expire, not before
    assert store.redis.zscore(DUE_KEY, f"-/{token}") > later
    assert upload(client).status_code == 202  # room again


def test_an_upload_never_recorded_with_a_job_is_deleted_after_the_retention(ctx, tmp_path):
    _, store, root = ctx
    uploads = Uploads(store.redis, LocalArtifactStore(root), tenant_root="tenants",
                      quota_bytes=10**6, ttl_s=600)
    orphan = Upload.of("0123456789abcdef", "00" * 8)
    uploads.reserve(orphan, 5)  # the API died before its job was made
    (root / "tenants/0123456789abcdef/uploads/" / ("00" * 8)).mkdir(parents=True)
    (root / "tenants/0123456789abcdef/uploads/" / ("00" * 8) / "input.csv").write_text("x")
    assert uploads.sweep(time.time() + 10) == 0
    assert uploads.sweep(time.time() + 601) == 1
    assert stored_files(root) == [] and uploads.held_bytes("0123456789abcdef") == 0


def test_upload_names_are_checked_before_any_path_is_made():
    for owner, token in (("../x", "00" * 8), ("0123456789abcdef", "../../etc"),
                         ("0123456789ABCDEF", "00" * 8)):
        with pytest.raises(ValueError):
            Upload(owner, token)
    with pytest.raises(ValueError):
        Upload.parse("a/b/c")


# --- a store job's parts, changed after they were written ---------------------------------


@pytest.fixture
def done_upload(tmp_path):
    """A scored upload job (two splits' worth of rows in one part) and its part file."""

    sender = RecordingSender()
    client, store = make_api(sender, max_texts_per_request=10, chunk_size=4,
                             max_texts_per_job=100, results_page_max=5, artifact_dir=tmp_path)
    job = scored_upload(client, store, sender, "in.csv", CSV, column="body")
    assert job["status"] == "done" and job["progress"]["total"] == 2, job
    parts = sorted(p for p in tmp_path.rglob("part-*") if "_rejected" not in str(p))
    assert len(parts) == 1
    return client, job, parts[0]


TAMPERED = {
    "not_json": b"this is not json\n",
    "not_utf8": b'{"row": "\xff\xfe"}\n',
    "deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not_an_object": b"[1, 2]\n",
}


@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_a_changed_part_is_a_409_never_a_500(done_upload, kind):
    client, job, part = done_upload
    part.write_bytes(TAMPERED[kind] + part.read_bytes())
    page = client.get(job["results_url"] + "?limit=5")
    assert page.status_code == 409, page.get_data()
    assert page.get_json()["error"] == "output_changed"
    assert b"not json" not in page.get_data() and b"\xff" not in page.get_data()
    for fmt in ("jsonl", "csv"):
        download = client.get(job["results_url"] + f"?format={fmt}")
        assert download.status_code == 409 and download.get_json()["error"] == "output_changed"


def test_a_forged_row_past_the_committed_count_is_never_given(done_upload):
    client, job, part = done_upload
    lines = part.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    forged = b'{"row": 99, "label": "ham", "spam_probability": 0.0}\n'
    part.write_bytes(b"".join(lines) + forged)
    assert client.get(job["results_url"] + "?limit=1").status_code == 200  # the first row
    page = client.get(job["results_url"] + "?limit=5")
    assert page.status_code == 409 and b'"row": 99' not in page.get_data()
    download = client.get(job["results_url"] + "?format=jsonl")
    assert download.status_code == 409


def test_a_missing_or_short_part_is_a_409(done_upload):
    client, job, part = done_upload
    part.write_bytes(part.read_bytes().splitlines(keepends=True)[0])
    assert client.get(job["results_url"] + "?limit=5").status_code == 409
    part.unlink()
    assert client.get(job["results_url"] + "?limit=5").status_code == 409


def test_an_untouched_part_still_reads_whole(done_upload):
    client, job, _ = done_upload
    page = client.get(job["results_url"] + "?limit=5").get_json()
    assert len(page["results"]) == 2
    assert {r["label"] for r in page["results"]} <= {"ham", "spam"}
    lines = client.get(job["results_url"] + "?format=jsonl").get_data().splitlines()
    assert len(lines) == 2


# --- a malformed header is never echoed --------------------------------------------------


@pytest.mark.parametrize("line", [
    "X-API-Key spamq-secret-key-123",  # no colon: gunicorn quotes the whole line
    "Authorization: Bearer spamq-secret-key-123\x01",  # a control character in the value
    "X-API-Key spamq-secret-key-123: x",  # an invalid header name holding the key
])
def test_gunicorn_header_errors_never_carry_the_header(line):
    from gunicorn.http import errors as http_errors

    from api.gunicorn_workers import sanitized

    raws = {"X-API-Key spamq-secret-key-123": http_errors.InvalidHeader(line),
            "Authorization: Bearer spamq-secret-key-123\x01":
                http_errors.InvalidHeader("AUTHORIZATION"),
            "X-API-Key spamq-secret-key-123: x": http_errors.InvalidHeaderName(
                line.split(":")[0])}
    raw = raws[line]
    assert "spamq-secret" in str(raw) or "AUTHORIZATION" in str(raw)  # gunicorn's own text
    safe = sanitized(raw)
    assert isinstance(safe, http_errors.InvalidHeader)  # still a 400 from gunicorn
    assert "spamq-secret" not in str(safe) and "\x01" not in str(safe)
    assert str(safe).startswith("malformed")
    if line.startswith("Authorization"):
        assert str(safe) == "malformed header Authorization"
    if line == "X-API-Key spamq-secret-key-123":
        assert str(safe) == "malformed header X-API-Key"
    request_line = sanitized(http_errors.InvalidRequestLine("GET /?key=spamq-secret x"))
    assert "spamq-secret" not in str(request_line)


# --- the key ring reads Vault afresh --------------------------------------------------------


def test_the_key_ring_reads_the_key_list_past_the_secret_cache(monkeypatch):
    from api import _key_ring

    calls = []

    class Source:  # a Vault-like source: not EnvSecretSource
        def get(self, name, *, fresh=False):
            calls.append((name, fresh))
            return "key-one"

    class Secrets:
        source = Source()
        api_keys = frozenset({"key-one"})

    ring = _key_ring(Secrets(), Settings(api_keys_cache_s=0))
    assert ring.identify("key-one")
    assert calls and all(c == ("api_keys", True) for c in calls)
    assert Settings().api_keys_cache_s <= 2  # the most a revoked key still works, by default


# --- /readyz says ready or not, and a count ---------------------------------------------------


def test_readyz_counts_live_workers_only_and_names_none(tmp_path):
    client, store = make_api(worker_heartbeat_s=1)
    now = time.time()
    store.workers.beat("host-a:101", {"name": "host-a:101", "model_version": "v1", "at": now},
                       ttl_s=30)
    store.workers.beat("host-b:202", {"name": "host-b:202", "model_version": "v1", "at": now - 20},
                       ttl_s=30)  # killed: its heartbeat key not expired yet, its beats stopped
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"ready": True, "status": "ready", "workers": 1}
    assert b"host-" not in resp.get_data()
    store.workers.beat("host-c:303", {"name": "host-c:303", "model_version": "v1", "at": now - 15,
                              "heartbeat_s": 10}, ttl_s=30)  # slow beats, its own interval
    assert client.get("/readyz").get_json()["workers"] == 2
    store.redis.delete("spamq:worker:host-a:101", "spamq:worker:host-c:303")
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["workers"] == 0
    assert b"host-" not in resp.get_data()


# --- security headers and the page's script -------------------------------------------------


def test_every_answer_carries_the_security_headers(ctx):
    client, _, _ = ctx
    for resp in (client.get("/"), client.get("/v1/jobs/" + "0" * 32),
                 client.post("/v1/jobs", json={"texts": "no"}), client.get("/static/app.js")):
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_style(ctx):
    client, _, _ = ctx
    page = client.get("/").get_data(as_text=True)
    assert "<script>" not in page and "<style>" not in page and " on" + "click=" not in page
    assert '<script src="static/app.js"></script>' in page
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "replaceState" in script.get_data(as_text=True)


def test_a_download_meeting_a_changed_part_midway_is_cut_short(tmp_path):
    from api.store_results import OutputChanged

    sender = RecordingSender()
    client, store = make_api(sender, max_texts_per_request=10, chunk_size=4,
                             max_texts_per_job=5000, artifact_dir=tmp_path,
                             split_bytes=30_000)  # ~1,200 rows a part
    rows = "".join(f"{i},message number {i:05d}\n" for i in range(2500))
    job = scored_upload(client, store, sender, "in.csv", "id,body\n" + rows, column="body")
    parts = sorted(p for p in tmp_path.rglob("part-*") if "_rejected" not in str(p))
    assert job["status"] == "done" and len(parts) >= 2, (job, parts)
    parts[-1].write_bytes(b"not json\n")
    download = client.get(job["results_url"] + "?format=jsonl", buffered=False)
    assert download.status_code == 200  # its first page read whole: the answer had begun
    with pytest.raises(OutputChanged):  # then the server ends it short: no final chunk
        b"".join(download.response)
