"""The peer at its best, chosen by its own measurement on this machine.

    .venv-peer/bin/python -m bench.peer_tune [--model-dir DIR] [--seconds 10] [--warmup 3]

Each candidate way of running BentoML (bench/peer_stack.py's ``PeerConfig``) gets a fresh
``bentoml serve``, a warm-up, then one measured leg at ``--clients`` clients; the fastest by
req/s wins. The grid: torch threads 1 and 2 (one worker: BentoML runs HTTP, the batcher and
the model in that process), TorchScript or eager, precision fp32 or bf16mm (what spamq's
``auto`` picks on a CPU with bf16 dot products, as this one; named, not ``auto``, because the
start-up probe behind ``auto`` can land on either under load), then the winner's precision and
forward pass with 2 workers x 1 thread. ``--tune-repeats`` passes over the grid (default 2, so
a burst of load on a shared machine hits one leg of a configuration, not its only one); each
configuration is scored by its median req/s.
max_batch_size stays 32: at 32 clients or fewer the dispatcher never gathers more; a lower
max_latency_ms only makes it cancel requests (503) sooner, it does not shorten its hold.
``bench.peer`` runs this first (``--tune``) and records the table in bench/results/peer.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.lib import require_model, sms_texts
from bench.peer_stack import PeerConfig, leg, peer_server

DEFAULT_PRECISIONS = ("fp32", "bf16mm")


def first_grid(precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
               threads: tuple[int, ...] = (1, 2)) -> list[PeerConfig]:
    """One worker: every torch thread count, TorchScript or eager, and precision."""
    return [PeerConfig(threads=t, torchscript=ts, precision=p)
            for t in threads for ts in (True, False) for p in precisions]


def second_grid(best: PeerConfig, cores: int) -> list[PeerConfig]:
    """The winner's forward pass and precision in ``cores`` workers of one thread each, unless
    that is what already ran."""
    if cores < 2:
        return []
    candidate = replace(best, workers=cores, threads=1)
    return [] if candidate == best else [candidate]


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The measured row with the most req/s among those without errors (or, should every
    row have errors, the fewest errors, then the most req/s)."""
    if not rows:
        raise ValueError("no peer configuration was measured")
    return max(rows, key=lambda r: (-r["errors"], r["msgs_per_s"]))


def measure(config: PeerConfig, model_dir: Path, texts: list[str], *, clients_n: int,
            warmup_s: float, seconds: float, work: Path) -> dict[str, Any]:
    """One fresh server for ``config``: warm-up, then one measured leg."""
    print(f"tune: {config.label()} ...", flush=True)
    with peer_server(config, model_dir, work) as server:
        res = leg(server, texts, clients_n=clients_n, warmup_s=warmup_s, seconds=seconds)
    return {"resolved": server.info, **{k: res[k] for k in (
        "msgs_per_s", "p50_ms", "p99_ms", "errors", "cpu_ms_per_request")}}


