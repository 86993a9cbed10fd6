"""How long submitting a store job takes, in-process: the API under Flask's test client with
fakeredis, against a real HDFS holding the input, so it times the request's own work (list,
stat, sniff, plan, Redis writes) without HTTP.

    .venv/bin/python -m bench.submit_probe WEBHDFS_URL HDFS_ROOT [INPUT] [--tries 5]
"""

from __future__ import annotations

import argparse
import os
import time

import fakeredis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("root")
    parser.add_argument("input", nargs="?", default="in/big.csv")
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    os.environ["SPAMQ_AUTH_REQUIRED"] = "false"
    from api import create_app
    from spamq.jobs.store import JobStore
    from spamq.settings import Settings

    settings = Settings(hdfs_url=args.url, hdfs_user="spamq", hdfs_root=args.root)
    jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    client = create_app(settings, store=jobs, send_task=lambda *a, **k: None).test_client()
    for _ in range(args.tries):
        started = time.perf_counter()
        resp = client.post("/v1/jobs", json={"hdfs_input": args.input, "column": "text",
                                             "hdfs_output": f"out/probe-{time.time_ns()}"})
        took = time.perf_counter() - started
        job = jobs.jobs.get(resp.get_json()["id"])
        print(f"submit {took * 1000:.0f} ms, status {resp.status_code}, {job.chunks_total} "
              f"splits, {job.bytes_total} bytes")


if __name__ == "__main__":
    main()
