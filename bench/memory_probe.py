"""A worker's peak memory on a Parquet "dictionary bomb": one long string value, dictionary
encoded, repeated in every row (a small file that decodes to gigabytes).

    .venv/bin/python -m bench.memory_probe [--rows 4096] [--value-kb 500] [--model-dir DIR]

Writes the file to a temporary local artifact store, starts a real redis-server and a real
Celery worker process (scripts/local_services.start_worker) on that store, submits a store
job over the file through the API's code (create_app on that Redis, its test client; the
split tasks go to the worker through Celery) and waits for the job to end. The worker's
memory is read from /proc/<pid>/status: VmRSS before the job (model loaded, warmed), VmHWM
(its peak) and VmRSS after. Prints JSON and writes bench/results/memory_probe.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.lib import hardware, write_results
from scripts.local_services import REPO, start_redis, start_worker
from spamq.settings import Settings


def write_bomb(path: Path, *, rows: int, value_bytes: int) -> None:
    text = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()),
                                          pa.array(["x" * value_bytes]))
    pq.write_table(pa.table({"text": text, "id": list(range(rows))}), path,
                   compression="zstd")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--value-kb", type=int, default=500)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--timeout-s", type=float, default=300)
    args = parser.parse_args()

    from api import create_app
    from spamq.jobs.queue import make_celery
    from spamq.jobs.store import JobStore

    with tempfile.TemporaryDirectory(prefix="spamq-memory-") as tmp:
        root = Path(tmp)
        store, worker_tmp = root / "store", root / "tmp"
        (store / "in").mkdir(parents=True)
        worker_tmp.mkdir()
        bomb = store / "in" / "bomb.parquet"
        write_bomb(bomb, rows=args.rows, value_bytes=args.value_kb * 1000)
        redis_proc, url = start_redis(root / "redis")
        env = {"SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(args.model_dir),
               "SPAMQ_ARTIFACT_DIR": str(store), "SPAMQ_AUTH_REQUIRED": "false",
               "TMPDIR": str(worker_tmp)}
        worker = start_worker(env, log=root / "worker.log", name="memprobe")
        try:
            time.sleep(2)  # the worker settles after its warm-up
            before = proc_status(worker.proc.pid)
            settings = Settings(artifact_dir=store, redis_url=url, auth_required=False)
            jobs = JobStore.from_settings(settings)
            celery = make_celery(settings)
            client = create_app(settings, store=jobs, send_task=celery.send_task).test_client()
            started = time.monotonic()
            resp = client.post("/v1/jobs", json={"hdfs_input": "in/bomb.parquet",
                                                 "hdfs_output": "out/bomb", "id_column": "id"})
            if resp.status_code != 202:
                raise SystemExit(f"submission refused: {resp.status_code} {resp.get_json()}")
            job_id = resp.get_json()["id"]
            job = jobs.results.wait_for(job_id, args.timeout_s)[0]
            elapsed = time.monotonic() - started
            after = proc_status(worker.proc.pid)
        finally:
            worker.stop()
            redis_proc.stop()
        results: dict[str, Any] = {
            "input": {"file_bytes": bomb.stat().st_size, "rows": args.rows,
                      "value_bytes": args.value_kb * 1000,
                      "decoded_bytes": args.rows * args.value_kb * 1000},
            "job": {"status": job.status, "rows_scored": job.done, "rejected": job.rejected,
                    "error": job.error, "seconds": round(elapsed, 2)},
            # peak: the process's highest RSS ever (VmHWM), the model's loading included;
            # peak_before_job: the same read before the submission
            "worker_rss_mb": {"before": before["VmRSS"], "peak_before_job": before["VmHWM"],
                              "peak": after["VmHWM"], "after": after["VmRSS"]},
            "hardware": hardware(),
        }
    print(json.dumps(results, indent=2))
    write_results(REPO / "bench" / "results" / "memory_probe.json", results)


if __name__ == "__main__":
    main()
