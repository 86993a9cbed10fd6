"""Feedback over real processes (redis-server, a Celery worker, gunicorn, the local artifact
store in a directory of this module's own): text items and a scored job's row go in through
the API, land as Parquet partitions per key, are counted by /v1/feedback/stats and deleted
by their key only; the worker's sweeper applies the retention; `spamq feedback add` sends a
CSV in requests of 1,000; the page's "report spam" button posts a row of its job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
import requests

from api.auth import hash_key, key_id
from scripts.local_services import REPO, start_api, start_worker
from spamq.feedback import store as fs
from spamq.samples import SAMPLES
from spamq.storage.artifacts import LocalArtifactStore
from tests.integration.conftest import API_KEY, API_KEY_2, private_services, wait_for_job

pytestmark = pytest.mark.integration

A, B = key_id(hash_key(API_KEY)), key_id(hash_key(API_KEY_2))
KEY_B = {"X-API-Key": API_KEY_2}
COLUMNS = ["text_sha256", "text", "label", "category", "note", "source", "job_id", "row",
           "model_version", "received_at"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, service_env):
    root = tmp_path_factory.mktemp("feedback")
    redis_proc, env, store = private_services(
        root, service_env, SPAMQ_FEEDBACK_RETENTION_DAYS="30",
        SPAMQ_FEEDBACK_SWEEP_EVERY_S="0.5", SPAMQ_SWEEP_EVERY_S="0.5")
    s = {"env": env, "store": store, "redis": redis_proc}
    s["worker"] = start_worker(env, log=root / "worker.log", name="feedback1")
    s["api"], s["base"] = start_api(env, log=root / "api.log")
    yield s
    for name in ("api", "worker", "redis"):
        s[name].stop()


def post(stack, items, headers=None):
    return requests.post(stack["base"] + "/v1/feedback", json={"items": items},
                         headers=headers, timeout=30)


def stats(stack, headers=None):
    resp = requests.get(stack["base"] + "/v1/feedback/stats", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def scored_job(stack, texts):
    resp = requests.post(stack["base"] + "/v1/jobs", json={"texts": texts}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(stack["base"], resp.json()["status_url"], timeout=60)
    assert job["status"] == "done", job
    return job


def test_feedback_goes_in_as_parquet_per_key_and_only_its_key_sees_or_deletes_it(stack):
    today = datetime.now(UTC).date().isoformat()
    resp = post(stack, [{"text": "URGENT: your parcel is held, pay at https://bit.ly/x",
                         "label": "spam", "category": "delivery"},
                        {"text": "Hi, is this Vince's number?", "label": "spam",
                         "category": "wrong-number", "note": "romance opener"},
                        {"text": "URGENT:  your parcel is held, pay at https://bit.ly/x",
                         "label": "spam", "category": "delivery"}])
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert body["text_sha256"][0] == body["text_sha256"][2]

    job = scored_job(stack, SAMPLES)
    resp = post(stack, [{"job_id": job["id"], "index": 0, "label": "spam", "note": "missed"}])
    assert resp.status_code == 201, resp.text

    # key B can neither report A's job row nor tell it exists
    theirs = post(stack, [{"job_id": job["id"], "index": 0, "label": "ham"}], headers=KEY_B)
    unknown = post(stack, [{"job_id": "f" * 32, "index": 0, "label": "ham"}], headers=KEY_B)
    assert theirs.status_code == unknown.status_code == 422
    assert theirs.json() == unknown.json() and theirs.json()["field"] == "items[0].job_id"
    bad = post(stack, [{"text": "ok", "label": "ham"}, {"text": "x", "label": "eggs"}])
    assert bad.status_code == 422 and bad.json()["field"] == "items[1].label"
    too_many = post(stack, [{"text": f"t{i}", "label": "ham"} for i in range(1001)])
    assert too_many.status_code == 413 and too_many.json()["field"] == "items"

    files = sorted((stack["store"] / "feedback").rglob("*.parquet"))
    assert [f.relative_to(stack["store"]).parent.as_posix() for f in files] == [
        f"feedback/tenant={A}/date={today}"] * 2
    assert all(f.name.startswith("part-") for f in files)
    tables = [pq.read_table(f) for f in files]
    assert all(t.column_names == COLUMNS for t in tables)
    rows = [r for t in tables for r in t.to_pylist()]
    job_row = next(r for r in rows if r["source"] == "job")
    assert (job_row["text"], job_row["job_id"], job_row["row"], job_row["model_version"]) == (
        SAMPLES[0], job["id"], 0, job["model_version"])
    assert {r["category"] for r in rows} == {"delivery", "wrong-number", None}

    mine = stats(stack)
    assert mine["total"] == 3 and mine["by_label"] == {"spam": 3, "ham": 0}
    assert mine["by_category"] == {"delivery": 1, "none": 1, "wrong-number": 1}
    assert mine["by_day"] == {today: 3}
    assert stats(stack, KEY_B)["total"] == 0

    # B deletes "all its feedback" and one of A's hashes: A's files stay as they were
    base = stack["base"] + "/v1/feedback"
    assert requests.delete(base, headers=KEY_B, timeout=30).json() == {"deleted": 0}
    gone = requests.delete(base, params={"text_sha256": body["text_sha256"][1]},
                           headers=KEY_B, timeout=30)
    assert gone.status_code == 200 and gone.json() == {"deleted": 0}
    assert sorted((stack["store"] / "feedback").rglob("*.parquet")) == files
    assert stats(stack)["total"] == 3

    one = requests.delete(base, params={"text_sha256": body["text_sha256"][1]}, timeout=30)
    assert one.json() == {"deleted": 1}
    assert stats(stack)["by_category"] == {"delivery": 1, "none": 1}
    assert requests.delete(base, timeout=30).json() == {"deleted": 2}
    assert stats(stack)["total"] == 0
    assert not list((stack["store"] / "feedback").rglob("*.parquet"))


def test_the_workers_sweeper_deletes_partitions_past_the_retention(stack):
    store = LocalArtifactStore(stack["store"])
    item = {"text": "old news", "label": "ham", "source": "text",
            "text_sha256": fs.text_sha256("old news")}
    now = datetime.now(UTC)
    old = fs.write_feedback(store, B, [item], now=now - timedelta(days=31))
    kept = fs.write_feedback(store, B, [item], now=now - timedelta(days=29))
    assert old and kept
    deadline = time.monotonic() + 20
    while (stack["store"] / old).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (stack["store"] / old).parent.exists()  # its date partition is gone
    assert (stack["store"] / kept).exists()
    assert stats(stack, KEY_B)["total"] == 1
    assert requests.delete(stack["base"] + "/v1/feedback", headers=KEY_B,
                           timeout=30).json() == {"deleted": 1}


def test_the_cli_sends_a_csv_in_requests_of_a_thousand(stack, tmp_path):
    rows = ["text,label,category,note"] + [
        f'"message {i}, with a comma",{"spam" if i % 3 == 0 else "ham"},{"cat" if i % 2 else ""},'
        for i in range(2500)] + ['"message 7, with a comma",spam,,relabelled']
    f = tmp_path / "feedback.csv"
    f.write_text("\n".join(rows) + "\n")
    env = {**os.environ, "SPAMQ_CLIENT_API_KEY": API_KEY_2}
    run = subprocess.run([sys.executable, "-m", "spamq.cli", "feedback", "add", str(f),
                          "--url", stack["base"]], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "accepted 2501, duplicates 0 (2501 rows in 3 requests)" in run.stdout
    got = stats(stack, KEY_B)
    assert got["total"] == 2500  # message 7 twice: the newer (spam) wins
    assert got["by_label"] == {"spam": 835, "ham": 1665}
    assert got["by_category"] == {"cat": 1249, "none": 1251}  # the newer 7 has none
    assert stats(stack)["total"] == 0  # nothing of it is A's
    files = list((stack["store"] / "feedback" / f"tenant={B}").rglob("*.parquet"))
    assert len(files) == 3

    bad = tmp_path / "bad.tsv"
    bad.write_text("fine text\tham\n\nbroken row\tmaybe\n")
    run = subprocess.run([sys.executable, "-m", "spamq.cli", "feedback", "add", str(bad),
                          "--url", stack["base"]], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert "422 at line 3 (label)" in run.stderr
    assert requests.delete(stack["base"] + "/v1/feedback", headers=KEY_B,
                           timeout=30).json() == {"deleted": 2500}


def test_the_pages_report_spam_button_posts_its_jobs_row(stack, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(stack["base"] + "/#key=" + API_KEY)
    browser.find_element(By.ID, "texts").send_keys("\n".join(SAMPLES))
    browser.find_element(By.ID, "score-texts").click()
    WebDriverWait(browser, 60).until(
        ec.text_to_be_present_in_element((By.ID, "status"), ": done"))
    row = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")[2]
    row.find_element(By.CSS_SELECTOR, "button[data-label='spam']").click()
    WebDriverWait(browser, 30).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#results tbody tr:nth-child(3)"),
                                         "reported as spam"))
    assert stats(stack)["by_label"] == {"spam": 1, "ham": 0}
    table = fs.read_feedback(LocalArtifactStore(stack["store"]), [A])
    assert table["text"].to_pylist() == [SAMPLES[2]]
    assert table["source"].to_pylist() == ["job"] and table["row"].to_pylist() == [2]
    assert requests.delete(stack["base"] + "/v1/feedback", timeout=30).json() == {"deleted": 1}
