"""spamq.client against the real API (gunicorn), worker and Redis: submit, wait, results; an
upload as a store job and its results file; /v1/me; typed errors; ``spamq me``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from api.auth import hash_key, key_id
from spamq.client import Client, InvalidRequest, NotFound, Unauthorized
from spamq.samples import EXPECTED, SAMPLES
from tests.integration.conftest import API_KEY, HOME

pytestmark = pytest.mark.integration


@pytest.fixture
def api(api_url) -> Client:
    return Client(api_url, API_KEY, timeout=30)


def test_submit_wait_and_page_through_the_results(api):
    created = api.submit(SAMPLES)
    assert created["status"] in ("queued", "running") and created["total"] == len(SAMPLES)
    job = api.wait(created["id"], timeout=60)
    assert job["status"] == "done" and job["progress"]["done"] == len(SAMPLES)
    rows = list(api.results(created["id"], page_size=2))  # two pages: the second via "next"
    assert [r["label"] for r in rows] == EXPECTED
    assert [r["row"] for r in rows] == list(range(len(SAMPLES)))
    assert rows[1]["spam_probability"] > 0.5 > rows[0]["spam_probability"]


def test_upload_a_file_and_download_its_results(api, tmp_path):
    before = api.me()["usage"]["upload_bytes_held"]
    source = tmp_path / "messages.csv"
    source.write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(SAMPLES)))
    created = api.upload(source, column="text", id_column="id", progress=True)
    job = api.wait(created["id"], timeout=90, progress=True)
    assert job["status"] == "done" and job["progress"]["done"] == len(SAMPLES)
    assert job["output"].startswith(HOME + "/uploads/")
    out = api.download(created["id"], tmp_path / "scored.jsonl", progress=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == EXPECTED
    assert [str(r["id"]) for r in rows] == [str(i) for i in range(len(SAMPLES))]
    assert not (tmp_path / "scored.jsonl.partial").exists()
    # the upload's bytes count against the key's quota until its job expires
    assert api.me()["usage"]["upload_bytes_held"] - before == source.stat().st_size


def test_me_names_the_key_its_area_and_quotas(api):
    me = api.me()
    assert me["key_id"] == key_id(hash_key(API_KEY))
    assert me["store"]["area"] == HOME + "/"
    assert me["store"]["prefixes"] == [HOME + "/"] and me["store"]["grants"] == []
    assert me["quotas"]["rate_limit_burst"] == 200 and me["quotas"]["rate_limit_per_s"] == 50
    assert me["quotas"]["max_upload_bytes_held"] == 4 * 1024 ** 3
    assert 0 < me["usage"]["requests_available"] <= 200
    assert me["usage"]["jobs_in_flight"] >= 0 and me["usage"]["rows_pending"] >= 0


def test_error_answers_are_typed(api, api_url):
    with pytest.raises(InvalidRequest) as bad:
        api.submit(["x" * 6000])
    assert bad.value.status == 413 and bad.value.field == "texts[0]"
    with pytest.raises(NotFound):
        api.job("0" * 32)
    with pytest.raises(Unauthorized) as denied:
        Client(api_url, "not-a-key").me()
    assert denied.value.error == "unauthorized"


def test_the_cli_prints_me(api_url):
    run = subprocess.run([sys.executable, "-m", "spamq.cli", "me", "--url", api_url],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SPAMQ_CLIENT_API_KEY": API_KEY})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["store"]["area"] == HOME + "/"


def test_the_cli_demo_scores_the_samples(api_url):
    run = subprocess.run([sys.executable, "-m", "spamq.cli", "demo", "--url", api_url],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SPAMQ_CLIENT_API_KEY": API_KEY})
    assert run.returncode == 0, run.stderr
    labels = [line.split()[0] for line in run.stdout.splitlines()[1:]]
    assert labels == EXPECTED
