"""The raw limit and in-process bulk throughput on a CUDA GPU (run by scripts/gpu-check.sh).

    python3 -m bench.gpu_limit --model-dir DIR --texts-file TEXTS [--out gpu_limit.json]

(1) the runner alone over length-sorted passes sized to GPU memory, fp32 and bf16;
(2') bulk through the worker's in-process batcher: 256-text chunks submitted from 8 threads
at once, as a threads-pool worker does (no Redis here: the GPU machine has none).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from bench.__main__ import GPU_PASS, model_limit


def batcher_bulk(model_dir: Path, texts: list[str], *, precision: str) -> float:
    from worker.batcher import Batcher
    from worker.gpu import fit_batch_to_gpu
    from worker.runner import BatchClassifier

    runner = BatchClassifier(model_dir, device="cuda", precision=precision)
    runner.warm_up()
    tokens, rows = fit_batch_to_gpu(runner)
    batcher = Batcher(lambda: runner, max_batch_tokens=tokens, max_batch_size=rows)
    chunks = [texts[i:i + 256] for i in range(0, len(texts), 256)]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop()
            batcher.submit(chunk, interactive=False).result(timeout=300)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(texts) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--texts-file", type=Path, required=True, help="one SMS per line")
    parser.add_argument("--out", type=Path, default=Path("gpu_limit.json"))
    args = parser.parse_args()
    import torch

    texts = [t for t in args.texts_file.read_text().splitlines() if t.strip()]
    results: dict = {"gpu": torch.cuda.get_device_name(0), "n_texts": len(texts)}
    for precision in ("fp32", "bf16"):
        limit = model_limit(args.model_dir, texts, precision=precision, threads=4,
                            device="cuda", **GPU_PASS)
        results[f"limit_{precision}_msgs_per_s"] = limit["msgs_per_s"]
        results[f"batch1_{precision}_p50_ms"] = limit["batch1"]["p50_ms"]
        results[f"batcher_bulk_{precision}_msgs_per_s"] = batcher_bulk(
            args.model_dir, texts, precision=precision)
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
