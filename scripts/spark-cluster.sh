#!/usr/bin/env bash
# A one-machine Spark standalone cluster (one Master, one Worker, both on 127.0.0.1) from the
# venv's pyspark, for stage 4 runs and tests with RLPAD_SPARK_MASTER=spark://127.0.0.1:PORT.
#
#   scripts/spark-cluster.sh start [--port P] [--webui-port W] [--cores C] [--memory M]
#                                  [--run-dir D] [--timeout S]
#       starts both, waits until the worker registered, prints the master URL on stdout
#       (progress goes to stderr, so MASTER=$(scripts/spark-cluster.sh start) works)
#   scripts/spark-cluster.sh status [--run-dir D]   exit 0 if the master and worker run
#   scripts/spark-cluster.sh stop [--run-dir D]     stops what `start` started (pid files)
#
# Defaults: port 7077, web UI 8080, cores = all, memory 2g, run dir
# ${RLPAD_SPARK_RUN_DIR:-/tmp/rlpad-spark-$(id -u)} (pid files, logs, work dir).
# Python: $RLPAD_PYTHON, else <repo>/.venv/bin/python, else python3. Installs nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

die() { echo "spark-cluster: $*" >&2; exit 1; }
say() { echo "spark-cluster: $*" >&2; }

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

CMD="${1:-}"; [[ -n "$CMD" ]] || usage
shift
PORT=7077; WEBUI=8080; CORES="$(nproc 2>/dev/null || echo 1)"; MEMORY=2g; TIMEOUT=90
RUN_DIR="${RLPAD_SPARK_RUN_DIR:-${TMPDIR:-/tmp}/rlpad-spark-$(id -u)}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --webui-port) WEBUI="${2:?--webui-port needs a value}"; shift 2 ;;
    --cores) CORES="${2:?--cores needs a value}"; shift 2 ;;
    --memory) MEMORY="${2:?--memory needs a value}"; shift 2 ;;
    --run-dir) RUN_DIR="${2:?--run-dir needs a value}"; shift 2 ;;
    --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ && "$WEBUI" =~ ^[0-9]+$ ]] || die "--port and --webui-port must be numbers"
[[ "$CORES" =~ ^[1-9][0-9]*$ ]] || die "--cores must be an integer >= 1"
[[ "$MEMORY" =~ ^[1-9][0-9]*[kmgtKMGT]?$ ]] || die "--memory must look like 512m or 2g"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be seconds"

PY="${RLPAD_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi

# A pid file names our process only while that pid still runs the class we started.
alive() {  # alive NAME CLASS
  local f="$RUN_DIR/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2"
}

master_json() {  # prints the master's /json/ (empty on failure)
  "$PY" - "$1" <<'EOF' 2>/dev/null || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=3).read().decode())
except Exception:
    pass
EOF
}

