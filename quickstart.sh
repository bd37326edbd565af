#!/usr/bin/env bash
# Fresh clone -> build -> stages 1..4 on the embedded default (quick profile, local store
# ./artifacts, Spark local[*]) -> win statistics. Rerunning skips finished stages.
set -euo pipefail
cd "$(dirname "$0")"
bash build.sh
bash 1-initial-fit.sh
bash 2-transform.sh
bash 3-fit-gan.sh
bash 4-scaled-simple-eval.sh
source config.sh
echo
echo "quickstart: done. Artifacts (models, data, curves, plots, manifests) are in $RLPAD_STORE/$RLPAD_RUN/"
echo "quickstart: to look through them in a browser: bash dashboard.sh (then http://127.0.0.1:8050/)"
