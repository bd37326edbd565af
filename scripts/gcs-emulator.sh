#!/usr/bin/env bash
# A local, in-memory Google Cloud Storage emulator on 127.0.0.1 for trying gs:// stores
# without a cloud account (and for tests). Data lives only as long as the process.
#
#   eval "$(scripts/gcs-emulator.sh start --bucket rlpad)"   # prints the exports to use
#   RLPAD_STORE=gs://rlpad/runs bash 1-initial-fit.sh
#   scripts/gcs-emulator.sh stop
#
# start [--port P] [--bucket B] [--pidfile F]   P defaults to a free port; B is created
# stop  [--pidfile F]                           stops only the pid recorded at start
# status [--pidfile F]
# The pid file defaults to ${TMPDIR:-/tmp}/rlpad-gcs-emulator.pid; the port is kept in F.port
# and the emulator's log in F.log. Informational lines go to stderr, exports to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
if [[ "$cmd" == "-h" || "$cmd" == "--help" || "$cmd" == "help" ]]; then
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

port=""
bucket=""
pidfile="${TMPDIR:-/tmp}/rlpad-gcs-emulator.pid"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --bucket) bucket="$2"; shift 2 ;;
    --pidfile) pidfile="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gcs-emulator: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The project's venv first (that is where `pip install -e .[test]` put it), else PATH.
if [[ -x "$repo/.venv/bin/gcp-storage-emulator" ]]; then
  exe="$repo/.venv/bin/gcp-storage-emulator"
  py="$repo/.venv/bin/python"
elif command -v gcp-storage-emulator >/dev/null 2>&1; then
  exe="$(command -v gcp-storage-emulator)"
  py="$(command -v python3)"
else
  exe=""
  py="$(command -v python3 || true)"
fi

alive() {  # a live process, not a zombie waiting for its reaper
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ "$state" != "Z" ]]
}

running_pid() {  # the recorded pid if that process is still alive, else nothing
  [[ -f "$pidfile" ]] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then echo "$pid"; fi
  return 0
}

answers() {  # does http://127.0.0.1:$1/ answer?
  "$py" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1).read()
EOF
}

case "$cmd" in
  start)
    if [[ -z "$exe" ]]; then
      echo "gcs-emulator: gcp-storage-emulator not found: run build.sh (it installs .[test]) or" \
           "pip install gcp-storage-emulator" >&2
      exit 1
    fi
    if pid="$(running_pid)" && [[ -n "$pid" ]]; then
      echo "gcs-emulator: already running (pid $pid, port $(cat "$pidfile.port" 2>/dev/null));" \
           "stop it first: $0 stop --pidfile $pidfile" >&2
      exit 1
    fi
    if [[ -z "$port" ]]; then  # ask the kernel for a free loopback port
      port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    fi
    [[ "$port" =~ ^[0-9]+$ ]] || { echo "gcs-emulator: bad port '$port'" >&2; exit 2; }
    args=(start --host 127.0.0.1 --port "$port" --in-memory -q)
    [[ -n "$bucket" ]] && args+=(--default-bucket "$bucket")
    mkdir -p "$(dirname "$pidfile")"
    # nohup + a background job of a script (SIGINT ignored): it outlives this script, a
    # closed terminal and a Ctrl-C; nohup execs, so $! is the emulator itself.
    nohup "$exe" "${args[@]}" >"$pidfile.log" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$pidfile"
    echo "$port" > "$pidfile.port"
    for _ in $(seq 1 100); do  # up to ~15 s on a busy 2-core machine
      if answers "$port"; then
        echo "gcs-emulator: pid $pid on http://127.0.0.1:$port${bucket:+, bucket $bucket}" >&2
        echo "export STORAGE_EMULATOR_HOST=http://127.0.0.1:$port"
        # gcsfs reads this at import; its experimental client stalls 20-60 s per emulator call
        echo "export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false"
        exit 0
      fi
      if ! alive "$pid"; then
        echo "gcs-emulator: exited at start; its log ($pidfile.log):" >&2
        cat "$pidfile.log" >&2
        rm -f "$pidfile" "$pidfile.port"
        exit 1
      fi
      sleep 0.15
    done
    echo "gcs-emulator: no answer on port $port; stopping pid $pid (log: $pidfile.log)" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile" "$pidfile.port"
    exit 1
    ;;
  stop)
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
      echo "gcs-emulator: not running (no live pid in $pidfile)" >&2
      rm -f "$pidfile" "$pidfile.port"
      exit 0
    fi
    kill "$pid"
    for _ in $(seq 1 50); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then kill -9 "$pid"; fi
    rm -f "$pidfile" "$pidfile.port"
    echo "gcs-emulator: stopped pid $pid" >&2
    ;;
  status)
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
      echo "gcs-emulator: running, pid $pid, http://127.0.0.1:$(cat "$pidfile.port" 2>/dev/null)"
    else
      echo "gcs-emulator: not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start [--port P] [--bucket B] [--pidfile F] | stop [--pidfile F] | status" >&2
    exit 2
    ;;
esac
