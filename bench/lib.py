"""What the benchmarks share (and only they: tests/ never import bench/): the real SMS length
mix, a model's data split, percentiles, the hardware, a results file, the serving arguments."""

from __future__ import annotations

import csv
import json
import platform
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from spamq.settings import Settings


def sms_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` texts drawn from the shared SMS data: the real length mix."""
    with open(Settings().data_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    rng = random.Random(seed)
    return [rng.choice(rows)[1] for _ in range(n)]


def split_of(model_dir: Path, data_path: Path, name: str) -> tuple[list[str], list[int]]:
    """Texts and labels of one split (train/validation/test) of a model, rebuilt from the
    split record in its manifest."""
    from spamq.training.data import read_tsv, split

    record = json.loads((model_dir / "manifest.json").read_text())["split"]
    splits = split(read_tsv(data_path), seed=record["seed"], limit=record.get("limit"),
                   validation_size=record["fractions"]["validation"],
                   test_size=record["fractions"]["test"])
    rows = getattr(splits, name)
    return [e.text for e in rows], [e.label for e in rows]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": q[49], "p95_ms": q[94], "p99_ms": q[98], "mean_ms": statistics.fmean(ms),
            "n": len(ms)}


def hardware() -> dict[str, Any]:
    import os

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    found = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        if torch.cuda.is_available():
            found["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # an API-only environment
        pass
    return found


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def add_serving_arguments(parser: Any, *, seconds_help: str, threads_help: str,
                          precision_help: str | None = None) -> None:
    """The arguments every serving benchmark shares: model, precision, texts, seconds, threads."""
    import os

    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--precision",
                        choices=["auto", "fp32", "bf16", "int8", "fp16w", "bf16mm", "int8row"],
                        default=None, help=precision_help)
    parser.add_argument("--texts", type=int, default=3000, help="distinct SMS texts used")
    parser.add_argument("--seconds", type=float, default=4.0, help=seconds_help)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help=threads_help)


def serving_env(redis_url: str, model_dir: Path, precision: str, threads: int) -> dict[str, str]:
    """The API's and worker's env for the 32-client serving legs."""
    return {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(model_dir),
            "SPAMQ_PRECISION": precision, "SPAMQ_API_THREADS": "32",
            "SPAMQ_WORKER_HEARTBEAT_S": "0.5", "SPAMQ_TORCH_THREADS": str(threads),
            # loopback only; per-key rate limits would throttle the 32-client runs
            "SPAMQ_AUTH_REQUIRED": "false"}


def model_or_tiny(model_dir: Path, work: Path) -> Path:
    """``model_dir`` if it holds a model, else a tiny one trained into ``work``: a probe of
    the service, not of the model, runs on a fresh clone too."""
    if (model_dir / "manifest.json").exists():
        return model_dir
    tiny = work / "tiny-model"
    print(f"no model in {model_dir}: training a tiny one in {tiny}")
    subprocess.run([sys.executable, "-m", "spamq.cli", "train", "--from-scratch",
                    "--out", str(tiny)], check=True, cwd=Path(__file__).resolve().parents[1])
    return tiny


def require_model(parser: Any, model_dir: Path) -> None:
    if not (model_dir / "manifest.json").exists():
        parser.error(f"no model in {model_dir}: run `spamq train` (or pass --model-dir)")
