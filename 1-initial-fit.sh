#!/usr/bin/env bash
# stage 1: fit a DQN on the profile's game; keep its Q-net and replay memory
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
spark_args  # a study's agents run in parallel on a cluster master
rlpad_stage fit "${SPARK_ARGS[@]}" "$@"
