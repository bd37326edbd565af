#!/usr/bin/env bash
# Fresh clone -> build -> the whole test suite (what CI runs). Extra args go to pytest,
# e.g. `bash test.sh -k replay`.
set -euo pipefail
cd "$(dirname "$0")"
# Debian's chromium + chromedriver for the dashboard tests, fetched while the venv builds
bash scripts/browser.sh > .browser-setup.log 2>&1 & browser=$!
bash build.sh
wait "$browser" || { cat .browser-setup.log >&2; exit 2; }
bash scripts/plotly-bundle.sh --require  # the dashboard tests check the graphs use it
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -ra --durations=15 "$@"
