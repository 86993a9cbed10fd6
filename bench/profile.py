"""Where the CPU of the interactive path goes: py-spy samples the API and the worker while
``--clients`` clients POST one text at a time to /v1/predict (the bench's client loop).

    .venv/bin/pip install py-spy   # a profiling tool, not a dependency of the service
    .venv/bin/python -m bench.profile [--clients 32] [--seconds 20] [--threads 1]

Prints, per process group, the functions with the largest share of samples (inclusive: the
function or anything it called), and writes the collapsed stacks beside the results
(bench/results/profile-<process>.txt, the input of any flame-graph tool).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.__main__ import clients, cpu_profile
from bench.lib import add_serving_arguments, require_model, sms_texts
from scripts.local_services import start_api, start_redis, start_worker

RESULTS = Path(__file__).parent / "results"


def _record(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--duration", str(int(seconds)),
         "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(collapsed: Path, top: int = 25) -> list[tuple[str, float]]:
    """(frame, inclusive share of the active samples), the largest first. Idle frames
    (waiting on a socket, a lock or a condition) are left out of the total."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    idle = ("wait (threading", "select (", "poll (", "_wait_for_tstate_lock", "epoll",
            "sleep (", "_recv_into", "recv_into", "readinto (socket", "brpop", "accept (")
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or any(marker in frames[-1] for marker in idle):
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
    return [(frame, n / max(total, 1)) for frame, n in inclusive.most_common(top)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_serving_arguments(parser, seconds_help="seconds of load (and of sampling)",
                          threads_help="torch threads in the worker")
    parser.add_argument("--clients", type=int, default=32)
    parser.set_defaults(seconds=20.0)
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    texts = sms_texts(args.texts, seed=11)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_proc, redis_url = start_redis(work / "redis")
        env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(args.model_dir),
               "SPAMQ_API_THREADS": "32", "SPAMQ_TORCH_THREADS": str(args.threads),
               "SPAMQ_AUTH_REQUIRED": "false"}
        if args.precision:
            env["SPAMQ_PRECISION"] = args.precision
        api, base = start_api(env, log=work / "api.log")
        worker = start_worker(env, log=work / "worker.log", timeout=300)
        try:
            clients(base, texts, n=8, seconds=2.0)  # warm connections and caches
            procs = {"api": api.proc.pid, "worker": worker.proc.pid}
            recorders = {name: _record(pid, args.seconds, RESULTS / f"profile-{name}.txt")
                         for name, pid in procs.items()}
            r, cpu = cpu_profile(
                {**procs, "redis": redis_proc.proc.pid},
                lambda: clients(base, texts, n=args.clients, seconds=args.seconds))
            for rec in recorders.values():
                rec.wait(60)
        finally:
            worker.stop()
            api.stop()
            redis_proc.stop()
    done = r["msgs_per_s"] * args.seconds
    print(f"{args.clients} clients: {r['msgs_per_s']:.1f} req/s, p50 {r['p50_ms']:.1f} ms")
    print("CPU ms per request: " + ", ".join(f"{k} {v * 1000 / done:.2f}" for k, v in cpu.items()))
    for name in procs:
        print(f"\n--- {name}: inclusive share of active samples ---")
        for frame, share in summarize(RESULTS / f"profile-{name}.txt"):
            print(f"{share:6.1%}  {frame[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
