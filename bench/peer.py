"""spamq against BentoML's adaptive batching serving the same weights, set up fairly.

    make bench-peer [BENCH_ARGS="--seconds 4 --warmup 1 --rounds 1 --no-tune"]
    .venv-peer/bin/python -m bench.peer [--model-dir weights/default] [--seconds 20]
        [--warmup 5] [--rounds 3] [--fresh level|round] [--no-tune | --peer-config JSON]

1. The peer is tuned by its own measurement (bench/peer_tune.py): torch threads, workers,
   TorchScript or eager, and precision, each candidate on a fresh ``bentoml serve``; the
   fastest by req/s at 8 clients serves the comparison.
2. For each round, level (1, 8, 32 clients) and system, a fresh server: spamq as deployed
   (Redis with a password and AOF everysec, gunicorn API with API keys required, a Celery
   worker with the dynamic batcher, spamq's own thread and precision defaults) or the peer.
   Each gets a ``--warmup`` of load at that level, then a ``--seconds`` measured leg. Rounds
   alternate which system goes first (spamq first in round 1, the peer in round 2, ...).
   ``--fresh round`` starts each system once per round instead and runs the levels in
   ascending order on it (shorter; with 20 s legs after a 5 s warm-up still fair).
3. The median over rounds per system and level: req/s, p50, p99, and spamq/BentoML req/s.
   Both sides score the same sample of texts alone; the labels must agree.

Prints the tuning table, every leg, the medians and the peer's settings with the tuning
numbers behind each; writes bench/results/peer.json. BentoML is installed only in .venv-peer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.lib import hardware, require_model, sms_texts, write_results
from bench.peer_stack import (
    PeerConfig,
    Server,
    agreement,
    labels,
    leg,
    peer_server,
    spamq_env,
    spamq_stack,
)
from bench.peer_tune import add_tuning_arguments, print_tuning, tune

SYSTEMS = ("spamq", "BentoML")
LEVELS = (1, 8, 32)


def order(rnd: int) -> tuple[str, ...]:
    """Round 0 runs spamq first, round 1 the peer first, and so on."""
    return SYSTEMS if rnd % 2 == 0 else SYSTEMS[::-1]


def schedule(rounds: int, levels: tuple[int, ...], fresh: str) -> list[tuple[int, str, list[int]]]:
    """(round, system, levels run on one fresh server), in the order they run."""
    out: list[tuple[int, str, list[int]]] = []
    for rnd in range(rounds):
        if fresh == "level":
            out += [(rnd, name, [n]) for n in levels for name in order(rnd)]
        else:
            out += [(rnd, name, list(levels)) for name in order(rnd)]
    return out


def summary(runs: list[dict[str, Any]], levels: tuple[int, ...] = LEVELS) -> list[dict[str, Any]]:
    """Per level: the median over rounds of each system's req/s, p50 and p99, and the ratio."""
    out = []
    for n in levels:
        row: dict[str, Any] = {"clients": n}
        for name in SYSTEMS:
            mine = [x for x in runs if x["system"] == name and x["clients"] == n]
            if not mine:
                break
            row[name] = {k: statistics.median(x[k] for x in mine)
                         for k in ("msgs_per_s", "p50_ms", "p99_ms")}
            row[name]["server_cpu_ms"] = statistics.median(server_cpu_ms(x) for x in mine)
            row[name]["errors"] = sum(x["errors"] for x in mine)
            row[name]["rounds"] = len(mine)
        else:
            row["ratio"] = row["spamq"]["msgs_per_s"] / max(row["BentoML"]["msgs_per_s"], 1e-9)
            row["spamq_ahead"] = row["ratio"] > 1.0
            out.append(row)
    return out


def server_cpu_ms(run: dict[str, Any]) -> float:
    """CPU per request of the serving side's processes (the bench's own clients left out):
    less swayed by other load on the machine than req/s."""
    return sum(v for k, v in run.get("cpu_ms_per_request", {}).items()
               if not k.startswith("bench clients"))


def peer_config(args: argparse.Namespace, texts: list[str]) -> tuple[PeerConfig, dict | None]:
    """The peer's settings: given, tuned here, or (``--no-tune``) all cores in one worker."""
    if args.peer_config:
        return PeerConfig(**json.loads(args.peer_config)), None
    if not args.tune:
        return PeerConfig(threads=os.cpu_count() or 1), None
    t = tune(args.model_dir, texts, clients_n=args.tune_clients, warmup_s=args.tune_warmup,
             seconds=args.tune_seconds, precisions=tuple(args.tune_precisions.split(",")),
             threads=tuple(int(x) for x in args.tune_threads.split(",")),
             cores=os.cpu_count() or 1, repeats=args.tune_repeats)
    return PeerConfig(**t["chosen"]), t


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = sms_texts(args.texts, seed=11)
    sample = sms_texts(args.agree, seed=23)
    config, tuning = peer_config(args, texts)
    base_env = spamq_env(args.model_dir, precision=args.precision, threads=args.threads)
    r: dict[str, Any] = {
        "hardware": hardware(), "model_dir": str(args.model_dir), "python": sys.executable,
        "seconds": args.seconds, "warmup_s": args.warmup, "rounds": args.rounds,
        "fresh": args.fresh, "levels": list(args.levels),
        "spamq": {"settings": {k: v for k, v in base_env.items() if k != "SPAMQ_MODEL_DIR"},
                  "setup": "API keys required (rate limit raised past the bench's rate, still "
                           "checked), Redis with password and AOF everysec"},
        "peer": {"bentoml": bentoml_version(), "config": config.as_dict(),
                 "label": config.label()},
        "tuning": tuning, "note": "2 shared vCPUs: timings are noisy", "runs": []}
    scored: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (rnd, name, levels) in enumerate(schedule(args.rounds, args.levels, args.fresh)):
            with side(name, config, base_env, args.model_dir, Path(tmp) / f"s{k}") as server:
                r[name if name == "spamq" else "peer"]["resolved"] = server.info
                if name not in scored:
                    scored[name] = labels(server, sample)
                for n in levels:
                    print(f"round {rnd + 1}: {name}, {n} client(s) ...", flush=True)
                    res = leg(server, texts, clients_n=n, warmup_s=args.warmup,
                              seconds=args.seconds)
                    r["runs"].append({"round": rnd + 1, "system": name, **res})
    r["agreement"] = agreement(scored["spamq"], scored["BentoML"])
    r["summary"] = summary(r["runs"], tuple(args.levels))
    return r


