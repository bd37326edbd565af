#!/usr/bin/env bash
# stage 2: cut the stage-1 Q-net at its last hidden layer and embed every replay transition
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
spark_args  # a study's agents run in parallel on a cluster master
rlpad_stage transform "${SPARK_ARGS[@]}" "$@"
