"""The Spark path (spamq/spark.py, local[N]) against the Celery path (a store job through the
API and one worker) on the same CSV in one real HDFS: rows/s of each, and equal scores.

    .venv/bin/python -m bench.spark_vs_celery [--rows 100000] [--model-dir /tmp/tiny-model/model]
        [--rounds 2] [--master local[2]] [--threads 2]

Starts its own HDFS (scripts/hdfs.sh), redis-server, worker and API (SPAMQ_AUTH_REQUIRED=false,
loopback only), pushes the model into the HDFS registry, and alternates the two paths
``--rounds`` times (the machine is shared: alternating spreads the neighbours' load over both).
Celery: submit to ``done`` (the plan, every split read from HDFS, scored, written back).
Spark: the same, by ``hdfs://`` (read, score, write Parquet) in one SparkSession started
beforehand (its start and the first round's model loads are reported apart). Both at fp32 with
the same cores: the worker's torch threads = ``--threads``, Spark's tasks one thread each.
Writes bench/results/spark_vs_celery.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import requests

from bench.bulk_scale import TINY_ENV, write_input
from bench.lib import hardware, sms_texts, write_results
from scripts.local_services import REPO, private_hdfs, start_api, start_redis, start_worker
from spamq.jobs.schema import should_stop
from spamq.models.registry import ModelRegistry
from spamq.settings import Settings
from spamq.storage.artifacts import HdfsArtifactStore


def celery_round(base: str, inp: str, out: str) -> dict[str, Any]:
    body = {"hdfs_input": inp, "hdfs_output": out, "column": "text", "id_column": "id"}
    t0 = time.perf_counter()
    resp = requests.post(base + "/v1/jobs", json=body, timeout=120)
    assert resp.status_code == 202, resp.text
    url = base + resp.json()["status_url"]
    while not should_stop((job := requests.get(url, timeout=30).json())["status"]):
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    assert job["status"] == "done", job
    return {"wall_s": round(wall, 2), "rows": job["progress"]["done"],
            "rows_per_s": round(job["progress"]["done"] / wall, 1),
            "splits": job["chunks"]["total"]}


def spark_round(spark: Any, settings: Settings, rpc: str, inp: str, out: str, model: str,
                partitions: int) -> dict[str, Any]:
    from spamq import spark as sp

    stats = sp.stats_accumulator(spark)
    t0 = time.perf_counter()
    df = sp.read_input(spark, f"{rpc}{inp}", "csv")
    scored = sp.score_dataframe(df.repartition(partitions), model=model, text_column="text",
                                id_column="id", settings=settings, stats=stats)
    sp.write_output(scored, f"{rpc}{out}", "parquet")
    wall = time.perf_counter() - t0
    loads, batches, rows = stats.value
    return {"wall_s": round(wall, 2), "rows": rows, "rows_per_s": round(rows / wall, 1),
            "model_loads": loads, "batches": batches, "partitions": partitions}


def compare(store: HdfsArtifactStore, job_out: str, spark_out: str) -> dict[str, Any]:
    job = {row["id"]: row for name in store.list(job_out) if name.startswith("part-")
           for row in map(json.loads, store.read_bytes(f"{job_out}/{name}").splitlines())}
    spark = {row["id"]: row for name in store.list(spark_out) if name.endswith(".parquet")
             for row in pq.read_table(io.BytesIO(store.read_bytes(f"{spark_out}/{name}")))
             .to_pylist()}
    same_ids = sorted(job) == sorted(spark)
    labels = sum(job[i]["label"] != spark[i]["label"] for i in job if i in spark)
    diffs = [abs(job[i]["spam_probability"] - spark[i]["spam_probability"])
             for i in job if i in spark]
    return {"rows_job": len(job), "rows_spark": len(spark), "same_ids": same_ids,
            "label_mismatches": labels, "max_abs_prob_diff": max(diffs, default=0.0),
            "bitwise_equal_rows": sum(d == 0.0 for d in diffs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/tiny-model/model"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="the worker's torch threads")
    ap.add_argument("--tiny", action="store_true", help="the tiny model's bulk token budget")
    args = ap.parse_args()
    r: dict[str, Any] = {"hardware": hardware(), "args": {k: str(v) for k, v in
                                                          vars(args).items()},
                         "loadavg_start": os.getloadavg(), "celery": [], "spark": []}
    with tempfile.TemporaryDirectory(prefix="spamq-spark-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with private_hdfs(tmp / "hdfs") as hdfs:
            _run(args, r, tmp, hdfs["SPAMQ_HDFS_URL"], hdfs["SPAMQ_HDFS_RPC"])
    r["loadavg_end"] = os.getloadavg()
    write_results(REPO / "bench" / "results" / "spark_vs_celery.json", r)
    print(json.dumps({k: r[k] for k in ("celery", "spark", "compare", "spark_start_s",
                                        "loadavg_start", "loadavg_end")}, indent=1))
    return 0


def _run(args: argparse.Namespace, r: dict[str, Any], tmp: Path, hdfs_url: str,
         rpc: str) -> None:
    from spamq import spark as sp

    root = f"/spamq-bench/{uuid.uuid4().hex[:8]}"
    store = HdfsArtifactStore(hdfs_url, user="spamq", root=root, timeout_s=120)
    r["input"] = write_input(store, "in/sms.csv", args.rows, sms_texts(5000), tmp)
    version = ModelRegistry(store).push(args.model_dir, name="spamq-sms")
    redis_proc, redis_url = start_redis(tmp / "redis")
    env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_HDFS_URL": hdfs_url, "SPAMQ_HDFS_ROOT": root,
           "SPAMQ_MODEL_DIR": str(args.model_dir), "SPAMQ_PRECISION": "fp32",
           "SPAMQ_TORCH_THREADS": str(args.threads), "SPAMQ_AUTH_REQUIRED": "false",
           **(TINY_ENV if args.tiny else {})}
    api, base = start_api(env, log=tmp / "api.log")
    worker = start_worker(env, log=tmp / "worker.log", timeout=300)
    settings = Settings(hdfs_url=hdfs_url, hdfs_root=root, precision="fp32",
                        model_cache_dir=tmp / "spark-cache")
    os.environ["HADOOP_USER_NAME"] = "spamq"  # the JVM's HDFS user (a bench, not the service)
    t0 = time.perf_counter()
    spark = sp.spark_session("spamq-bench", args.master)
    r["spark_start_s"] = round(time.perf_counter() - t0, 2)
    try:
        for i in range(args.rounds):
            print(f"round {i}: celery ...", flush=True)
            r["celery"].append(celery_round(base, "in/sms.csv", f"out/job{i}"))
            print(f"  {r['celery'][-1]}\nround {i}: spark ...", flush=True)
            r["spark"].append(spark_round(spark, settings, rpc, f"{root}/in/sms.csv",
                                          f"{root}/out/spark{i}", f"spamq-sms@{version}",
                                          args.partitions))
            print(f"  {r['spark'][-1]}", flush=True)
        r["compare"] = compare(store, "out/job0", "out/spark0")
    finally:
        spark.stop()
        worker.stop()
        api.stop()
        redis_proc.stop()


if __name__ == "__main__":
    raise SystemExit(main())