@contextlib.contextmanager
def side(name: str, config: PeerConfig, base_env: dict[str, str], model_dir: Path,
         work: Path) -> Iterator[Server]:
    print(f"starting {name} ...", flush=True)
    if name == "spamq":
        with spamq_stack(base_env, work) as server:
            yield server
    else:
        with peer_server(config, model_dir, work) as server:
            yield server


def bentoml_version() -> str:
    from importlib.metadata import version

    return version("bentoml")


def print_table(r: dict[str, Any]) -> None:
    print(f"\nhardware: {r['hardware']}  model: {r['model_dir']}  ({r['note']})")
    print(f"spamq: {r['spamq']['setup']}; settings {r['spamq']['settings'] or 'defaults'}; "
          f"loaded {r['spamq'].get('resolved')}")
    print(f"peer: bentoml {r['peer']['bentoml']}, {r['peer']['label']}; "
          f"resolved {r['peer'].get('resolved')}")
    a = r["agreement"]
    print(f"agreement: {a['same_label']}/{a['n']} same labels, max |d p(spam)| "
          f"{a['max_abs_prob_diff']:.4f}")
    print(f"legs: fresh server per {r['fresh']}, {r['warmup_s']:g} s warm-up, "
          f"{r['seconds']:g} s measured, {r['rounds']} alternated round(s)")
    for x in r["runs"]:
        print(f"  round {x['round']} {x['system']:<7} {x['clients']:>2} client(s): "
              f"{x['msgs_per_s']:7.1f} req/s  p50 {x['p50_ms']:7.1f}  p99 {x['p99_ms']:7.1f} ms"
              f"  errors {x['errors']}  CPU ms/request: "
              + ", ".join(f"{k} {v:.2f}" for k, v in x["cpu_ms_per_request"].items()))
    print(f"\nmedian over rounds | {'spamq req/s':>11} {'p50':>7} {'p99':>7} | "
          f"{'BentoML req/s':>13} {'p50':>7} {'p99':>7} | spamq/BentoML | "
          "server CPU ms/request spamq, BentoML")
    for row in r["summary"]:
        s, p = row["spamq"], row["BentoML"]
        print(f"{row['clients']:>7} client(s)  | {s['msgs_per_s']:>11.1f} {s['p50_ms']:>7.1f} "
              f"{s['p99_ms']:>7.1f} | {p['msgs_per_s']:>13.1f} {p['p50_ms']:>7.1f} "
              f"{p['p99_ms']:>7.1f} | {row['ratio']:.2f}x "
              f"{'spamq ahead ' if row['spamq_ahead'] else 'spamq BEHIND'} | "
              f"{s['server_cpu_ms']:.1f}, {p['server_cpu_ms']:.1f}")
    print(f"\npeer settings: {r['peer']['label']}")
    if r["tuning"]:
        t = r["tuning"]
        print(f"  chosen by its own tuning: the most req/s of {len(t['rows'])} configurations "
              f"at {t['clients']} clients (median of {t['repeats']} fresh-server legs each); "
              "against the same settings with one changed:")
        for line in r["tuning"]["why"]:
            print(f"  - {line}")
    else:
        print("  not tuned in this run (--no-tune or --peer-config)")


def arguments() -> argparse.ArgumentParser:
    from spamq.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--texts", type=int, default=3000, help="distinct SMS texts used")
    parser.add_argument("--agree", type=int, default=50,
                        help="texts both sides score alone; their labels are compared")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per leg")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per leg")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument("--levels", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=LEVELS, help="client counts, comma-separated")
    parser.add_argument("--fresh", choices=["level", "round"], default="level",
                        help="a fresh server per leg (level) or per system and round")
    parser.add_argument("--precision", default=None,
                        help="spamq's SPAMQ_PRECISION (default: spamq's own, auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="spamq's SPAMQ_TORCH_THREADS (default: spamq's own)")
    parser.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                        help="tune the peer first (--no-tune: one worker, all cores)")
    parser.add_argument("--peer-config", default=None,
                        help='the peer\'s settings as JSON, e.g. \'{"threads": 2, '
                             '"torchscript": true, "precision": "fp32"}\' (skips tuning)')
    add_tuning_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("bench/results/peer.json"))
    return parser


def main() -> int:
    parser = arguments()
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    try:
        bentoml_version()
    except ImportError:
        parser.error("bentoml is not installed here: run `make bench-peer` (.venv-peer)")
    args.model_dir = args.model_dir.resolve()
    results = run(args)
    if results["tuning"]:
        print_tuning(results["tuning"])
    print_table(results)
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
