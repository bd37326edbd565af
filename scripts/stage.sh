# Shared by the numbered scripts: run one `rlpad` stage with config.sh's settings,
# in the local .venv (default) or the CPU image (RLPAD_RUNNER=docker).
# Usage (sourced): rlpad_stage <command> [extra args...]
rlpad_stage() {
  local cmd=$1; shift
  local args=(--store "$RLPAD_STORE" --run "$RLPAD_RUN" --profile "$RLPAD_PROFILE")
  local ov
  for ov in $RLPAD_OVERRIDES; do args+=(--set "$ov"); done
  [ "$RLPAD_FORCE" = 1 ] && args+=(--force)
  case "$RLPAD_RUNNER" in
    local)
      if [ ! -x .venv/bin/rlpad ]; then
        echo "rlpad: .venv is missing: run 'bash build.sh' first" >&2; return 2
      fi
      .venv/bin/rlpad "$cmd" "${args[@]}" "$@" ;;
    docker)
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

image_ref() {
  if [ -n "$RLPAD_REGISTRY" ]; then echo "$RLPAD_REGISTRY/$RLPAD_IMAGE"; else echo "$RLPAD_IMAGE"; fi
}
