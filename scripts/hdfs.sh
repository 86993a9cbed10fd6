#!/usr/bin/env bash
# A local single-node HDFS 2.7.3 (NameNode + DataNode + WebHDFS) on loopback, for development and CI.
#
#   scripts/hdfs.sh start    install what is missing, start, wait for a real WebHDFS write+read
#   scripts/hdfs.sh stop     stop both JVMs (data is kept; `start --fresh` wipes it)
#   scripts/hdfs.sh status   exit 0 and print the URL when it is up and answers
#   scripts/hdfs.sh env      print the env file (SPAMQ_HDFS_URL=..., SPAMQ_HDFS_USER=...)
#
# Environment (all optional):
#   SPAMQ_SERVICES_DIR   default <repo>/.services (jar cache and state live under it)
#   SPAMQ_HDFS_DIR       state dir: conf, data, logs, pids, env (default $SPAMQ_SERVICES_DIR/hdfs)
#   SPAMQ_HDFS_JARS_DIR  jar cache (default $SPAMQ_SERVICES_DIR/cache/hadoop-2.7.3-jars)
#   SPAMQ_HDFS_HTTP_PORT / SPAMQ_HDFS_RPC_PORT   NameNode ports (default: free loopback ports)
#   SPAMQ_HDFS_USER      user for WebHDFS (default spamq)
#   SPAMQ_HDFS_READY_TIMEOUT  seconds to wait for readiness (default 90)
#
# Hadoop 2.7.3 jars come from the pyspark==2.4.8 source distribution on PyPI (the only
# registry reachable here); WebHDFS needs Jersey 1 from Debian. See
# /work/shared/notes/real-services.md for why each step is the way it is.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES_DIR=${SPAMQ_SERVICES_DIR:-$REPO/.services}
HDFS_DIR=${SPAMQ_HDFS_DIR:-$SERVICES_DIR/hdfs}
JARS_DIR=${SPAMQ_HDFS_JARS_DIR:-$SERVICES_DIR/cache/hadoop-2.7.3-jars}
HDFS_USER=${SPAMQ_HDFS_USER:-spamq}
READY_TIMEOUT=${SPAMQ_HDFS_READY_TIMEOUT:-90}
if [[ -x $REPO/.venv/bin/python ]]; then PY=$REPO/.venv/bin/python; else PY=$(command -v python3); fi
PIP=("$PY" -m pip)

PYSPARK_SDIST_SHA256=3a19b71b8dc8dd91ebc943604a05e1ab01bce052456d42937035632d852d78dc
JARS=(
  hadoop-hdfs-2.7.3 hadoop-common-2.7.3 hadoop-auth-2.7.3 hadoop-annotations-2.7.3
  guava-14.0.1 protobuf-java-2.5.0 htrace-core-3.1.0-incubating netty-all-4.1.47.Final
  jetty-6.1.26 jetty-util-6.1.26 javax.servlet-api-3.1.0 jackson-core-asl-1.9.13
  jackson-mapper-asl-1.9.13 commons-cli-1.2 commons-codec-1.10 commons-collections-3.2.2
  commons-configuration-1.6 commons-io-2.4 commons-lang-2.6 commons-logging-1.1.3
  log4j-1.2.17 slf4j-api-1.7.16 slf4j-log4j12-1.7.16 xercesImpl-2.9.1 xmlenc-0.52
  httpclient-4.5.6 httpcore-4.4.10 jaxb-api-2.2.2 activation-1.1.1 javax.annotation-api-1.2
)
JERSEY_JARS=(jersey1-core jersey1-server jersey1-servlet jsr311-api)
JVM_OPTS=(-Xms32m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -XX:ReservedCodeCacheSize=32m -Djava.net.preferIPv4Stack=true)

log() { printf '[hdfs.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
# phase NAME CMD...: run CMD and report how long it took.
phase() {
  local name=$1 t0 t1; shift
  t0=$(now); "$@"; t1=$(now)
  log "$(awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN{printf "phase %-10s %6.1f s", n, b-a}')"
}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
    { as_root apt-get update -q >&2 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; }
}

