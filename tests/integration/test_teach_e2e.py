"""Teaching it your traffic, end to end over real processes (redis-server, a Celery worker on
the registry-backed model source, gunicorn, the local artifact store in a directory of this
module's own): feedback goes in through the API, a tiny model trains with ``--feedback``, a
shadow of it scores a sample of live texts and store jobs and its report is read, the
candidate is promoted, the worker hot-swaps, and the same text now scores on the candidate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from api.auth import hash_key, key_id
from scripts.local_services import REPO, start_api, start_redis, start_worker, wait_until
from spamq.feedback.store import text_sha256
from spamq.jobs.store import JobStore
from spamq.models import shadow
from spamq.models.registry import ModelRegistry
from spamq.redis_client import redis_client
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.data import csv_file, sms_texts
from tests.integration.conftest import API_KEY, wait_for_job

pytestmark = pytest.mark.integration

NAME = "spamq-sms"
A = key_id(hash_key(API_KEY))
SAMPLE = 0.5
SPAMMY = ["Your card was charged for $349 ref {}. If this was not you call 0800 555 0199",
          "Debit of $450 has been made from your account {}. Dispute: https://bit.ly/x",
          "Hi, is this Vince's number? It's Amy from the {} gym",
          "URGENT your parcel {} is held, pay the 1.99 fee at http://dlvry-help.co/"]
HAMMY = ["are we still on for lunch at {} ?", "ok see you at the {} station",
         "Your Acme sign-in code is ready, tag {}. Do not share it.",
         "running late, stuck near {}, be there soon"]


def tag(i: int) -> str:
    """Letters, not digits: digit runs fold together in the near-duplicate rule."""
    return "".join("abcdefghijklmnopqrstuvwxyz"[i // 26 ** k % 26] for k in range(3))


def feedback_items(start: int, n: int) -> list[dict]:
    return [{"text": (SPAMMY if i % 2 else HAMMY)[i // 2 % 4].format(tag(i)),
             "label": "spam" if i % 2 else "ham"} for i in range(start, start + n)]


@pytest.fixture
def stack(tmp_path, service_env, trained_model_dir):
    redis_proc, url = start_redis(tmp_path / "redis")
    store = tmp_path / "store"
    registry = ModelRegistry(LocalArtifactStore(store))
    v1 = registry.push(Path(trained_model_dir), name=NAME)
    registry.promote(NAME, v1, alias="production")
    env = {**service_env, "SPAMQ_REDIS_URL": url, "SPAMQ_ARTIFACT_DIR": str(store),
           "SPAMQ_MODEL_SOURCE": "registry", "SPAMQ_MODEL_NAME": NAME,
           "SPAMQ_MODEL_CACHE_DIR": str(tmp_path / "cache"), "SPAMQ_MODEL_POLL_S": "0.5",
           "SPAMQ_SHADOW_FLUSH_S": "0.5"}
    s = {"env": env, "store": store, "registry": registry, "v1": v1, "redis": redis_proc,
         "jobs": JobStore.from_settings(Settings(redis_url=url))}
    try:
        s["worker"] = start_worker(env, log=tmp_path / "worker.log", name="teach")
        s["api"], s["base"] = start_api(env, log=tmp_path / "api.log")
        yield s
    finally:
        for name in ("api", "worker", "redis"):
            if name in s:
                s[name].stop()


def cli(stack, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "spamq.cli", *argv], cwd=REPO,
                          env={**os.environ, **stack["env"]}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def heartbeat(stack) -> dict:
    workers = stack["jobs"].workers.heartbeats()
    assert len(workers) == 1, workers
    return workers[0]


def score_texts(stack, texts: list[str]) -> dict:
    resp = requests.post(stack["base"] + "/v1/jobs", json={"texts": texts}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(stack["base"], resp.json()["status_url"], timeout=60)
    assert job["status"] == "done", job
    return job


def test_feedback_train_shadow_report_promote_and_hot_swap(stack, tmp_path):
    started = time.monotonic()
    base = stack["base"]

    def lap(what: str) -> None:  # shown with -s: where the test's time goes
        print(f"teach e2e: {what} at {time.monotonic() - started:.1f}s")

    # 1. the operator's key reports spam and ham through the API
    # (two requests: the split is by time, the newest share evaluates)
    for first, n in ((0, 32), (32, 8)):
        resp = requests.post(base + "/v1/feedback", json={"items": feedback_items(first, n)},
                             timeout=30)
        assert resp.status_code == 201 and resp.json()["accepted"] == n, resp.text
        time.sleep(0.01)

    lap("feedback in")
    # 2. a tiny model trains on that key's feedback (explicitly named) and is pushed
    out = tmp_path / "candidate"
    cli(stack, "train", "--from-scratch", "--limit", "200", "--epochs", "1",
        "--supplement-per-category", "0", "--no-written", "--augment-factor", "1",
        "--max-train-length", "64", "--no-progress", "--feedback", f"tenants={A}",
        "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feedback"]["source"]["tenants"] == [A]
    assert manifest["feedback"]["rows_read"] == 40
    assert manifest["feedback"]["train"]["total"] > 0 and manifest["feedback"]["holdout"]["total"]
    v2 = cli(stack, "models", "push", str(out)).stdout.strip().rsplit("/", 1)[1]
    assert set(stack["registry"].list(NAME)) == {stack["v1"], v2}

    lap("trained and pushed")
    # 3. the shadow: one key in Redis; the worker loads the candidate within a heartbeat
    state = json.loads(cli(stack, "models", "shadow", v2, "--sample", str(SAMPLE)).stdout)
    assert state["version"] == v2 and state["sample"] == SAMPLE
    assert shadow.read_state(redis_client(Settings(redis_url=stack["env"]["SPAMQ_REDIS_URL"])))
    wait_until(lambda: (heartbeat(stack).get("shadow") or {}).get("version") == v2,
               timeout=30, what="the worker's shadow of the candidate")

    lap("shadow loaded")
    # 4. live traffic: a texts job and a store job (an uploaded CSV, scored by splits)
    live = list(dict.fromkeys(sms_texts(120, seed=7)))
    probe = "Debit of $450 has been made from your account. Dispute: https://bit.ly/x999"
    texts = [probe, *live[:70]]
    job = score_texts(stack, texts)
    assert job["results"][0]["model_version"] == stack["v1"]
    upload = live[70:]
    resp = requests.post(base + "/v1/jobs", files={"file": ("in.csv", csv_file(upload))},
                         data={"column": "message", "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    assert wait_for_job(base, resp.json()["status_url"], timeout=60)["status"] == "done"
    want = {"texts": sum(shadow.sampled(text_sha256(t), SAMPLE) for t in texts),
            "store": sum(shadow.sampled(text_sha256(t), SAMPLE) for t in upload)}
    assert want["texts"] and want["store"]
    logged = LocalArtifactStore(stack["store"])
    wait_until(lambda: shadow.read_rows(logged, "shadow", v2).num_rows >= sum(want.values()),
               timeout=30, what="the shadow's rows")
    assert not list(Path(stack["store"]).rglob("shadow/**/*.jsonl"))  # Parquet only

    lap("live jobs scored and logged")
    # 5. feedback that arrives after the shadow began, some of it on texts the shadow saw
    late = [{"text": t, "label": "spam" if i % 3 == 0 else "ham"} for i, t in
            enumerate(texts[:12])] + feedback_items(100, 8)
    resp = requests.post(base + "/v1/feedback", json={"items": late}, timeout=30)
    assert resp.status_code == 201 and resp.json()["accepted"] == len(late), resp.text

    report_dir = tmp_path / "report"
    report = json.loads(cli(stack, "models", "shadow-report", "--out", str(report_dir),
                            "--feedback", f"tenants={A}").stdout)
    s = report["shadow"]
    assert report["candidate"] == v2 and report["running"] and report["sample"] == SAMPLE
    assert s["rows"] == sum(want.values()) and s["by_source"] == want
    assert s["production_versions"] == {stack["v1"]: s["rows"]}
    assert 0.0 <= s["agreement"] <= 1.0
    flips = s["flips"]["ham_to_spam"] + s["flips"]["spam_to_ham"]
    assert round(s["agreement"] * s["rows"]) + flips == s["rows"]
    assert sum(s["histogram"]["production"]) == sum(s["histogram"]["candidate"]) == s["rows"]
    assert (report_dir / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert (report_dir / "report.md").read_text().startswith(f"# Shadow report: candidate {v2}")
    assert sum(w["scored"] for w in report["workers"].values()) == s["rows"]
    assert sum(w["dropped"] for w in report["workers"].values()) == 0
    fb = report["feedback"]
    assert fb["items"] == len(late) and fb["spam"] == sum(i["label"] == "spam" for i in late)
    assert fb["logged_by_the_shadow"] == sum(
        shadow.sampled(text_sha256(i["text"]), SAMPLE) for i in late[:12])
    assert fb["candidate"]["version"] == v2 and fb["production"]["version"] == stack["v1"]
    assert fb["candidate"]["n"] == fb["production"]["n"] == len(late)

    lap("report read")
    # 6. promote; the worker hot-swaps; the same text now scores on the candidate
    cli(stack, "models", "promote", NAME, v2)
    wait_until(lambda: heartbeat(stack)["model_version"] == v2, timeout=30,
               what="the worker's hot swap")
    again = score_texts(stack, [probe])
    assert again["results"][0]["model_version"] == v2 == again["model_version"]

    lap("promoted and swapped")
    # 7. shadow stop: the key goes, the worker drops the candidate
    assert "stopped" in cli(stack, "models", "shadow", "stop").stdout
    wait_until(lambda: "shadow" not in heartbeat(stack), timeout=30,
               what="the worker dropping the shadow")
    lap("shadow stopped")
