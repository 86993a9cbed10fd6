"""Store jobs end to end in-process: the API plans, SplitScorer (the worker's code) scores
each split from a local artifact store, the API serves the parts. No row touches Redis."""

from tests.helpers.api import run_all


def test_a_csv_with_multiline_quoted_fields_is_split_scored_once_and_served(ctx):
    from spamq.storage.artifacts import LocalArtifactStore

    client, jobs, tasks, root = ctx
    rows = [f'{i},"WIN a prize, now\r\ncall {i}"' if i % 3 == 0 else f'{i},"hi ""there"" {i}"'
            for i in range(40)]
    (root / "in").mkdir()
    (root / "in" / "sms.csv").write_bytes(("id,text\r\n" + "\r\n".join(rows) + "\r\n").encode())
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/sms.csv", "hdfs_output": "out/a",
                                         "id_column": "id"})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    assert tasks.sent == [("spamq.plan_store_job", [job_id])]  # quote pass first
    ran = run_all(jobs, tasks, LocalArtifactStore(root))
    job = jobs.jobs.get(job_id)
    assert job.status == "done" and sorted(ran) == list(range(job.chunks_total))
    assert job.chunks_total > 3 and job.done == 40
    got = client.get(f"/v1/jobs/{job_id}/results?format=jsonl").get_data(as_text=True)
    import json

    results = [json.loads(line) for line in got.splitlines()]
    assert [r["id"] for r in results] == [str(i) for i in range(40)]
    assert [r["label"] for r in results] == ["spam" if i % 3 == 0 else "ham" for i in range(40)]
    page = client.get(f"/v1/jobs/{job_id}/results?offset=15&limit=10").get_json()
    assert [r["id"] for r in page["results"]] == [str(i) for i in range(15, 25)]
    assert page["next"].endswith("offset=25&limit=10")
    success = json.loads((root / "out" / "a" / "_SUCCESS").read_text())
    assert success["input_rows"] == 40 and success["rejected_rows"] == 0
    assert success["model_version"] == "v-test"
    view = client.get(f"/v1/jobs/{job_id}").get_json()
    assert view["progress"]["total"] == 40
    assert view["progress"]["bytes_done"] == view["progress"]["bytes_total"]
    assert {k.decode() for k in jobs.redis.keys("*:texts")} == set()


def test_rejected_rows_are_kept_with_reasons_and_input_rows_add_up(ctx):
    from spamq.storage.artifacts import LocalArtifactStore

    client, jobs, tasks, root = ctx
    (root / "in").mkdir()
    lines = ['{"id": 1, "text": "hello"}', '{"id": 2, "text": "   "}', "not json",
             '{"id": 4, "text": "WIN now"}', '{"id": 5}']
    (root / "in" / "a.jsonl").write_text("\n".join(lines) + "\n")
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/a.jsonl", "hdfs_output": "out/j",
                                         "id_column": "id"})
    job_id = resp.get_json()["id"]
    run_all(jobs, tasks, LocalArtifactStore(root))
    job = jobs.jobs.get(job_id)
    assert (job.status, job.done, job.rejected) == ("done", 2, 3)
    import json

    rejected = [json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/rejected").get_data(
        as_text=True).splitlines()]
    assert sorted(r["reason"] for r in rejected) == sorted(
        ["empty or blank", "not valid JSON", "missing"])