def combine(config: PeerConfig, legs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's row: the median of its legs' req/s, p50 and p99, all errors."""
    return {"config": config.as_dict(), "label": config.label(),
            "resolved": legs[-1]["resolved"], "legs": legs,
            **{k: statistics.median(x[k] for x in legs)
               for k in ("msgs_per_s", "p50_ms", "p99_ms")},
            "errors": sum(x["errors"] for x in legs)}


def measure_all(configs: list[PeerConfig], model_dir: Path, texts: list[str], *, repeats: int,
                work: Path, **leg_args: Any) -> list[dict[str, Any]]:
    """Every configuration ``repeats`` times, in passes over the whole list."""
    legs: dict[PeerConfig, list[dict[str, Any]]] = {c: [] for c in configs}
    for rep in range(repeats):
        for k, config in enumerate(configs):
            legs[config].append(measure(config, model_dir, texts, work=work / f"r{rep}c{k}",
                                        **leg_args))
    return [combine(c, found) for c, found in legs.items()]


def tune(model_dir: Path, texts: list[str], *, clients_n: int = 8, warmup_s: float = 3.0,
         seconds: float = 10.0, precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
         threads: tuple[int, ...] = (1, 2), cores: int = 2, repeats: int = 2) -> dict[str, Any]:
    """The tuning table and the chosen configuration."""
    leg_args = {"clients_n": clients_n, "warmup_s": warmup_s, "seconds": seconds,
                "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure_all(first_grid(precisions, threads), model_dir, texts,
                           work=Path(tmp) / "first", **leg_args)
        best = PeerConfig(**best_of(rows)["config"])
        rows += measure_all(second_grid(best, cores), model_dir, texts,
                            work=Path(tmp) / "second", **leg_args)
    chosen = best_of(rows)
    return {"clients": clients_n, "warmup_s": warmup_s, "seconds": seconds, "repeats": repeats,
            "rows": rows, "chosen": chosen["config"], "chosen_label": chosen["label"],
            "why": reasons(rows, PeerConfig(**chosen["config"]))}


def reasons(rows: list[dict[str, Any]], chosen: PeerConfig) -> list[str]:
    """Per setting of the chosen configuration: its req/s against the same configuration with
    only that setting changed, where that was measured."""
    by_config = {PeerConfig(**r["config"]): r for r in rows}
    mine = by_config[chosen]["msgs_per_s"]
    out = []
    for field in ("threads", "workers", "torchscript", "precision"):
        others = [(c, r) for c, r in by_config.items() if c != chosen
                  and _only_difference(c, chosen) == field]
        for other, r in others:
            out.append(f"{field} {_value(chosen, field)} over {_value(other, field)}: "
                       f"{mine:.1f} vs {r['msgs_per_s']:.1f} req/s "
                       f"({mine / max(r['msgs_per_s'], 1e-9):.2f}x)")
    return out


def _value(config: PeerConfig, field: str) -> str:
    if field == "torchscript":
        return "TorchScript" if config.torchscript else "eager"
    if field == "precision":
        return config.precision
    if field in ("threads", "workers"):
        return f"{config.workers}w x {config.threads}t"
    return str(getattr(config, field))


def _only_difference(a: PeerConfig, b: PeerConfig) -> str | None:
    """The one setting in which two configurations differ (workers x threads count as one)."""
    differ = {k for k, v in a.as_dict().items() if v != b.as_dict()[k]}
    if differ in ({"threads"}, {"workers"}, {"threads", "workers"}):
        return "threads" if "workers" not in differ else "workers"
    return differ.pop() if len(differ) == 1 else None


def print_tuning(t: dict[str, Any]) -> None:
    print(f"\npeer tuning: a fresh server per leg, {t['warmup_s']:g} s warm-up, "
          f"{t['seconds']:g} s at {t['clients']} clients, median of {t['repeats']} leg(s) "
          f"per configuration (req/s of each leg in brackets)")
    print(f"{'configuration':<52} {'resolved precision':>18} {'req/s':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}")
    for r in t["rows"]:
        mark = "  <- chosen" if r["config"] == t["chosen"] else ""
        print(f"{r['label']:<52} {r['resolved'].get('precision', '?'):>18} "
              f"{r['msgs_per_s']:>7.1f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{r['errors']:>6}  ["
              + ", ".join(f"{x['msgs_per_s']:.1f}" for x in r["legs"]) + f"]{mark}")
    for line in t["why"]:
        print(f"  why: {line}")


def add_tuning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tune-clients", type=int, default=8, help="clients per tuning leg")
    parser.add_argument("--tune-seconds", type=float, default=10.0,
                        help="measured seconds per tuning leg")
    parser.add_argument("--tune-warmup", type=float, default=3.0,
                        help="warm-up seconds per tuning leg")
    parser.add_argument("--tune-precisions", default=",".join(DEFAULT_PRECISIONS),
                        help="peer precisions tried (comma-separated spamq precisions)")
    parser.add_argument("--tune-repeats", type=int, default=2,
                        help="passes over the tuning grid (median per configuration)")
    parser.add_argument("--tune-threads", default="1,2",
                        help="torch thread counts tried in one worker (comma-separated)")


def main() -> int:
    import os

    from bench.lib import write_results
    from spamq.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--texts", type=int, default=3000, help="distinct SMS texts used")
    add_tuning_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("bench/results/peer_tune.json"))
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    t = tune(args.model_dir.resolve(), sms_texts(args.texts, seed=11),
             clients_n=args.tune_clients, warmup_s=args.tune_warmup, seconds=args.tune_seconds,
             precisions=tuple(args.tune_precisions.split(",")),
             threads=tuple(int(x) for x in args.tune_threads.split(",")),
             cores=os.cpu_count() or 1, repeats=args.tune_repeats)
    print_tuning(t)
    write_results(args.out, t)
    print(f"written to {args.out}; chosen: {json.dumps(t['chosen'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