alive_workers() {  # alive_workers WEBUI_PORT -> number of ALIVE workers (0 if unknown)
  master_json "$1" | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(sum(1 for w in d.get("workers", []) if w.get("state") == "ALIVE"))
except Exception:
    print(0)'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_one() {  # stop_one NAME CLASS
  local f="$RUN_DIR/$1.pid" pid i
  if alive "$1" "$2"; then
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

MASTER_CLASS=org.apache.spark.deploy.master.Master
WORKER_CLASS=org.apache.spark.deploy.worker.Worker

case "$CMD" in
  start)
    command -v java >/dev/null 2>&1 \
      || die "java not found: install a JRE 17: apt-get install -y openjdk-17-jre-headless"
    JV="$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -1)"
    JMAJOR="${JV%%.*}"; [[ "$JMAJOR" == 1 ]] && JMAJOR="$(echo "$JV" | cut -d. -f2)"
    [[ -n "$JMAJOR" && "$JMAJOR" -ge 17 ]] \
      || die "java ${JV:-?} is too old for Spark 4: install a JRE 17: apt-get install -y openjdk-17-jre-headless"
    SPARK_HOME="$("$PY" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" \
      || die "pyspark is not importable by $PY: run ./build.sh (or set RLPAD_PYTHON)"
    [[ -x "$SPARK_HOME/bin/spark-class" ]] || die "$SPARK_HOME/bin/spark-class is missing"
    mkdir -p "$RUN_DIR/work"
    if alive master "$MASTER_CLASS" && alive worker "$WORKER_CLASS"; then
      say "already running (run dir $RUN_DIR); \`$0 stop\` first to restart"
      cat "$RUN_DIR/master.url"; exit 0
    elif alive master "$MASTER_CLASS" || alive worker "$WORKER_CLASS"; then
      die "half running (see \`$0 status --run-dir $RUN_DIR\`): \`$0 stop\` first"
    fi
    port_open "$PORT" && die "port $PORT is in use: pick another with --port"
    port_open "$WEBUI" && die "web UI port $WEBUI is in use: pick another with --webui-port"
    export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1
    # The daemons only schedule; executors get their own memory (--memory).
    export SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-512m}"
    # No REST submission server: it takes unauthenticated jobs and a fixed port (6066).
    export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"
    URL="spark://127.0.0.1:$PORT"
    echo "$URL" >"$RUN_DIR/master.url"; echo "$WEBUI" >"$RUN_DIR/webui.port"
    nohup "$SPARK_HOME/bin/spark-class" "$MASTER_CLASS" --host 127.0.0.1 --port "$PORT" \
      --webui-port "$WEBUI" </dev/null >"$RUN_DIR/master.log" 2>&1 &
    echo $! >"$RUN_DIR/master.pid"   # spark-class execs java, so this is the JVM
    say "master starting (pid $(cat "$RUN_DIR/master.pid"), log $RUN_DIR/master.log)"
    deadline=$((SECONDS + TIMEOUT))
    # The worker can start once the master's RPC port listens (its web UI comes later).
    until port_open "$PORT"; do
      alive master "$MASTER_CLASS" || { tail -n 30 "$RUN_DIR/master.log" >&2; die "master exited"; }
      (( SECONDS < deadline )) || { stop_one master "$MASTER_CLASS"; die "master not up after ${TIMEOUT}s (log $RUN_DIR/master.log)"; }
      sleep 0.5
    done
    nohup "$SPARK_HOME/bin/spark-class" "$WORKER_CLASS" --host 127.0.0.1 --cores "$CORES" \
      --memory "$MEMORY" --webui-port 0 --work-dir "$RUN_DIR/work" "$URL" \
      </dev/null >"$RUN_DIR/worker.log" 2>&1 &
    echo $! >"$RUN_DIR/worker.pid"
    say "worker starting (pid $(cat "$RUN_DIR/worker.pid"), $CORES cores, $MEMORY, log $RUN_DIR/worker.log)"
    until [[ "$(alive_workers "$WEBUI")" -ge 1 ]]; do
      if ! alive worker "$WORKER_CLASS" || (( SECONDS >= deadline )); then
        tail -n 30 "$RUN_DIR/worker.log" >&2
        stop_one worker "$WORKER_CLASS"; stop_one master "$MASTER_CLASS"
        die "worker did not register with $URL (log $RUN_DIR/worker.log)"
      fi
      sleep 0.5
    done
    say "up: $URL (web UI http://127.0.0.1:$WEBUI)"
    echo "$URL"
    ;;
  status)
    rc=0
    if alive master "$MASTER_CLASS"; then
      WEBUI="$(cat "$RUN_DIR/webui.port" 2>/dev/null || echo "$WEBUI")"
      echo "master: running (pid $(cat "$RUN_DIR/master.pid")) at $(cat "$RUN_DIR/master.url"), alive workers: $(alive_workers "$WEBUI")"
    else
      echo "master: not running"; rc=3
    fi
    if alive worker "$WORKER_CLASS"; then
      echo "worker: running (pid $(cat "$RUN_DIR/worker.pid"))"
    else
      echo "worker: not running"; rc=3
    fi
    exit "$rc"
    ;;
  stop)
    stop_one worker "$WORKER_CLASS"
    stop_one master "$MASTER_CLASS"
    ;;
  -h|--help|help) usage 0 ;;
  *) usage ;;
esac
