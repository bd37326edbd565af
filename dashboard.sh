#!/usr/bin/env bash
# A read-only web app over the store of config.sh (RLPAD_STORE): every run, stage and study.
#   bash dashboard.sh [--port 8050] [--host 127.0.0.1] [--poll 5] [--stall-after 60]
# then open http://127.0.0.1:8050/ . Runs on this machine's .venv (bash build.sh first).
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
if [ ! -x .venv/bin/rlpad ]; then
  echo "dashboard: .venv is missing: run 'bash build.sh' first" >&2; exit 2
fi
exec .venv/bin/rlpad dashboard --store "$RLPAD_STORE" "$@"
