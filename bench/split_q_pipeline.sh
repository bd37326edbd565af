#!/usr/bin/env bash
# A Split-Q agent through stages 1, 2 and 4 on lunarlander (mixed-sign rewards, where both
# streams learn), at the profile's stage-1 budget and a small stage-4 grid: the sanity cell
# (the refit on all real data) and a 500-transition cell, mode none (no generator needed).
# Usage: bash bench/split_q_pipeline.sh [STORE]   (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
RLPAD=${RLPAD:-.venv/bin/rlpad}
STORE=${1:-$(mktemp -d)/store}
SETS=(--profile lunarlander --set learner.kind=split-q --set 'eval.modes=["none"]'
      --set 'eval.n_real=[500, 0]' --set 'eval.n_fake=[0]' --set eval.repetitions=3)
for stage in fit transform eval; do
  echo "== rlpad $stage"
  "$RLPAD" "$stage" --store "$STORE" --run split-q "${SETS[@]}"
done
echo "store: $STORE"
