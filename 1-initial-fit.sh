#!/usr/bin/env bash
# stage 1: fit a DQN on the profile's game; keep its Q-net and replay memory
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
rlpad_stage fit "$@"