install_system() {
  local pkgs=()
  command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
  local j; for j in "${JERSEY_JARS[@]}"; do
    [[ -f /usr/share/java/$j.jar ]] || { pkgs+=(libjersey1-servlet-java); break; }
  done
  if ((${#pkgs[@]})); then log "apt-get install ${pkgs[*]}"; apt_install "${pkgs[@]}"; fi
}

install_jars() {
  [[ -f $JARS_DIR/.complete ]] && return 0
  local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/spamq-hdfs-dl.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  log "downloading pyspark==2.4.8 sdist (~220 MB) for its Hadoop 2.7.3 jars"
  echo 'pypandoc<1.8' >"$tmp/constraints.txt"
  PIP_CONSTRAINT=$tmp/constraints.txt PIP_BUILD_CONSTRAINT=$tmp/constraints.txt \
    "${PIP[@]}" download -q --no-cache-dir --no-deps --no-binary :all: -d "$tmp" pyspark==2.4.8 >&2
  local tarball=$tmp/pyspark-2.4.8.tar.gz
  [[ -f $tarball ]] || die "pip download did not produce $tarball"
  echo "$PYSPARK_SDIST_SHA256  $tarball" | sha256sum -c --quiet - || die "pyspark sdist sha256 mismatch"
  local members=() j; for j in "${JARS[@]}"; do members+=("pyspark-2.4.8/deps/jars/$j.jar"); done
  tar -xzf "$tarball" -C "$tmp" "${members[@]}"
  rm -f "$tarball"
  mkdir -p "$JARS_DIR"
  mv "$tmp"/pyspark-2.4.8/deps/jars/*.jar "$JARS_DIR"/
  touch "$JARS_DIR/.complete"
  log "jars cached in $JARS_DIR ($(du -sh "$JARS_DIR" | cut -f1))"
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

prop() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

write_conf() {
  local conf=$HDFS_DIR/conf w
  mkdir -p "$conf" "$HDFS_DIR/data/name" "$HDFS_DIR/data/data" "$HDFS_DIR/logs" "$HDFS_DIR/tmp"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop fs.defaultFS "hdfs://127.0.0.1:$RPC_PORT"
    prop hadoop.tmp.dir "$HDFS_DIR/tmp"
    echo '</configuration>'
  } >"$conf/core-site.xml"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop dfs.replication 1
    prop dfs.webhdfs.enabled true
    prop dfs.permissions.enabled false
    prop dfs.namenode.name.dir "file://$HDFS_DIR/data/name"
    prop dfs.datanode.data.dir "file://$HDFS_DIR/data/data"
    prop dfs.namenode.rpc-address "127.0.0.1:$RPC_PORT"
    prop dfs.namenode.http-address "127.0.0.1:$HTTP_PORT"
    prop dfs.namenode.https-address 127.0.0.1:0
    prop dfs.namenode.secondary.http-address 127.0.0.1:0
    # Ephemeral DataNode ports: it registers the ports it actually bound.
    prop dfs.datanode.address 127.0.0.1:0
    prop dfs.datanode.http.address 127.0.0.1:0
    prop dfs.datanode.https.address 127.0.0.1:0
    prop dfs.datanode.ipc.address 127.0.0.1:0
    # WebHDFS redirects reads/writes to the DataNode under this name.
    prop dfs.datanode.hostname 127.0.0.1
    prop dfs.namenode.datanode.registration.ip-hostname-check false
    prop dfs.namenode.safemode.extension 0
    prop dfs.heartbeat.interval 1
    echo '</configuration>'
  } >"$conf/hdfs-site.xml"
  cat >"$conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
EOF
  # The embedded HTTP server wants these on the classpath; empty web apps are enough for WebHDFS.
  for w in hdfs datanode secondary static; do
    mkdir -p "$conf/webapps/$w/WEB-INF"
    echo '<web-app/>' >"$conf/webapps/$w/WEB-INF/web.xml"
  done
}

classpath() {
  local cp=$HDFS_DIR/conf j
  for j in "${JARS[@]}"; do cp+=":$JARS_DIR/$j.jar"; done
  for j in "${JERSEY_JARS[@]}"; do cp+=":/usr/share/java/$j.jar"; done
  echo "$cp"
}

run_java() { java "${JVM_OPTS[@]}" -Dhadoop.log.dir="$HDFS_DIR/logs" -cp "$(classpath)" "$@"; }

format() {
  # Format once; the DataNode's storage carries the cluster id, so it goes with a reformat.
  [[ -f $HDFS_DIR/data/name/current/VERSION ]] && return 0
  rm -rf "$HDFS_DIR/data/data" && mkdir -p "$HDFS_DIR/data/data"
  run_java org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive \
    >"$HDFS_DIR/logs/format.log" 2>&1 || { tail -n 30 "$HDFS_DIR/logs/format.log" >&2; die "format failed"; }
}

alive() { [[ -f $HDFS_DIR/$1.pid ]] && kill -0 "$(cat "$HDFS_DIR/$1.pid")" 2>/dev/null; }

launch() {
  local role=$1 cls=$2
  # setsid: the JVM outlives the shell (and the test process) that started it.
  setsid nohup java "${JVM_OPTS[@]}" -Dhadoop.log.dir="$HDFS_DIR/logs" -cp "$(classpath)" "$cls" \
    >"$HDFS_DIR/logs/$role.log" 2>&1 </dev/null &
  echo $! >"$HDFS_DIR/$role.pid"
}

start_daemons() {
  launch namenode org.apache.hadoop.hdfs.server.namenode.NameNode
  launch datanode org.apache.hadoop.hdfs.server.datanode.DataNode
}

# A real WebHDFS write then read through the DataNode; a port answering is not enough.
webhdfs_roundtrip() {
  local url=$1 timeout=${2:-5}
  "$PY" - "$url" "$HDFS_USER" "$timeout" <<'EOF'
import sys, time, urllib.request, urllib.error
base, user, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
path = f"{base}/webhdfs/v1/tmp/.spamq-ready"
payload = str(time.time()).encode()

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

opener = urllib.request.build_opener(NoRedirect)
def call(method, url, data=None):
    try:
        return opener.open(urllib.request.Request(url, data=data, method=method), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in (307, 302):
            return exc
        raise

r = call("PUT", f"{path}?op=CREATE&overwrite=true&user.name={user}")
loc = r.headers["Location"]
r = call("PUT", loc, payload)
assert r.status == 201, r.status
r = call("GET", f"{path}?op=OPEN&user.name={user}")
got = urllib.request.urlopen(r.headers["Location"], timeout=timeout).read()
assert got == payload, (got, payload)
EOF
}

wait_ready() {
  local url=$1 deadline=$((SECONDS + READY_TIMEOUT)) r
  until webhdfs_roundtrip "$url" 3 2>/dev/null; do
    for r in namenode datanode; do
      alive "$r" || { tail -n 40 "$HDFS_DIR/logs/$r.log" >&2; die "$r exited; log: $HDFS_DIR/logs/$r.log"; }
    done
    ((SECONDS < deadline)) || die "not ready after ${READY_TIMEOUT}s; logs in $HDFS_DIR/logs"
    sleep 0.5
  done
}

write_env() {
  {
    echo "SPAMQ_HDFS_URL=http://127.0.0.1:$HTTP_PORT"
    echo "SPAMQ_HDFS_USER=$HDFS_USER"
    echo "SPAMQ_HDFS_RPC=hdfs://127.0.0.1:$RPC_PORT"
  } >"$HDFS_DIR/env.tmp"
  mv "$HDFS_DIR/env.tmp" "$HDFS_DIR/env"
}

current_url() { [[ -f $HDFS_DIR/env ]] && sed -n 's/^SPAMQ_HDFS_URL=//p' "$HDFS_DIR/env"; }

cmd_status() {
  local url
  if alive namenode && alive datanode && url=$(current_url) && webhdfs_roundtrip "$url" 5 2>/dev/null; then
    echo "running: $url"; return 0
  fi
  echo "not running"; return 1
}

cmd_stop() {
  local r pid pids=()
  for r in datanode namenode; do  # signal both, then wait: shutdown hooks run in parallel
    if alive "$r"; then pid=$(cat "$HDFS_DIR/$r.pid"); kill "$pid"; pids+=("$pid"); log "stopping $r ($pid)"; fi
    rm -f "$HDFS_DIR/$r.pid"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  done
  return 0
}

cmd_start() {
  local t0; t0=$(now)
  if [[ ${1:-} == --fresh ]]; then cmd_stop; rm -rf "$HDFS_DIR/data"; fi
  if cmd_status >/dev/null; then log "already running"; cat "$HDFS_DIR/env"; return 0; fi
  cmd_stop  # half-started leftovers
  mkdir -p "$HDFS_DIR"
  phase install-os install_system
  phase jars install_jars
  RPC_PORT=${SPAMQ_HDFS_RPC_PORT:-$(free_port)}
  HTTP_PORT=${SPAMQ_HDFS_HTTP_PORT:-$(free_port)}
  write_conf
  phase format format
  phase launch start_daemons
  phase ready wait_ready "http://127.0.0.1:$HTTP_PORT"
  write_env
  log "$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "up in %.1f s", b-a}'); env file $HDFS_DIR/env"
  cat "$HDFS_DIR/env"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) [[ -f $HDFS_DIR/env ]] || die "no env file; run: $0 start"; cat "$HDFS_DIR/env" ;;
  *) echo "usage: $0 start [--fresh]|stop|status|env" >&2; exit 2 ;;
esac
