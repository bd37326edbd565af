#!/usr/bin/env bash
# scripts/image-check.sh — build docker/Dockerfile on a machine with no Docker engine and
# no image registry, then check the image.
#
# What it does (as root; it uses apt-get, debootstrap, chroot and `podman image mount`):
#   1. installs podman, debootstrap and runc with apt-get if they are missing;
#   2. makes a local base that stands in for python:3.11-slim-bookworm: a minimal Debian 12
#      rootfs (debootstrap from Debian's mirror) with python3 (= 3.11), python3-venv,
#      python-is-python3 and ca-certificates, plus the host's locally added CAs
#      (/usr/local/share/ca-certificates, e.g. a TLS-intercepting egress proxy's) so that
#      pip and apt inside the build trust the same network as the host. The rootfs tarball
#      is cached under $RLPAD_IMAGE_CACHE (default ~/.cache/rlpad-image/), keyed by a hash
#      of its recipe and of those CAs, and `podman import`ed as localhost/rlpad-base:<hash>;
#   3. podman build --isolation=chroot --build-arg BASE_IMAGE=<local base> -f docker/Dockerfile
#      (the same Dockerfile that builds FROM python:3.11-slim-bookworm with real Docker);
#   4. checks the image and prints PASS/FAIL lines:
#        - the configured user is neither root nor 0, the entrypoint is rlpad;
#        - no ENV, build ARG or history line holds anything credential-like
#          (KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL; GPG_KEY of the official python image, a
#          public release-key fingerprint, is allowed);
#        - mounts the image (`podman image mount`) and, in a chroot as the image's user with
#          the image's ENV and WORKDIR (no container runtime needed): `rlpad --help`,
#          `java -version`, imports of the heavy dependencies, and a local[1] SparkSession
#          that sums a range (Java 17 + pyspark end to end);
#        - `podman run` of the image (`--help`, as its user, writing to a bind-mounted
#          artifacts dir). Plain `podman run` fails on this kind of machine: crun 1.8 refuses
#          hybrid cgroups (v1 controllers + a cgroup2 at /sys/fs/cgroup/unified), and podman's
#          default rlimits exceed the hard limits while CAP_SYS_RESOURCE is missing. With runc
#          and explicit ulimits it works; the script finds the flags that work and prints them
#          (RUN_FLAGS=...) for whoever runs the image with podman here.
#   It exits non-zero if any check fails.
#
# Usage: scripts/image-check.sh [options]
#   --image NAME      tag to build (default: $RLPAD_IMAGE or localhost/rlpad:cpu)
#   --no-cache        build without podman's layer cache (a cold build; the pip cache
#                     mount and the base tarball are still reused)
#   --rebuild-base    re-debootstrap the base even if a cached tarball exists
#   --skip-build      only check an already built --image
#   --no-run          skip the `podman run` check (the chroot checks still run)
# Environment: RLPAD_IMAGE_CACHE, DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   NICE (default 19: builds run under `nice -n $NICE`).
#
# Times seen on the 2-core dev machine (it prints its own): cold first run 6.6 min
# (debootstrap 102 s, podman build 265 s incl. ~700 MB of wheels, checks ~25 s); rerun with
# nothing changed 25-50 s (build ~3 s, the rest is the checks, Spark 12-23 s of it); a change in
# src/ adds ~10 s. Disk: image 3.1 GB, base tarball 180 MB, pip cache mount ~440 MB
# (/var/tmp/buildah-cache). Clean up: podman rmi localhost/rlpad:cpu; podman image prune.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${RLPAD_IMAGE:-localhost/rlpad:cpu}
CACHE=${RLPAD_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rlpad-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NICE=${NICE:-19}
SUITE=bookworm
BASE_PACKAGES=ca-certificates,python3,python3-venv,python-is-python3
NO_CACHE=()
REBUILD_BASE=0
SKIP_BUILD=0
DO_RUN=1

while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=$2; shift 2 ;;
    --image=*) IMAGE=${1#*=}; shift ;;
    --no-cache) NO_CACHE=(--no-cache); shift ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --no-run) DO_RUN=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
done

FAILS=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
log() { echo "== $*" >&2; }
T0=$SECONDS
declare -A TIMES=()
# timed NAME CMD...: run CMD, record its seconds (keeps errexit semantics: no `||` here)
timed() { local name=$1 t=$SECONDS; shift; "$@"; local rc=$?; TIMES[$name]=$((SECONDS - t)); return $rc; }

