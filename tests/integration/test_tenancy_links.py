"""Tenancy on the resolved path, over real processes (gunicorn, Redis, a Celery worker) and
the local artifact store: a symlink in one key's area never leads into another key's area,
for input or output, at submission or later when the worker reads and writes by path."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import API_KEY, HOME_2, key_areas, wait_for_job

pytestmark = pytest.mark.integration

SECRET = "B-only secret row, never A's"


@pytest.fixture
def areas(service_env):
    """A fresh directory in each key's area of the services' local store: (store root,
    A's run dir, B's run dir); B's holds in/rows.csv, A's in/mine.csv."""
    with key_areas(service_env, "links") as (root, a, b):
        (a / "in" / "mine.csv").write_text("text\n" + "hello, this is A's own row\n" * 5)
        (b / "in" / "rows.csv").write_text(f"text\n{SECRET}\n" * 5)
        yield root, a, b


def tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(d.rglob("*"))}


def post(base: str, body: dict, key: str = API_KEY) -> requests.Response:
    return requests.post(base + "/v1/jobs", json={"column": "text", **body},
                         headers={"X-API-Key": key}, timeout=30)


def refused(resp: requests.Response, field: str, root: Path) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    body = resp.json()
    assert body["field"] == field and "symlink" in body["message"], body
    assert SECRET not in resp.text and str(root) not in resp.text
    assert HOME_2.split("/")[1] not in resp.text  # B's key id is never named


def rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def test_a_link_into_another_keys_area_reads_nothing(api_url, areas):
    root, a, b = areas
    os.symlink(os.path.relpath(b, a), a / "linkB")  # tenants/<A>/run/linkB -> tenants/<B>/run
    before = tree(b)
    for hdfs_input in ("linkB/in/rows.csv", "linkB/in", "linkB/in/*.csv"):
        resp = post(api_url, {"hdfs_input": f"{rel(root, a)}/{hdfs_input}",
                     "hdfs_output": f"{rel(root, a)}/out/r1", "keep_columns": ["text"]})
        assert resp.status_code == 422, resp.text
        refused(resp, "hdfs_input", root)
    assert tree(b) == before and not (a / "out").exists()


def test_a_link_into_another_keys_area_writes_nothing(api_url, areas):
    root, a, b = areas
    os.symlink(os.path.relpath(b, a), a / "linkB")
    before = tree(b)
    for out in ("linkB/in", "linkB/out/r1"):
        resp = post(api_url, {"hdfs_input": f"{rel(root, a)}/in/mine.csv",
                     "hdfs_output": f"{rel(root, a)}/{out}"})
        assert resp.status_code == 422, resp.text
        refused(resp, "hdfs_output", root)
    assert tree(b) == before  # no part, no _rejected, no _SUCCESS in B's area


def test_a_link_to_a_file_is_a_4xx_naming_hdfs_input(api_url, areas):
    root, a, b = areas
    os.symlink(os.path.relpath(b / "in" / "rows.csv", a / "in"), a / "in" / "b.csv")
    os.symlink("mine.csv", a / "in" / "own.csv")  # even to A's own file
    for name in ("b.csv", "own.csv"):
        resp = post(api_url, {"hdfs_input": f"{rel(root, a)}/in/{name}",
                     "hdfs_output": f"{rel(root, a)}/out/{name}"})
        assert resp.status_code == 422, resp.text
        refused(resp, "hdfs_input", root)


def test_a_link_made_after_the_submission_fails_the_split(api_url, areas, worker):
    root, a, b = areas
    before = tree(b)
    os.killpg(worker.proc.pid, signal.SIGSTOP)  # the worker reads the split after the swap
    try:
        resp = post(api_url, {"hdfs_input": f"{rel(root, a)}/in/mine.csv",
                     "hdfs_output": f"{rel(root, a)}/out/r1", "keep_columns": ["text"]})
        assert resp.status_code == 202, resp.text
        os.rename(a / "in", a / "in.old")  # A's input directory now leads to B's
        os.symlink(os.path.relpath(b / "in", a), a / "in")
        (b / "in" / "mine.csv").write_text(f"text\n{SECRET}\n")
        before = tree(b)
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)
    job = wait_for_job(api_url, resp.json()["status_url"], timeout=60)
    assert job["status"] == "failed", job
    assert "symlink" in job["error"] and str(root) not in job["error"], job
    assert tree(b) == before
    parts = list((a / "out").rglob("part-*")) if (a / "out").exists() else []
    assert parts == [] and not (a / "out" / "r1" / "_SUCCESS").exists()
    results = requests.get(api_url + resp.json()["status_url"] + "/results", timeout=10)
    assert SECRET not in results.text
