#!/usr/bin/env bash
# stage 4: the padded-refit trial grid on Spark; prints mean score ± 95% CI, win rate and the
# lift of each padding level over no padding (a study: agent-level statistics and verdicts).
# RLPAD_SPARK_MASTER picks where it runs (scripts/stage.sh: spark_args).
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
spark_args
rlpad_stage eval "${SPARK_ARGS[@]}" "$@"
