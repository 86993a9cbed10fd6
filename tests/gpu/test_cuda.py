"""CUDA checks, run on a GPU machine by scripts/gpu-check.sh (not part of `make test`:
CI machines have no GPU). SPAMQ_GPU_MODEL_DIR names a trained model directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from worker.batcher import Batcher
from worker.gpu import fit_batch_to_gpu
from worker.runner import BatchClassifier

TEXTS = ["WINNER!! claim your free prize, call 09061701461 now", "see you at 5 at the station",
         "ok lar", "URGENT your mobile number has won 2000 pounds, txt CLAIM to 81010"] * 16


@pytest.fixture(scope="module")
def model_dir() -> Path:
    assert torch.cuda.is_available(), "this suite is for a machine with a CUDA GPU"
    return Path(os.environ["SPAMQ_GPU_MODEL_DIR"])


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-3), ("bf16", 0.03)])
def test_cuda_scores_match_the_cpu(model_dir, precision, tolerance):
    cpu = BatchClassifier(model_dir, device="cpu").predict(TEXTS)
    gpu_runner = BatchClassifier(model_dir, device="cuda", precision=precision)
    assert gpu_runner.device.type == "cuda"
    gpu = gpu_runner.predict(TEXTS)
    diffs = [abs(a.spam_probability - b.spam_probability) for a, b in zip(cpu, gpu, strict=True)]
    print(f"{precision}: max |p_cpu - p_gpu| = {max(diffs):.2e}")
    assert max(diffs) <= tolerance
    flips = sum(a.label != b.label for a, b in zip(cpu, gpu, strict=True))
    assert flips <= (0 if precision == "fp32" else 1)


def test_batch_fit_to_gpu_memory_and_batcher_threads(model_dir):
    runner = BatchClassifier(model_dir, device="cuda", precision="bf16")
    max_tokens, max_rows = fit_batch_to_gpu(runner)
    print(f"fit: {max_rows} rows, {max_tokens} tokens per pass")
    assert max_rows >= 64 and max_tokens == max_rows * runner.max_length
    batcher = Batcher(lambda: runner, max_batch_tokens=max_tokens, max_batch_size=max_rows)
    results: dict[int, list] = {}

    def client(i: int) -> None:  # a threads-pool worker: many submitters, one CUDA owner
        results[i] = batcher.submit([TEXTS[i % len(TEXTS)]]).result(timeout=60)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 64
    assert batcher.stats.max_rows > 1  # the passes were shared
