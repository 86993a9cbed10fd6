"""Store jobs (the API with a local store, fakeredis): no symlink in hdfs_input or
hdfs_output, at any depth, is followed into another tenant's area, and a refusal is a 422
naming the field that never says where a link leads; an hdfs_output inside (or around)
another job's output is a 409."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.auth import hash_key, key_id
from spamq.storage.artifacts import ArtifactSymlink, LocalArtifactStore
from tests.helpers.api import Tasks, make_api, run_all
from worker.tasks import public_error

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40
A, B = (f"tenants/{key_id(hash_key(k))}" for k in (ALICE, BOB))


@pytest.fixture
def api(tmp_path: Path):
    tasks = Tasks()
    client, jobs = make_api(tasks, artifact_dir=tmp_path, auth_required=True,
                            api_keys=f"{hash_key(ALICE)},{hash_key(BOB)}", split_bytes=1 << 20)
    for home, who in ((A, "alice"), (B, "bob")):
        (tmp_path / home / "in").mkdir(parents=True)
        (tmp_path / home / "in" / "rows.csv").write_text(f"text\n{who}'s secret row\n")
    return client, jobs, tasks, LocalArtifactStore(tmp_path), tmp_path


def _post(client, body, key=ALICE):
    return client.post("/v1/jobs", json={"column": "text", **body},
                       headers={"X-API-Key": key})


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


def _refused(resp, field: str, root: Path) -> None:
    body = resp.get_json()
    assert resp.status_code == 422, body
    assert body["field"] == field and "symlink" in body["message"], body
    text = resp.get_data(as_text=True)
    assert "bob" not in text and str(root) not in text and B.split("/")[1] not in text


# a link at each depth of A's input path: (link, its target, hdfs_input through it)
INPUT_LINKS = [
    (f"{A}/linkB", f"../{B.split('/')[1]}", f"{A}/linkB/in/rows.csv"),  # in A's home
    (f"{A}/linkB", f"../{B.split('/')[1]}", f"{A}/linkB/in"),  # a directory input
    (f"{A}/linkB", f"../{B.split('/')[1]}", f"{A}/linkB/in/*.csv"),  # a glob
    (f"{A}/in/sub", f"../../{B.split('/')[1]}/in", f"{A}/in/sub/rows.csv"),  # a subdirectory
    (f"{A}/in/b.csv", f"../../{B.split('/')[1]}/in/rows.csv", f"{A}/in/b.csv"),  # the file
    (f"{A}/in/own.csv", "rows.csv", f"{A}/in/own.csv"),  # a link to A's own file
]


@pytest.mark.parametrize(("link", "target", "hdfs_input"), INPUT_LINKS)
def test_no_input_is_read_through_a_symlink(api, link, target, hdfs_input):
    client, jobs, tasks, store, root = api
    os.symlink(target, root / link)
    before = _tree(root / B)
    resp = _post(client, {"hdfs_input": hdfs_input, "hdfs_output": f"{A}/out/r1"})
    _refused(resp, "hdfs_input", root)
    assert tasks.sent == [] and not (root / A / "out").exists()
    assert _tree(root / B) == before


@pytest.mark.parametrize("depth", ["home", "sub", "out"])
def test_no_output_is_written_through_a_symlink(api, depth):
    client, jobs, tasks, store, root = api
    b = B.split("/")[1]
    link, out = {"home": (f"{A}/linkB", f"{A}/linkB/in"),
                 "sub": (f"{A}/out", f"{A}/out/r1"),
                 "out": (f"{A}/out/r1", f"{A}/out/r1")}[depth]
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / B / "in", (root / link).parent)
               if depth != "home" else f"../{b}", root / link)
    before = _tree(root / B)
    resp = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": out})
    _refused(resp, "hdfs_output", root)
    assert tasks.sent == [] and _tree(root / B) == before


def test_a_symlinked_tenant_home_is_refused(api):
    client, jobs, tasks, store, root = api
    os.rename(root / A, root / "tenants" / "elsewhere")
    os.symlink(B.split("/")[1], root / A)  # A's whole home is a link to B's
    resp = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/out/r1"})
    _refused(resp, "hdfs_input", root)
    assert sorted(os.listdir(root / B)) == ["in"]


def test_a_link_made_after_the_submission_fails_the_job_and_writes_nothing_across(api):
    client, jobs, tasks, store, root = api
    resp = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/out/r1"})
    assert resp.status_code == 202, resp.get_json()
    # A's input directory becomes a link to B's: the split reads by path, later
    os.rename(root / A / "in", root / A / "in.old")
    os.symlink(f"../{B.split('/')[1]}/in", root / A / "in")
    before = _tree(root / B)
    with pytest.raises(ArtifactSymlink) as err:
        run_all(jobs, tasks, store)
    assert "symlink" in public_error(err.value)  # the job's error (worker/tasks.py)
    assert _tree(root / B) == before
    assert not (root / A / "out").exists()


def test_an_output_made_a_link_after_the_submission_gets_no_part(api):
    client, jobs, tasks, store, root = api
    resp = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/out/r1"})
    assert resp.status_code == 202, resp.get_json()
    (root / A / "out").mkdir(exist_ok=True)
    os.symlink(f"../../{B.split('/')[1]}/in", root / A / "out" / "r1")
    before = _tree(root / B)
    with pytest.raises(ArtifactSymlink):
        run_all(jobs, tasks, store)
    assert _tree(root / B) == before  # no part, no _rejected, no _SUCCESS in B's area


# ------------------------------------------------------------ outputs inside other outputs


def test_an_output_inside_a_reserved_output_is_a_409(api):
    client, jobs, tasks, store, root = api
    first = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/out/r1"})
    assert first.status_code == 202  # reserved; nothing written yet
    inside = _post(client, {"hdfs_input": f"{A}/in/rows.csv",
                            "hdfs_output": f"{A}/out/r1/nested/deeper"})
    assert inside.status_code == 409 and inside.get_json()["field"] == "hdfs_output"
    assert "another job's output" in inside.get_json()["message"]


def test_an_output_inside_a_finished_output_is_a_409(api):
    client, jobs, tasks, store, root = api
    (root / A / "old" / "run").mkdir(parents=True)
    (root / A / "old" / "run" / "_SUCCESS").write_text("{}")  # a job long expired
    inside = _post(client, {"hdfs_input": f"{A}/in/rows.csv",
                            "hdfs_output": f"{A}/old/run/again"})
    assert inside.status_code == 409 and inside.get_json()["field"] == "hdfs_output"
    beside = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/old/r2"})
    assert beside.status_code == 202, beside.get_json()


def test_an_output_around_another_output_is_a_409(api):
    client, jobs, tasks, store, root = api
    (root / A / "runs" / "x" / "r1").mkdir(parents=True)
    (root / A / "runs" / "x" / "r1" / "part-00000.jsonl").write_text("{}\n")
    stray = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/runs"})
    assert stray.status_code == 202, stray.get_json()  # a file below, but no job's output
    (root / A / "runs2" / "x" / "r1").mkdir(parents=True)
    (root / A / "runs2" / "x" / "r1" / "_SUCCESS").write_text("{}")
    around = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/runs2"})
    assert around.status_code == 409 and around.get_json()["field"] == "hdfs_output"
    assert "another job's output in a subdirectory" in around.get_json()["message"]
    reserved = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/r/x/y"})
    assert reserved.status_code == 202, reserved.get_json()  # reserves r/x/y
    (root / A / "r" / "x" / "y").mkdir(parents=True, exist_ok=True)
    around = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/r"})
    assert around.status_code == 409 and around.get_json()["field"] == "hdfs_output"
    (root / A / "empty" / "a" / "b").mkdir(parents=True)  # directories only: usable
    ok = _post(client, {"hdfs_input": f"{A}/in/rows.csv", "hdfs_output": f"{A}/empty"})
    assert ok.status_code == 202, ok.get_json()
