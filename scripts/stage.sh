# Shared by the numbered scripts: run one `rlpad` stage with config.sh's settings,
# in the local .venv (default) or the CPU image (RLPAD_RUNNER=docker).
# Usage (sourced): rlpad_stage <command> [extra args...]
rlpad_stage() {
  local cmd=$1; shift
  local args=(--store "$RLPAD_STORE" --run "$RLPAD_RUN" --profile "$RLPAD_PROFILE")
  local ov
  for ov in $RLPAD_OVERRIDES; do args+=(--set "$ov"); done
  [ -n "${RLPAD_AGENTS:-}" ] && args+=(--set "study.agents=$RLPAD_AGENTS")
  [ "$RLPAD_FORCE" = 1 ] && args+=(--force)
  case "$RLPAD_RUNNER" in
    local)
      if [ ! -x .venv/bin/rlpad ]; then
        echo "rlpad: .venv is missing: run 'bash build.sh' first" >&2; return 2
      fi
      .venv/bin/rlpad "$cmd" "${args[@]}" "$@" ;;
    docker)
      require_image || return $?
      local mounts=()
      case "$RLPAD_STORE" in
        gs://*|gcs://*)
          # ADC enters as a read-only mount, never as a baked-in file or an env secret.
          if [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]; then
            mounts+=(-v "$GOOGLE_APPLICATION_CREDENTIALS:/run/secrets/gcp.json:ro"
                     -e GOOGLE_APPLICATION_CREDENTIALS=/run/secrets/gcp.json)
          fi ;;
        *)
          mkdir -p "$RLPAD_STORE"
          local uflag=""; [ "$RLPAD_ENGINE" = podman ] && uflag=":U"  # podman: chown to the image user
          mounts+=(-v "$(cd "$RLPAD_STORE" && pwd):/work/artifacts$uflag")
          args[1]=/work/artifacts ;;
      esac
      # --network host: the store (an emulator) or a Spark master may be on this host's loopback.
      # shellcheck disable=SC2086
      "$RLPAD_ENGINE" run --rm --init --network host -e SPARK_LOCAL_IP=127.0.0.1 $RLPAD_ENGINE_FLAGS \
        "${mounts[@]}" "$(image_ref)" "$cmd" "${args[@]}" "$@" ;;
    *)
      echo "rlpad: RLPAD_RUNNER must be local or docker, got '$RLPAD_RUNNER' (config.sh)" >&2
      return 2 ;;
  esac
}

# Fills SPARK_ARGS from config.sh's RLPAD_SPARK_*: where stage 4's grid runs, and where the
# agents of a study run their stages 1-3 (in parallel on a cluster master):
#   local[*] (default)  this machine, the driver in this process
#   spark://host:port   a standalone cluster, through spark-submit (client mode)
#   k8s://https://...   Kubernetes, through spark-submit (cluster mode, RLPAD_IMAGE)
spark_args() {
  SPARK_ARGS=(--master "$RLPAD_SPARK_MASTER" --executors "$RLPAD_SPARK_EXECUTORS"
    --executor-cores "$RLPAD_SPARK_EXECUTOR_CORES" --executor-memory "$RLPAD_SPARK_EXECUTOR_MEMORY"
    --driver-memory "$RLPAD_SPARK_DRIVER_MEMORY" --namespace "$RLPAD_K8S_NAMESPACE"
    --service-account "$RLPAD_K8S_SERVICE_ACCOUNT")
  case "$RLPAD_SPARK_MASTER" in
    local*) ;;
    spark://*) SPARK_ARGS+=(--submit) ;;
    k8s://*) SPARK_ARGS+=(--submit --image "$(image_ref)") ;;
    *) echo "rlpad: RLPAD_SPARK_MASTER='$RLPAD_SPARK_MASTER' is not local[...], spark://host:port or k8s://https://host:port (config.sh)" >&2
       return 2 ;;
  esac
}

# Refuse an image that does not hold the project (wrong tag, stale registry copy).
require_image() {
  local ref; ref=$(image_ref)
  if ! command -v "$RLPAD_ENGINE" >/dev/null 2>&1; then
    echo "rlpad: RLPAD_RUNNER=docker needs '$RLPAD_ENGINE' (RLPAD_ENGINE in config.sh)" >&2; return 2
  fi
  local label
  label=$("$RLPAD_ENGINE" image inspect --format '{{ index .Config.Labels "org.rlpad.project" }}' "$ref" 2>/dev/null) || {
    echo "rlpad: image $ref is not here: run 'RLPAD_RUNNER=docker bash build.sh' first" >&2; return 2; }
  if [ "$label" != rlpad ]; then
    echo "rlpad: image $ref lacks the project (no org.rlpad.project label): rebuild it with" \
         "'RLPAD_RUNNER=docker bash build.sh'" >&2
    return 2
  fi
}

image_ref() {
  if [ -n "$RLPAD_REGISTRY" ]; then echo "$RLPAD_REGISTRY/$RLPAD_IMAGE"; else echo "$RLPAD_IMAGE"; fi
}