if [ "$(id -u)" != 0 ]; then
  echo "FAIL: run as root (apt-get, debootstrap, chroot and podman image mount need it)"; exit 1
fi

# 1. Tools ------------------------------------------------------------------------------
install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v runc >/dev/null || missing+=(runc)   # for `podman run` where crun cannot
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
timed tools install_tools

# 2. Local base image -------------------------------------------------------------------
# Everything that changes the rootfs goes into the key, so a change rebuilds it.
LOCAL_CAS=$(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort || true)
KEY=$( { echo "v1 $SUITE minbase $BASE_PACKAGES $MIRROR"
         for f in $LOCAL_CAS; do sha256sum "$f"; done; } | sha256sum | cut -c1-12)
BASE_TAR=$CACHE/rootfs-$SUITE-py311-$KEY.tar
BASE_IMAGE=localhost/rlpad-base:$SUITE-py311-$KEY

make_rootfs() {
  mkdir -p "$CACHE"
  local dir=$CACHE/rootfs.tmp
  rm -rf "$dir"
  log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR"
  nice -n "$NICE" debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; return 1; }
  # apt sources as in debian:bookworm (so the Dockerfile's apt-get gets security updates)
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  # the host's locally trusted CAs (an egress proxy's, here); none on an ordinary machine
  for f in $LOCAL_CAS; do cp "$f" "$dir/usr/local/share/ca-certificates/"; done
  chroot "$dir" update-ca-certificates >>"$CACHE/debootstrap.log" 2>&1
  # pip (any version, vendored certifi or not) uses the system bundle, which has them
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$dir/etc/pip.conf"
  chroot "$dir" python3 -c 'import sys, venv; assert sys.version_info[:2] == (3, 11), sys.version; print("base python", sys.version.split()[0])'
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log
  tar --numeric-owner -C "$dir" -cf "$BASE_TAR.part" .
  mv "$BASE_TAR.part" "$BASE_TAR"
  rm -rf "$dir"
}

