#!/usr/bin/env bash
# stage 3: fit a conditional GAN on the embeddings and report its quality
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
spark_args  # a study's agents run in parallel on a cluster master
rlpad_stage fit-gan "${SPARK_ARGS[@]}" "$@"
