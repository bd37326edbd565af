#!/usr/bin/env bash
# stage 4: the padded-refit trial grid on Spark; prints mean score ± 95% CI, win rate and the
# lift of each padding level over no padding. RLPAD_SPARK_MASTER picks where it runs:
#   local[*] (default)  this machine, the driver in this process
#   spark://host:port   a standalone cluster, through spark-submit (client mode)
#   k8s://https://...   Kubernetes, through spark-submit (cluster mode, RLPAD_IMAGE)
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh
spark_args=(--master "$RLPAD_SPARK_MASTER" --executors "$RLPAD_SPARK_EXECUTORS"
  --executor-cores "$RLPAD_SPARK_EXECUTOR_CORES" --executor-memory "$RLPAD_SPARK_EXECUTOR_MEMORY"
  --driver-memory "$RLPAD_SPARK_DRIVER_MEMORY" --namespace "$RLPAD_K8S_NAMESPACE"
  --service-account "$RLPAD_K8S_SERVICE_ACCOUNT")
case "$RLPAD_SPARK_MASTER" in
  local*) ;;
  spark://*) spark_args+=(--submit) ;;
  k8s://*) spark_args+=(--submit --image "$(image_ref)") ;;
  *) echo "4-scaled-simple-eval: RLPAD_SPARK_MASTER='$RLPAD_SPARK_MASTER' is not local[...], spark://host:port or k8s://https://host:port (config.sh)" >&2
     exit 2 ;;
esac
rlpad_stage eval "${spark_args[@]}" "$@"