import_base() {
  if [ "$REBUILD_BASE" = 1 ] || [ ! -s "$BASE_TAR" ]; then
    timed debootstrap make_rootfs
  fi
  if [ "$REBUILD_BASE" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    log "podman import $BASE_TAR -> $BASE_IMAGE"
    podman import -q --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
      --message "Debian $SUITE minbase + Python 3.11 (stand-in for python:3.11-slim-bookworm)" \
      "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  fi
}

if [ "$SKIP_BUILD" = 0 ]; then
  timed base import_base
  pass "local base $BASE_IMAGE"

  # 3. Build ----------------------------------------------------------------------------
  log "podman build ${NO_CACHE[*]} -t $IMAGE (log: $CACHE/build.log)"
  build() {
    nice -n "$NICE" podman build --isolation=chroot "${NO_CACHE[@]}" \
      --build-arg BASE_IMAGE="$BASE_IMAGE" \
      -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT" >"$CACHE/build.log" 2>&1
  }
  if timed build build; then
    pass "podman build -f docker/Dockerfile (${TIMES[build]} s; its RUN rlpad --help passed)"
  else
    tail -30 "$CACHE/build.log"
    fail "podman build -f docker/Dockerfile (log: $CACHE/build.log)"
    exit 1
  fi
fi

podman image exists "$IMAGE" || { fail "no image $IMAGE"; exit 1; }

# 4. Checks -----------------------------------------------------------------------------
INSPECT=$(podman image inspect "$IMAGE")
HISTORY=$(podman history --no-trunc --format '{{.CreatedBy}}' "$IMAGE")
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")

# user, entrypoint, env as lines: USER=..., ENTRYPOINT=..., ENV <k>=<v>
CONFIG=$(python3 -c '
import json, sys
c = json.load(sys.stdin)[0]["Config"]
print("USER=" + (c.get("User") or ""))
print("ENTRYPOINT=" + json.dumps(c.get("Entrypoint") or []))
for e in c.get("Env") or []:
    print("ENV " + e)
' <<<"$INSPECT")
USER_SPEC=$(sed -n 's/^USER=//p' <<<"$CONFIG")
ENTRYPOINT=$(sed -n 's/^ENTRYPOINT=//p' <<<"$CONFIG")
IMAGE_ENV=$(sed -n 's/^ENV //p' <<<"$CONFIG")

U=${USER_SPEC%%:*}
if [ -n "$U" ] && [ "$U" != root ] && [ "$U" != 0 ]; then
  pass "configured user is '$USER_SPEC' (not root)"
else
  fail "configured user is '${USER_SPEC:-<unset: root>}'"
fi
if python3 -c 'import json, os, sys; e = json.loads(sys.argv[1]); sys.exit(0 if e and os.path.basename(e[0]) == "rlpad" else 1)' "$ENTRYPOINT"; then
  pass "entrypoint is $ENTRYPOINT"
else
  fail "entrypoint is $ENTRYPOINT, not rlpad"
fi

# Anything credential-like in ENV, build ARGs (buildah records them in history) or history.
SUSPECT=$( { printf '%s\n' "$IMAGE_ENV"; printf '%s\n' "$HISTORY"; } \
  | grep -iE 'KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL' \
  | grep -vE '^GPG_KEY=[0-9A-F]+$' || true)
if [ -z "$SUSPECT" ]; then
  pass "no credential-like ENV, ARG or history entry"
else
  fail "credential-like entries in the image config/history:"; sed 's/^/    /' <<<"$SUSPECT"
fi

# Run inside the mounted image, as its user, with its ENV (and nothing of ours).
MNT=$(podman image mount "$IMAGE")
cleanup() { podman image unmount "$IMAGE" >/dev/null 2>&1 || true; }
trap cleanup EXIT
ENV_ARGS=()
while IFS= read -r e; do [ -n "$e" ] && ENV_ARGS+=("$e"); done <<<"$IMAGE_ENV"
WORKDIR=$(podman image inspect --format '{{.Config.WorkingDir}}' "$IMAGE")
[ -n "$WORKDIR" ] || WORKDIR=/
# numeric uid:gid from the image's own /etc/passwd (the host's may differ)
resolve_user() {
  local u=${1%%:*} g= line
  [[ "$1" == *:* ]] && g=${1#*:}
  [ -n "$u" ] || u=0
  if ! [[ "$u" =~ ^[0-9]+$ ]]; then
    line=$(grep "^$u:" "$MNT/etc/passwd" || true); u=$(cut -d: -f3 <<<"$line")
  else
    line=$(awk -F: -v u="$u" '$3 == u' "$MNT/etc/passwd" | head -1)
  fi
  [ -n "$g" ] || g=$(cut -d: -f4 <<<"$line")
  if [ -n "$g" ] && ! [[ "$g" =~ ^[0-9]+$ ]]; then g=$(grep "^$g:" "$MNT/etc/group" | cut -d: -f3); fi
  echo "${u:-0}:${g:-${u:-0}}"
}
CHROOT_USER=$(resolve_user "$USER_SPEC")
[ "${CHROOT_USER%%:*}" != 0 ] || fail "image user '$USER_SPEC' resolves to uid 0"

# in_image CMD...: a private mount namespace with /proc, /dev and a tmpfs /tmp and $HOME
# (the mounted image is read-only), then chroot as the image user into its WORKDIR.
in_image() {
  unshare --mount --pid --fork --mount-proc="$MNT/proc" /bin/sh -c '
    mnt=$1 user=$2 wd=$3; shift 3
    mount --rbind /dev "$mnt/dev"
    for f in /etc/hosts /etc/resolv.conf; do   # as a container runtime provides them
      [ -e "$mnt$f" ] && [ ! -L "$mnt$f" ] && mount --bind "$f" "$mnt$f"
    done
    mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
    home=$(grep "^[^:]*:[^:]*:${user%%:*}:" "$mnt/etc/passwd" | head -1 | cut -d: -f6)
    [ -n "$home" ] && [ "$home" != / ] && mount -t tmpfs -o "uid=${user%%:*},gid=${user#*:},mode=755" tmpfs "$mnt$home"
    [ "$wd" != / ] && mount -t tmpfs -o "uid=${user%%:*},gid=${user#*:},mode=755" tmpfs "$mnt$wd"
    exec chroot --userspec="$user" "$mnt" /usr/bin/env -i "$@"
  ' sh "$MNT" "$CHROOT_USER" "$WORKDIR" "${ENV_ARGS[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$WORKDIR" "$@"
}

OUT=$(in_image python3 -c 'import os; print(os.getuid(), os.getgid())' 2>&1) || true
if [ "$OUT" = "${CHROOT_USER%%:*} ${CHROOT_USER#*:}" ]; then
  pass "chroot runs as uid:gid $CHROOT_USER"
else
  fail "chroot as $CHROOT_USER printed: $OUT"
fi

ENTRY0=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0])' "$ENTRYPOINT")
t=$SECONDS
if OUT=$(in_image "$ENTRY0" --help 2>&1); then
  pass "'$ENTRY0 --help' as $CHROOT_USER in the image ($((SECONDS - t)) s)"
  sed -n '1,3s/^/    /p' <<<"$OUT"
else
  fail "'$ENTRY0 --help' in the image:"; tail -15 <<<"$OUT" | sed 's/^/    /'
fi

if OUT=$(in_image java -version 2>&1) && grep -q 'version "17' <<<"$OUT"; then
  pass "java: $(head -1 <<<"$OUT")"
else
  fail "java -version: $OUT"
fi

if OUT=$(in_image python3 -c '
import sys, importlib
assert sys.version_info[:2] == (3, 11), sys.version
mods = ["rlpad", "tensorflow", "keras", "gymnasium", "ale_py", "cv2", "h5py", "scipy",
        "matplotlib", "pyspark", "fsspec", "gcsfs"]
v = {m: getattr(importlib.import_module(m), "__version__", "?") for m in mods}
print("python", sys.version.split()[0], " ".join(f"{k}={v[k]}" for k in mods[1:]))
' 2>&1); then
  pass "imports: $(tail -1 <<<"$OUT")"
else
  fail "imports:"; tail -15 <<<"$OUT" | sed 's/^/    /'
fi

t=$SECONDS
if OUT=$(in_image env SPARK_LOCAL_IP=127.0.0.1 python3 -c '
from pyspark.sql import SparkSession
s = SparkSession.builder.master("local[1]").appName("image-check").config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate()
n = s.range(1000).selectExpr("sum(id) as t").collect()[0].t
s.stop()
assert n == 499500, n
print("spark", s.version, "sum", n)
' 2>&1); then
  pass "local SparkSession on the image's Java: $(tail -1 <<<"$OUT") ($((SECONDS - t)) s)"
else
  fail "local SparkSession:"; tail -15 <<<"$OUT" | sed 's/^/    /'
fi

# `podman run`: plain first; else runc (crun 1.8 rejects hybrid cgroups) with ulimits no
# higher than the hard limits podman's own process has (it caps NPROC at 32768 for itself).
if [ "$DO_RUN" = 1 ]; then
  cleanup; trap - EXIT
  NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
  [ "$NOFILE" = unlimited ] && NOFILE=1048576
  { [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; } && NPROC=32768
  RUN_DIR=$(mktemp -d)
  RUN_OK=
  for flags in "" "--runtime runc --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC"; do
    # shellcheck disable=SC2086  # flags is a word list on purpose
    if OUT=$(timeout 300 podman run --rm $flags -v "$RUN_DIR:/work/artifacts:U" \
        --entrypoint /bin/sh "$IMAGE" -c 'rlpad --help >/dev/null && id -u > /work/artifacts/ok' 2>&1) \
        && [ "$(cat "$RUN_DIR/ok" 2>/dev/null)" = "${CHROOT_USER%%:*}" ]; then
      RUN_OK=1; break
    fi
    echo "    podman run ${flags:-(no flags)}: $(tail -1 <<<"$OUT")"
  done
  rm -rf "$RUN_DIR"
  if [ -n "$RUN_OK" ]; then
    pass "podman run ${flags:-(no extra flags)}: rlpad --help, and wrote a bind-mounted /work/artifacts as uid ${CHROOT_USER%%:*}"
    echo "RUN_FLAGS=\"$flags\""
  else
    fail "podman run (with and without runc + ulimits)"
  fi
fi

echo "image: $IMAGE  base: $BASE_IMAGE  size: $((SIZE / 1000000)) MB"
printf 'times (s):'; for k in tools debootstrap base build; do [ -n "${TIMES[$k]:-}" ] && printf ' %s=%s' "$k" "${TIMES[$k]}"; done
echo " total=$((SECONDS - T0))"
if [ "$FAILS" -gt 0 ]; then echo "image-check: $FAILS check(s) FAILED"; exit 1; fi
echo "image-check: all checks passed"
