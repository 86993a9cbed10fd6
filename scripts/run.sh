#!/usr/bin/env bash
# `make run`: run spamq on embedded defaults. Starts a local Redis when SPAMQ_REDIS_URL is
# unset, trains the default model when none is present, starts a worker and the API,
# the webhook deliverer, then scores the sample messages through the job API. Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN=run
mkdir -p "$RUN"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ready() { $PY -c 'import sys,urllib.request as u; u.urlopen(sys.argv[1] + "/readyz", timeout=2)' "$1" 2>/dev/null; }
free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

if [ -z "${SPAMQ_REDIS_URL:-}" ]; then
  port=6379
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then port=$(free_port); fi
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/$RUN" --appendonly yes \
    --save "" >"$RUN/redis.log" 2>&1 &
  pids+=($!)
  export SPAMQ_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "started a local Redis at $SPAMQ_REDIS_URL (log: $RUN/redis.log)"
fi

# API keys: every endpoint but health, readiness, / and /openapi.json needs one. With none
# configured, issue a dev key for this run: the API holds only its sha256, the demo sends it.
if [ -z "${SPAMQ_API_KEYS:-}" ] && [ -z "${SPAMQ_VAULT_ADDR:-}" ]; then
  SPAMQ_CLIENT_API_KEY=${SPAMQ_CLIENT_API_KEY:-$($PY -c 'import secrets; print(secrets.token_urlsafe(32))')}
  export SPAMQ_CLIENT_API_KEY
  export SPAMQ_API_KEYS=$($PY -c 'import sys; from api.auth import hash_key; print(hash_key(sys.argv[1]))' "$SPAMQ_CLIENT_API_KEY")
  echo "dev API key for this run (send as X-API-Key, or paste into the page): $SPAMQ_CLIENT_API_KEY"
  echo "its store area (hdfs_input/hdfs_output paths): tenants/$($PY -c 'import sys; from api.auth import hash_key, key_id; print(key_id(hash_key(sys.argv[1])))' "$SPAMQ_CLIENT_API_KEY")/"
fi
# /metrics takes the operator's own credential, never an API key.
if [ -z "${SPAMQ_METRICS_TOKEN:-}" ] && [ -z "${SPAMQ_VAULT_ADDR:-}" ]; then
  SPAMQ_METRICS_TOKEN=$($PY -c 'import secrets; print(secrets.token_urlsafe(32))')
  export SPAMQ_METRICS_TOKEN
  echo "metrics token for this run (Authorization: Bearer ...): $SPAMQ_METRICS_TOKEN"
fi

model_dir=$($PY -c 'from spamq.settings import get_settings; print(get_settings().model_dir)')
if [ ! -f "$model_dir/manifest.json" ]; then
  echo "no model in $model_dir: training the default model (a few minutes on 2 cores)..."
  $PY -m spamq.cli train --out "$model_dir"
fi

$PY -m spamq.cli worker >"$RUN/worker.log" 2>&1 &
pids+=($!)
$PY -m spamq.cli api >"$RUN/api.log" 2>&1 &
pids+=($!)
$PY -m spamq.cli webhooks deliver >"$RUN/webhooks.log" 2>&1 &
pids+=($!)

api=$($PY -c 'from spamq.settings import get_settings as g; s=g(); print(f"http://{s.api_host}:{s.api_port}")')
echo "waiting for the worker to load the model and the API to answer at $api ..."
for _ in $(seq 1 300); do
  if ready "$api"; then break; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited; see $RUN/*.log" >&2; tail -20 "$RUN"/*.log >&2; exit 1; }
  done
  sleep 1
done
ready "$api" || { echo "not ready after 300 s; see $RUN/*.log" >&2; exit 1; }

cat <<INFO
spamq is running:
  API          $api        (POST /v1/jobs, GET /v1/jobs/<id>, POST /v1/predict, GET /predict)
  health       $api/healthz   readiness $api/readyz
  webhooks     the deliverer posts job events to the URLs jobs name (README, "Webhooks")
  logs         $RUN/worker.log  $RUN/api.log  $RUN/webhooks.log
INFO
$PY -m spamq.cli demo --url "$api"
echo "Press Ctrl-C to stop."
wait
