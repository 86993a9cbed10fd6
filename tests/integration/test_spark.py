"""The Spark path (spamq/spark.py) against a store job, on one real HDFS.

Real processes: a NameNode + DataNode (scripts/hdfs.sh), redis-server, a celery worker and
the gunicorn API; pyspark in local mode (``local[2]``: a JVM and its Python executors).
The same CSV is scored as a store job and by ``spamq spark-score`` reading it by
``hdfs://`` (the NameNode's RPC port) with the model pulled from the HDFS registry; both
must give every row the same label and the same fp32 probability.
"""

from __future__ import annotations

import io
import json
import uuid

import pyarrow.parquet as pq
import pytest
import requests

from scripts.local_services import start_api, start_redis, start_worker
from spamq.cli.main import build_parser
from spamq.models.registry import ModelRegistry
from spamq.storage.artifacts import HdfsArtifactStore
from tests.helpers.data import sample_csv
from tests.integration.conftest import HOME, wait_for_job

pytestmark = pytest.mark.integration

N, BAD = 1000, {4, 77, 901}


def namenode_rpc(http_url: str) -> str:
    """``hdfs://host:port`` of the NameNode behind a WebHDFS URL (its JMX status bean)."""
    r = requests.get(f"{http_url}/jmx",
                     params={"qry": "Hadoop:service=NameNode,name=NameNodeStatus"}, timeout=10)
    r.raise_for_status()
    return f"hdfs://{r.json()['beans'][0]['HostAndPort']}"


@pytest.fixture(scope="module")
def stack(hdfs_url, service_env, trained_model_dir, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("spark")
    root = f"/spamq-test/{uuid.uuid4().hex}"
    store = HdfsArtifactStore(hdfs_url, user="spamq", root=root, timeout_s=10)
    version = ModelRegistry(store).push(trained_model_dir, name="spamq-sms")
    rproc, rurl = start_redis(tmp / "redis")
    env = {**service_env, "SPAMQ_REDIS_URL": rurl, "SPAMQ_HDFS_URL": hdfs_url,
           "SPAMQ_HDFS_ROOT": root, "SPAMQ_SPLIT_BYTES": str(16 * 1024)}
    worker = start_worker(env, log=tmp / "worker.log")
    api, base = start_api(env, log=tmp / "api.log")
    try:
        yield {"base": base, "store": store, "root": root, "version": version, "env": env,
               "tmp": tmp}
    finally:
        api.stop()
        worker.stop()
        rproc.stop()
        store.delete("", recursive=True)


def test_spark_scores_equal_a_store_jobs_row_for_row(stack, hdfs_url, monkeypatch,  # noqa: F811
                                                      capsys):
    base, store, root = stack["base"], stack["store"], stack["root"]
    store.write_bytes(f"{HOME}/in/sms.csv", sample_csv(N, BAD))

    r = requests.post(f"{base}/v1/jobs", json={"hdfs_input": f"{HOME}/in/sms.csv",
                                              "column": "text", "id_column": "id",
                                              "hdfs_output": f"{HOME}/out/job"}, timeout=30)
    assert r.status_code == 202, r.text
    job = wait_for_job(base, f"/v1/jobs/{r.json()['id']}", timeout=120)
    assert job["status"] == "done", job
    parts = sorted(x for x in store.list(f"{HOME}/out/job") if x.startswith("part-"))
    assert len(parts) >= 2, parts  # several splits: several batches in the worker too
    job_rows = {row["id"]: row for name in parts
                for row in map(json.loads, store.read_bytes(f"{HOME}/out/job/{name}")
                               .splitlines())}
    assert len(job_rows) == N - len(BAD)

    # spark-submit's view: the settings from the environment, the input by hdfs:// (RPC)
    for key, value in stack["env"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SPAMQ_MODEL_CACHE_DIR", str(stack["tmp"] / "spark-cache"))
    monkeypatch.setenv("HADOOP_USER_NAME", "spamq")
    rpc = namenode_rpc(hdfs_url)
    out = f"{HOME}/out/spark"
    args = build_parser().parse_args(["spark-score", f"{rpc}{root}/{HOME}/in/sms.csv", "--output",
                     f"{rpc}{root}/{out}", "--column", "text", "--id-column", "id",
                     "--model", f"spamq-sms@{stack['version']}", "--master", "local[2]",
                     "--partitions", "6"])
    rc = args.func(args)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    # the model: pulled and loaded once per executor Python process (local[2]: at most
    # two), not once per batch
    stats = printed.strip().splitlines()[-1]
    loads = int(stats.rsplit("model loaded ", 1)[1].split()[0])
    batches = int(stats.split("(")[1].split()[0])
    assert 1 <= loads <= 2 < batches, stats

    names = store.list(out)
    assert "_SUCCESS" in names and "_rejected" in names, names
    spark_rows = {}
    for name in names:
        if name.endswith(".parquet"):
            for row in pq.read_table(io.BytesIO(store.read_bytes(f"{out}/{name}"))).to_pylist():
                assert row["id"] not in spark_rows
                spark_rows[row["id"]] = row
    rejected = [json.loads(line) for name in store.list(f"{out}/_rejected")
                if name.endswith(".json")
                for line in store.read_bytes(f"{out}/_rejected/{name}").splitlines()]
    assert sorted(int(r["id"]) for r in rejected) == sorted(BAD)
    assert all(r["reason"] == "empty or blank" for r in rejected)

    assert sorted(spark_rows) == sorted(job_rows)
    assert {r["model_version"] for r in spark_rows.values()} == {stack["version"]} == {
        r["model_version"] for r in job_rows.values()}
    # labels and truncation exactly; fp32 probabilities (service_env) to 1e-6: a row's
    # padded width is that of its pass, and the passes differ (the worker's batches are cut
    # from each split, Spark's from each partition), which moves fp32 attention's rounding
    # by ~1e-8 (spamq/models/precision.py, rowwise_attention)
    diff = [(i, job_rows[i]["spam_probability"], row["spam_probability"])
            for i, row in spark_rows.items()
            if (row["label"], row["truncated"]) != (job_rows[i]["label"], job_rows[i]["truncated"])
            or abs(row["spam_probability"] - job_rows[i]["spam_probability"]) > 1e-6]
    assert not diff, diff[:5]
    assert list(next(iter(spark_rows.values()))) == ["id", "label", "spam_probability",
                                                     "truncated", "model_version"]
    assert {r["label"] for r in spark_rows.values()} == {"spam", "ham"}
