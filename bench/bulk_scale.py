"""Store jobs at data-lake scale, on a real HDFS: planning, Redis and RSS flat as input grows,
the pipeline's ceiling, exact counts at 10^7 rows and a worker SIGKILL mid-job.

    .venv/bin/python -m bench.bulk_scale [--rows 10000000] [--model-dir weights/default]
        [--tiny-dir weights/tiny] [--skip-real]

Starts its own HDFS (scripts/hdfs.sh, a private state dir), redis-server, worker and API
(SPAMQ_AUTH_REQUIRED=false: loopback only, the whole store allowed, no key). Inputs are CSV
(id,text) written in bounded memory to a local temp file, then uploaded. Prints a table and
writes bench/results/bulk_scale.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import requests

from bench.__main__ import group_cpu_s, model_limit
from bench.lib import hardware, sms_texts, write_results
from scripts.local_services import REPO, private_hdfs, start_api, start_redis, start_worker
from spamq.jobs.schema import should_stop
from spamq.settings import Settings
from spamq.storage.artifacts import HdfsArtifactStore

KILL_AT = 0.30  # share of the rows scored when the worker is killed
# The tiny-model jobs give bulk passes the interactive budget (1024 tokens, as model_limit
# uses): at the default 256 (~8 rows a pass) per-pass overhead caps even the tiny model.
TINY_ENV = {"SPAMQ_BATCH_BULK_MAX_TOKENS": "1024"}


def texts_of(n: int, base: list[str]) -> list[str]:
    return [f"{base[i % len(base)]} #{i}" for i in range(n)]


def write_input(store: HdfsArtifactStore, path: str, rows: int, base: list[str],
                tmp: Path) -> dict[str, Any]:
    """CSV id,text of ``rows`` rows (texts cycled, id appended), streamed to a local file,
    then uploaded: memory stays a CSV writer's buffer."""
    local = tmp / f"gen-{uuid.uuid4().hex}.csv"
    t0 = time.perf_counter()
    with open(local, "w", encoding="utf-8", newline="", buffering=1 << 20) as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        n = len(base)
        writer.writerows((i, f"{base[i % n]} #{i}") for i in range(rows))
    t1 = time.perf_counter()
    store.upload_file(local, path, overwrite=True)
    t2 = time.perf_counter()
    size = local.stat().st_size
    local.unlink()
    return {"rows": rows, "bytes": size, "write_local_s": round(t1 - t0, 2),
            "upload_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "upload_mb_per_s": round(size / 1e6 / (t2 - t1), 1)}


def group_rss_mb(pgid: int) -> float:
    """Resident memory (VmRSS) of every live process of a process group, in MB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


class Sampler(threading.Thread):
    """Every ``every_s``: Redis used_memory and the RSS of each named process group."""

    def __init__(self, r: redis.Redis, groups: dict[str, Any], every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.r, self.groups, self.every_s = r, groups, every_s  # groups: name -> pgid getter
        self.samples: list[dict[str, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            s = {"redis_used_memory": float(self.r.info("memory")["used_memory"])}
            s.update({f"{k}_rss_mb": group_rss_mb(get()) for k, get in self.groups.items()})
            self.samples.append(s)
            self._halt.wait(self.every_s)

    def summary(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        keys = self.samples[0].keys() if self.samples else []
        return {"n": len(self.samples),
                **{k: {"min": min(s[k] for s in self.samples),
                       "max": max(s[k] for s in self.samples)} for k in keys}}


def run_job(base: str, r: redis.Redis, groups: dict[str, Any], inp: str, out: str, rows: int, *,
            on_poll: Any = None, poll_s: float = 0.5) -> dict[str, Any]:
    """Submit a store job, sample while it runs, poll until it ends. ``on_poll(job, t)`` may
    return "cancel" (then the job is deleted and the result says so)."""
    sampler = Sampler(r, groups)
    redis_before = r.info("memory")["used_memory"]
    sampler.start()
    body = {"hdfs_input": inp, "hdfs_output": out, "column": "text", "id_column": "id"}
    t0 = time.perf_counter()
    resp = requests.post(base + "/v1/jobs", json=body, timeout=120)
    submit_s = time.perf_counter() - t0
    assert resp.status_code == 202, resp.text
    url = base + resp.json()["status_url"]
    first_row_s, timeline, cancelled = None, [], False
    while True:
        job = requests.get(url, timeout=30).json()
        t = time.perf_counter() - t0
        p = job["progress"]
        timeline.append((round(t, 1), p["done"], p["bytes_done"], job["status"]))
        if first_row_s is None and p["done"]:
            first_row_s = t
        if should_stop(job["status"]):
            break
        if on_poll is not None and on_poll(job, t) == "cancel":
            requests.delete(url, timeout=30)
            cancelled = True
            break
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    done = rows if job["status"] == "done" else p["done"]
    res = {"rows": rows, "rows_done": done, "submit_s": round(submit_s, 3),
           "splits": job["chunks"]["total"],
           "status": "cancelled" if cancelled else job["status"], "wall_s": round(wall, 1),
           "first_row_s": round(first_row_s, 1) if first_row_s is not None else None,
           "rows_per_s": round(done / wall, 1),
           "rows_per_s_after_first_row": round(done / (wall - (first_row_s or 0)), 1),
           "server_rows_per_s": job["rate"]["rows_per_s"], "error": job.get("error"),
           "redis_used_memory_before": redis_before, "samples": sampler.summary(),
           "timeline": timeline[:: max(1, len(timeline) // 60)]}
    return res


def count_output(store: HdfsArtifactStore, out: str, rows: int) -> dict[str, Any]:
    """Exact counts of an output directory, streamed a part at a time: a bytearray of ids."""
    t0 = time.perf_counter()
    if not store.exists(f"{out}/_SUCCESS"):
        return {"exact": False, "error": "no _SUCCESS"}
    success = json.loads(store.read_bytes(f"{out}/_SUCCESS"))
    seen = bytearray(rows)
    lines = dup = bad = 0
    names = [f"{out}/{n}" for n in store.list(out) if n.startswith("part-")]
    names += [f"{out}/_rejected/{n}" for n in store.list(f"{out}/_rejected")]
    for path in names:
        with store.open_range(path) as fh:
            for line in fh:
                lines += 1
                i = int(json.loads(line)["id"])
                if not 0 <= i < rows:
                    bad += 1
                elif seen[i]:
                    dup += 1
                else:
                    seen[i] = 1
    distinct = sum(seen)
    ok = (success["input_rows"] == rows
          and success["output_rows"] + success["rejected_rows"] == success["input_rows"]
          and lines == rows and distinct == rows and dup == 0 and bad == 0)
    return {"success": {k: success[k] for k in ("input_rows", "output_rows", "rejected_rows",
                                                "splits")},
            "lines_read": lines, "distinct_ids": distinct, "duplicate_ids": dup,
            "ids_out_of_range": bad, "part_files": len(names), "exact": ok,
            "count_s": round(time.perf_counter() - t0, 1)}


def parse_alone(store: HdfsArtifactStore, path: str) -> dict[str, Any]:
    """The pipeline without the model: stream and parse the input's first split over
    WebHDFS (spamq/storage/splits.py read_split), in this process, one thread."""
    from spamq.storage import splits

    settings = Settings()
    files = splits.list_input(store, path)
    header = splits.sniff(store, files[0], column="text", id_column="id")
    first = splits.plan_splits(store, files, split_bytes=settings.split_bytes)[0]
    t0 = time.perf_counter()
    n = sum(1 for _ in splits.read_split(store, files[0], first, header=header, column="text",
                                         id_column="id"))
    wall = time.perf_counter() - t0
    return {"rows": n, "bytes": first.length, "s": round(wall, 1), "rows_per_s": round(n / wall)}


def ensure_model(path: Path, *, scratch: bool) -> None:
    if (path / "manifest.json").exists():
        return
    print(f"training {'the tiny from-scratch' if scratch else 'the real'} model into {path} "
          "...", flush=True)
    argv = [sys.executable, "-m", "spamq.cli", "train", "--out", str(path), "--no-progress"]
    subprocess.run(argv + (["--from-scratch"] if scratch else []), cwd=REPO, check=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    precision = settings.precision
    ensure_model(args.tiny_dir, scratch=True)
    if not args.skip_real:
        ensure_model(args.model_dir, scratch=False)
    base_texts = sms_texts(5000, seed=3)
    sample = texts_of(3000, base_texts)  # the jobs' own texts (id appended)
    r: dict[str, Any] = {"hardware": hardware(), "precision": precision,
                         "torch_threads": args.threads, "loadavg_start": os.getloadavg(),
                         "settings": {"split_bytes": settings.split_bytes,
                                      "bulk_window_chunks": settings.bulk_window_chunks,
                                      "bulk_max_in_flight": settings.bulk_max_in_flight,
                                      "worker_concurrency": settings.worker_concurrency,
                                      "auth_required": False},
                         "note": "2 shared vCPUs; other engineers' tests may run meanwhile"}
    print("model alone (tiny, real) ...", flush=True)
    r["tiny_limit"] = model_limit(args.tiny_dir, sample, precision=precision,
                                  threads=args.threads)
    if not args.skip_real:
        r["real_limit_start"] = model_limit(args.model_dir, sample, precision=precision,
                                            threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="spamq-bulk-scale-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        with private_hdfs(tmp / "hdfs") as hdfs:
            r["hdfs_start_s"] = round(time.perf_counter() - t, 1)
            jvm = {role: int((tmp / "hdfs" / f"{role}.pid").read_text())
                   for role in ("namenode", "datanode")}
            _services(args, r, tmp, hdfs["SPAMQ_HDFS_URL"], jvm, base_texts, precision)
    r["loadavg_end"] = os.getloadavg()
    return r


def _services(args: argparse.Namespace, r: dict[str, Any], tmp: Path, hdfs_url: str,
              jvm: dict[str, int], base_texts: list[str], precision: str) -> None:
    root = f"/spamq-bench/{uuid.uuid4().hex[:8]}"
    store = HdfsArtifactStore(hdfs_url, user="spamq", root=root, timeout_s=120)
    redis_proc, redis_url = start_redis(tmp / "redis")
    env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_HDFS_URL": hdfs_url, "SPAMQ_HDFS_ROOT": root,
           "SPAMQ_MODEL_DIR": str(args.tiny_dir), "SPAMQ_PRECISION": precision,
           "SPAMQ_TORCH_THREADS": str(args.threads), "SPAMQ_AUTH_REQUIRED": "false"}
    api, base = start_api(env, log=tmp / "api.log")
    tiny_env = {**env, **TINY_ENV}
    worker = {"p": start_worker(tiny_env, log=tmp / "worker.log", timeout=300)}
    client = redis.Redis.from_url(redis_url)
    groups = {"worker": lambda: worker["p"].proc.pid, "api": lambda: api.proc.pid}
    try:
        print("generating inputs ...", flush=True)
        r["gen_small"] = write_input(store, "in/small.csv", 10_000, base_texts, tmp)
        rows = args.rows
        r["gen_big"] = write_input(store, "in/big.csv", rows, base_texts, tmp)
        print(f"  {r['gen_small']}\n  {r['gen_big']}", flush=True)

        print("10^4-row job ...", flush=True)
        r["small"] = run_job(base, client, groups, "in/small.csv", "out/small", 10_000)
        r["small"]["counts"] = count_output(store, "out/small", 10_000)

        def too_slow(job: dict[str, Any], t: float) -> str | None:
            if t >= 60 and rows > args.fallback_rows:
                done = job["progress"]["done"]
                if not done or rows * t / done > args.fit_minutes * 60:
                    r["big_estimate_s"] = round(rows * t / max(done, 1))
                    return "cancel"
            return None

        cpu_groups = {"worker": worker["p"].proc.pid, "api": api.proc.pid,
                      "redis": redis_proc.proc.pid, **{f"hdfs {k}": v for k, v in jvm.items()}}
        big_in, big_out = "in/big.csv", "out/big"
        print(f"{rows}-row job, tiny model ...", flush=True)
        cpu0 = {k: group_cpu_s(v) for k, v in cpu_groups.items()}
        big = run_job(base, client, groups, big_in, big_out, rows, on_poll=too_slow)
        if big["status"] == "cancelled":
            print(f"  too slow (estimate {r['big_estimate_s']} s): {args.fallback_rows} rows "
                  "instead", flush=True)
            r["big_cancelled"] = big
            time.sleep(5)  # its running splits see the cancel within 2 s
            rows, big_in, big_out = args.fallback_rows, "in/big2.csv", "out/big2"
            r["gen_big"] = write_input(store, big_in, rows, base_texts, tmp)
            cpu0 = {k: group_cpu_s(v) for k, v in cpu_groups.items()}
            big = run_job(base, client, groups, big_in, big_out, rows)
        big["cpu_s"] = {k: round(group_cpu_s(v) - cpu0[k], 1) for k, v in cpu_groups.items()}
        r["big"] = big
        print(f"  {big['rows_per_s']} rows/s; counting ...", flush=True)
        big["counts"] = count_output(store, big_out, rows)
        r["parse_alone"] = parse_alone(store, big_in)

        print(f"{rows}-row job, worker SIGKILL at {KILL_AT:.0%} of rows ...", flush=True)
        at: dict[str, Any] = {}  # perf_counter times of the kill and after

        def killer(job: dict[str, Any], t: float) -> None:
            p = job["progress"]
            if "kill" not in at:
                if p["done"] >= KILL_AT * rows:
                    at.update(kill=time.perf_counter(), done=p["done"], bytes=p["bytes_done"],
                              bytes_share=round(p["bytes_done"] / p["bytes_total"], 3))
                    worker["p"].stop(signal.SIGKILL)
                    worker["p"] = start_worker(tiny_env, log=tmp / "worker2.log", name="w2",
                                               timeout=300)
                    pid = worker["p"].proc.pid  # its heartbeat key ends with :<pid>
                    while not any(k.decode().endswith(f":{pid}")
                                  for k in client.scan_iter(match="spamq:worker:*")):
                        time.sleep(0.1)
                    at["ready"] = time.perf_counter()
                return
            if "moving" not in at and p["done"] != at["done"]:
                at["moving"] = time.perf_counter()
            if "commit" not in at and p["bytes_done"] > at["bytes"]:
                at["commit"] = time.perf_counter()

        crash = run_job(base, client, groups, big_in, "out/crash", rows, on_poll=killer)
        end = time.perf_counter()

        def after(key: str) -> float | None:
            return round(at[key] - at["kill"], 1) if key in at else None

        crash["kill"] = {"done_at_kill": at.get("done"), "bytes_share_at_kill":
                         at.get("bytes_share"), "new_worker_ready_after_s": after("ready"),
                         "progress_moving_after_s": after("moving"),
                         "first_commit_after_s": after("commit"),
                         "done_after_s": round(end - at["kill"], 1) if at else None}
        crash["counts"] = count_output(store, "out/crash", rows)
        r["crash"] = crash

        if not args.skip_real:
            worker["p"].stop()
            # again right before its job, nothing else of ours running: the shared cores'
            # load drifts over a run; the targets use the higher (stricter) of the two
            r["real_limit_before_job"] = model_limit(args.model_dir, texts_of(3000, base_texts),
                                                     precision=precision, threads=args.threads)
            r["real_limit"] = max(r["real_limit_start"], r["real_limit_before_job"],
                                  key=lambda x: x["msgs_per_s"])
            real_env = {**env, "SPAMQ_MODEL_DIR": str(args.model_dir)}
            worker["p"] = start_worker(real_env, log=tmp / "worker-real.log", name="w3",
                                       timeout=300)
            n = args.real_rows
            r["gen_real"] = write_input(store, "in/real.csv", n, base_texts, tmp)
            print(f"{n}-row job, real model ...", flush=True)
            r["real"] = run_job(base, client, groups, "in/real.csv", "out/real", n)
            r["real"]["counts"] = count_output(store, "out/real", n)
    finally:
        worker["p"].stop()
        api.stop()
        redis_proc.stop()


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    largest = r.get("big_cancelled", r["big"])  # the --rows job, even if cut short
    small = r["small"]["samples"]
    runs = [r["big"]["samples"], largest["samples"]]
    redis_diff = max(s["redis_used_memory"]["max"] for s in runs) - \
        small["redis_used_memory"]["max"]
    out = [(f"submit {largest['rows']} rows < 1 s", f"{largest['submit_s']:.3f} s",
            largest["submit_s"] < 1.0),
           ("Redis used_memory: big - small < 1 MB", f"{redis_diff / 1e6:+.3f} MB",
            redis_diff < 1e6)]
    for name in ("worker", "api"):
        a = small[f"{name}_rss_mb"]["max"]
        b = max(s[f"{name}_rss_mb"]["max"] for s in runs)
        out.append((f"{name} RSS flat (big <= 1.1x small)", f"{a:.0f} -> {b:.0f} MB",
                    b <= 1.1 * a))
    out += [(f"exact counts, {r['big']['rows']} rows", str(r["big"]["counts"]["exact"]),
             r["big"]["counts"]["exact"]),
            ("SIGKILL mid-job: done, exact counts",
             f"{r['crash']['status']}, {r['crash']['counts']['exact']}",
             r["crash"]["status"] == "done" and r["crash"]["counts"]["exact"])]
    if "real_limit" in r:
        lim = r["real_limit"]["msgs_per_s"]
        out += [("ceiling (tiny) >= 10x real model alone",
                 f"{r['big']['rows_per_s'] / lim:.1f}x", r["big"]["rows_per_s"] >= 10 * lim),
                ("real model e2e >= 0.9x model alone", f"{r['real']['rows_per_s'] / lim:.2f}x",
                 r["real"]["rows_per_s"] >= 0.9 * lim)]
    return out


def print_table(r: dict[str, Any]) -> None:
    print(f"\nhardware: {r['hardware']}  precision: {r['precision']}  "
          f"loadavg start {r['loadavg_start']} end {r['loadavg_end']}")
    for k in ("gen_small", "gen_big", "gen_real"):
        if k in r:
            g = r[k]
            print(f"{k:<10} {g['rows']:>9} rows {g['bytes'] / 1e6:>8.1f} MB  write "
                  f"{g['write_local_s']:>6.1f} s  upload {g['upload_s']:>6.1f} s")
    print(f"\n{'job':<22}{'rows':>10}{'splits':>7}{'submit s':>9}{'wall s':>8}{'rows/s':>9}"
          f"{'redis MB':>9}{'worker MB':>10}{'api MB':>8}  exact")
    for k in ("small", "big_cancelled", "big", "crash", "real"):
        if k not in r:
            continue
        j, s = r[k], r[k]["samples"]
        print(f"{k:<22}{j['rows']:>10}{j['splits']:>7}{j['submit_s']:>9.3f}{j['wall_s']:>8.1f}"
              f"{j['rows_per_s']:>9.0f}{s['redis_used_memory']['max'] / 1e6:>9.2f}"
              f"{s['worker_rss_mb']['max']:>10.0f}{s['api_rss_mb']['max']:>8.0f}  "
              f"{j.get('counts', {}).get('exact', '-')}")
    print(f"model alone: tiny {r['tiny_limit']['msgs_per_s']:.0f} msgs/s"
          + (f", real {r['real_limit_start']['msgs_per_s']:.0f} (start) / "
             f"{r['real_limit_before_job']['msgs_per_s']:.0f} (before its job) msgs/s"
             if "real_limit" in r else ""))
    print(f"CPU s during the big job: {r['big']['cpu_s']}")
    print(f"stream + parse alone (one split, one thread): {r['parse_alone']}")
    print(f"kill: {r['crash']['kill']}")
    if "big_cancelled" in r:
        print(f"NOTE: {r['big_cancelled']['rows']} rows were estimated at "
              f"{r['big_estimate_s']} s: ran {r['big']['rows']} rows instead")
    for name, value, ok in targets(r):
        print(f"  {'MET ' if ok else 'MISS'}  {name:<40} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--real-rows", type=int, default=200_000)
    parser.add_argument("--fit-minutes", type=float, default=25.0,
                        help="--rows must finish in this (first minute's pace), else ...")
    parser.add_argument("--fallback-rows", type=int, default=2_000_000,
                        help="... the tiny-model jobs use this many rows")
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--tiny-dir", type=Path, default=REPO / "weights" / "tiny")
    parser.add_argument("--skip-real", action="store_true", help="no real-model measurement")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help="torch threads, in-process and in the workers (default cores-1)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/bulk_scale.json"))
    args = parser.parse_args()
    results = run(args)
    write_results(args.out, results)  # the measurements, even if the table below fails
    results["targets"] = [{"target": n, "value": v, "met": ok} for n, v, ok in targets(results)]
    print_table(results)
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
