#!/usr/bin/env bash
# Set up the runtime the numbered scripts use:
#   RLPAD_RUNNER=local (default): .venv with the package and the locked dependencies,
#     plus a Java 17 runtime for Spark. Idempotent: a no-op when nothing changed.
#   RLPAD_RUNNER=docker: builds the CPU image (docker/Dockerfile), pushes it if
#     RLPAD_REGISTRY is set.
set -euo pipefail
cd "$(dirname "$0")"
source config.sh
source scripts/stage.sh

need_java() {
  if command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -qE 'version "(17|21)'; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build: installing a headless Java 17 runtime for Spark (apt-get)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "build: Spark needs Java 17 or 21: install a JRE (e.g. apt-get install openjdk-17-jre-headless)" >&2
    exit 2
  fi
}

build_image() {
  local ref; ref=$(image_ref)
  if [ "$RLPAD_ENGINE" = docker ] && ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
    echo "build: no Docker engine here; set RLPAD_ENGINE=podman (as root, scripts/image-check.sh" \
         "builds from a local Debian base with no registry)" >&2
    exit 2
  fi
  echo "build: building image $ref with $RLPAD_ENGINE"
  if [ "$RLPAD_ENGINE" = podman ] && [ -z "${RLPAD_BASE_IMAGE:-}" ]; then
    scripts/image-check.sh --image "$ref"   # local base + podman build --isolation=chroot + checks
  else
    "$RLPAD_ENGINE" build -f docker/Dockerfile ${RLPAD_BASE_IMAGE:+--build-arg BASE_IMAGE=$RLPAD_BASE_IMAGE} -t "$ref" .
  fi
  if [ -n "$RLPAD_REGISTRY" ]; then "$RLPAD_ENGINE" push "$ref"; fi
}

build_venv() {
  local py=${RLPAD_PYTHON:-}
  if [ -z "$py" ]; then
    for cand in python3.11 python3.12 python3; do
      if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] < (3,13)))'; then
        py=$cand; break
      fi
    done
  fi
  [ -n "$py" ] || { echo "build: need Python 3.11 or 3.12 (set RLPAD_PYTHON)" >&2; exit 2; }
  local stamp=.venv/.rlpad-build
  local want; want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/rlpad ]; then
    echo "build: .venv is up to date"
    return
  fi
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  echo "build: installing rlpad and its locked dependencies into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  # Byte-compiled at install (~40 s of the ~95 s): with PYTHONDONTWRITEBYTECODE set, as on our
  # CI machines, Python would otherwise recompile TensorFlow in every new process (+9 s each).
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
}

case "$RLPAD_RUNNER" in
  local) need_java; build_venv; bash scripts/plotly-bundle.sh ;;
  docker) build_image ;;
  *) echo "build: RLPAD_RUNNER must be local or docker, got '$RLPAD_RUNNER' (config.sh)" >&2; exit 2 ;;
esac
echo "build: done ($RLPAD_RUNNER)"
