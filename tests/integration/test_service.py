"""The vertical slice over real parts: HTTP -> gunicorn/Flask -> Redis -> celery worker -> model."""

from __future__ import annotations

import csv
import time

import pytest
import requests

from spamq.models.manifest import verify_model_dir
from spamq.samples import EXPECTED, SAMPLES
from spamq.settings import Settings
from tests.integration.conftest import METRICS_TOKEN

pytestmark = pytest.mark.integration


def poll(api_url: str, status_url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(api_url + status_url, timeout=5).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job not finished after {timeout}s: {job}")


def test_ready_once_a_worker_has_loaded_the_model(api_url, trained_model_dir):
    resp = requests.get(api_url + "/readyz", timeout=5)
    assert resp.status_code == 200 and resp.json()["ready"] is True
    assert resp.json()["workers"] >= 1  # a count: which workers is /metrics' (the operator's)
    metrics = requests.get(api_url + "/metrics", timeout=5,
                           headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    versions = {line.split('model_version="', 1)[1].split('"', 1)[0]
                for line in metrics.splitlines() if line.startswith("spamq_worker_model{")}
    assert versions == {verify_model_dir(trained_model_dir)}


def test_sample_job_is_scored_through_the_queue(api_url, trained_model_dir):
    resp = requests.post(api_url + "/v1/jobs", json={"texts": SAMPLES}, timeout=5)
    assert resp.status_code == 202
    created = resp.json()
    assert resp.headers["Location"] == created["status_url"]
    job = poll(api_url, created["status_url"])
    assert job["status"] == "done", job
    assert job["progress"] == {"done": 3, "total": 3}
    assert [r["label"] for r in job["results"]] == EXPECTED
    spam = [
        r["spam_probability"]
        for r, e in zip(job["results"], EXPECTED, strict=True)
        if e == "spam"
    ]
    ham = [
        r["spam_probability"]
        for r, e in zip(job["results"], EXPECTED, strict=True)
        if e == "ham"
    ]
    assert min(spam) > max(ham)
    version = verify_model_dir(trained_model_dir)
    assert job["model_version"] == version
    assert all(r["model_version"] == version and r["truncated"] is False for r in job["results"])
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_study_project_predict_call_still_works(api_url):
    resp = requests.request("GET", api_url + "/predict", json={"text": SAMPLES}, timeout=30)
    assert resp.status_code == 200
    result = resp.json()["Result"]
    assert [r["label"] for r in result] == EXPECTED
    assert all(0.5 <= r["score"] <= 1.0 for r in result)  # probability of the given label
    post = requests.post(api_url + "/predict", json={"text": SAMPLES[:1]}, timeout=30).json()
    assert post["Result"][0]["label"] == EXPECTED[0]


def test_sync_predict_answers_with_results(api_url):
    resp = requests.post(api_url + "/v1/predict", json={"texts": SAMPLES}, timeout=30)
    assert resp.status_code == 200
    assert [r["label"] for r in resp.json()["results"]] == EXPECTED


def test_thousand_texts_complete_in_order(api_url, trained_model_dir):
    from worker.runner import BatchClassifier

    with open(Settings().data_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    texts = [text for _, text in rows[:1000]]
    texts[7] = "long " * 400  # more than 256 tokens
    created = requests.post(api_url + "/v1/jobs", json={"texts": texts}, timeout=10).json()
    job = poll(api_url, created["status_url"], timeout=300)
    assert job["status"] == "done", job
    assert len(job["results"]) == 1000
    reference = BatchClassifier(trained_model_dir, device="cpu").predict(texts)
    got = [r["spam_probability"] for r in job["results"]]
    assert got == pytest.approx([p.spam_probability for p in reference], abs=1e-4)
    assert [r["truncated"] for r in job["results"]] == [p.truncated for p in reference]
    assert job["results"][7]["truncated"] is True


def test_bad_input_is_a_named_4xx_over_http(api_url):
    resp = requests.post(api_url + "/v1/jobs", json={"texts": [1]}, timeout=5)
    assert resp.status_code == 422 and resp.json()["field"] == "texts[0]"
    resp = requests.post(api_url + "/v1/jobs", data=b"{oops", timeout=5,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert requests.get(api_url + "/v1/jobs/" + "0" * 32, timeout=5).status_code == 404


def test_worker_and_api_log_lines_about_a_job_carry_its_id(api_url, services_dir):
    created = requests.post(api_url + "/v1/jobs", json={"texts": SAMPLES}, timeout=5).json()
    assert poll(api_url, created["status_url"])["status"] == "done"
    tag = f"[job={created['id']}]"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        worker_lines = [ln for ln in (services_dir / "worker.log").read_text().splitlines()
                        if tag in ln]
        api_lines = [ln for ln in (services_dir / "api.log").read_text().splitlines()
                     if tag in ln]
        if worker_lines and api_lines:
            break
        time.sleep(0.2)
    assert any("chunk 0 [0, 3) stored" in ln for ln in worker_lines), worker_lines
    assert any("queued 3 texts in 1 chunks" in ln for ln in api_lines), api_lines
