"""Owner fencing over the real gunicorn API + Redis: a job is visible only to the key that
made it."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.integration.conftest import API_KEY, API_KEY_2

pytestmark = pytest.mark.integration

ONE = {"X-API-Key": API_KEY}
TWO = {"X-API-Key": API_KEY_2}


def test_another_key_gets_404_for_a_job_it_does_not_own(api_url):
    created = requests.post(api_url + "/v1/jobs", json={"texts": ["free prize now", "hi mum"]},
                            headers=ONE, timeout=10)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    unknown = uuid.uuid4().hex
    paths = (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/results",
             f"/v1/jobs/{job_id}/results?format=jsonl", f"/v1/jobs/{job_id}/rejected")

    # The second key: 404 everywhere, the same answer as for a job that does not exist, and
    # its DELETE does not cancel the first key's job.
    unknown_body = requests.get(f"{api_url}/v1/jobs/{unknown}", headers=TWO, timeout=5).json()
    for path in paths:
        resp = requests.get(api_url + path, headers=TWO, timeout=5)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
        assert resp.json()["error"] == unknown_body["error"] == "not_found"
        assert "free prize" not in resp.text
    resp = requests.delete(f"{api_url}/v1/jobs/{job_id}", headers=TWO, timeout=5)
    assert resp.status_code == 404, resp.text

    # The first key sees it, to the end, not cancelled.
    deadline = time.monotonic() + 30
    while (view := requests.get(f"{api_url}/v1/jobs/{job_id}", headers=ONE,
                                timeout=5)).json()["status"] not in ("done", "failed", "cancelled"):
        assert view.status_code == 200, view.text
        assert time.monotonic() < deadline, view.json()
        time.sleep(0.05)
    assert view.json()["status"] == "done", view.json()
    for path in paths:
        assert requests.get(api_url + path, headers=ONE, timeout=5).status_code == 200, path
    results = requests.get(f"{api_url}/v1/jobs/{job_id}/results", headers=ONE, timeout=5).json()
    assert len(results["results"]) == 2
    # the owner's DELETE is answered (409: already done), never 404
    assert requests.delete(f"{api_url}/v1/jobs/{job_id}", headers=ONE, timeout=5).status_code == 409
    # and the second key's own jobs are fenced the other way round
    theirs = requests.post(api_url + "/v1/jobs", json={"texts": ["ok"]}, headers=TWO,
                           timeout=10).json()["id"]
    assert requests.get(f"{api_url}/v1/jobs/{theirs}", headers=ONE, timeout=5).status_code == 404
    assert requests.get(f"{api_url}/v1/jobs/{theirs}", headers=TWO, timeout=5).status_code == 200
