#!/usr/bin/env bash
# One short run on a GPU machine (the device tool's run, from the repo root): the CUDA tests
# and the raw-limit throughput on CUDA, results under $OUT. The GPU machine has PyTorch and
# transformers but no registry access, so the model travels as a carried folder:
#   here:   .venv/bin/python -m spamq.cli train --from-scratch --out .gpu/model --no-progress
#           .venv/bin/python -c 'from bench.common import sms_texts; print("\n".join(
#               t.replace("\n", " ") for t in sms_texts(20000)))' > .gpu/texts.txt
#           echo /.gpu/ >> .git/info/exclude
#   device: run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=480)
set -euo pipefail
export SPAMQ_GPU_MODEL_DIR=${SPAMQ_GPU_MODEL_DIR:-.gpu/model} PYTHONPATH=$PWD
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest tests/gpu -q -s -p no:cacheprovider -o addopts="" 2>&1 | tee "$OUT/tests.txt"
python3 -m bench.gpu_limit --model-dir "$SPAMQ_GPU_MODEL_DIR" --texts-file .gpu/texts.txt \
  --out "$OUT/gpu_limit.json" \
  2>&1 | tee "$OUT/bench.txt"
