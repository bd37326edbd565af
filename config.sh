# rlpad settings, sourced by build.sh and every numbered script.
# Each value is a default: the environment overrides it, e.g.
#   RLPAD_RUN=exp2 RLPAD_PROFILE=breakout bash 1-initial-fit.sh
# Credentials never go here: GCS uses Application Default Credentials
# (GOOGLE_APPLICATION_CREDENTIALS or the machine's service account).

# Where artifacts live: a folder (default ./artifacts) or gs://bucket/prefix.
: "${RLPAD_STORE:=./artifacts}"
# Run id: outputs go to $RLPAD_STORE/$RLPAD_RUN/<stage>/. Letters, digits, . _ - only.
: "${RLPAD_RUN:=default}"
# Experiment profile: profiles/<name>.toml (quick | minatar-breakout | breakout) or a path.
: "${RLPAD_PROFILE:=quick}"
# Profile overrides, space-separated key=value with no spaces inside a value, e.g.
#   RLPAD_OVERRIDES="dqn.total_steps=20000 eval.n_real=[200,1000,0] eval.repetitions=5"
: "${RLPAD_OVERRIDES:=}"
# A study's independent agents (the profile's [study] agents when empty): agent k trains with
# seed + k - 1, each with its own stages 1-3; stage 4 reports agent-level statistics.
: "${RLPAD_AGENTS:=}"
# 1 = redo a stage even if its manifest says it is complete.
: "${RLPAD_FORCE:=0}"

# Where stages run: local (the .venv made by build.sh) | docker (the CPU image).
: "${RLPAD_RUNNER:=local}"
# The CPU image's name; with RLPAD_REGISTRY set, build.sh pushes it there.
: "${RLPAD_IMAGE:=rlpad:latest}"
: "${RLPAD_REGISTRY:=}"
# Container engine for RLPAD_RUNNER=docker: docker | podman; extra flags for its `run`.
# On a rootless or cgroup-mixed host, podman may need:
#   RLPAD_ENGINE_FLAGS="--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
: "${RLPAD_ENGINE:=docker}"
: "${RLPAD_ENGINE_FLAGS:=}"

# Stage 4's Spark master: local[*] (default, this machine), local[N] or local[N,F]
# (F = task attempts), spark://host:port (standalone), k8s://https://host:port (Kubernetes).
: "${RLPAD_SPARK_MASTER:=local[*]}"
# Cluster masters only: executors, their cores and memory; the driver's memory.
: "${RLPAD_SPARK_EXECUTORS:=2}"
: "${RLPAD_SPARK_EXECUTOR_CORES:=1}"
: "${RLPAD_SPARK_EXECUTOR_MEMORY:=3g}"
: "${RLPAD_SPARK_DRIVER_MEMORY:=2g}"
# Kubernetes only: namespace and the service account the driver runs as.
: "${RLPAD_K8S_NAMESPACE:=default}"
: "${RLPAD_K8S_SERVICE_ACCOUNT:=spark}"

export RLPAD_STORE RLPAD_RUN RLPAD_PROFILE RLPAD_OVERRIDES RLPAD_AGENTS RLPAD_FORCE RLPAD_RUNNER \
  RLPAD_IMAGE RLPAD_REGISTRY RLPAD_ENGINE RLPAD_ENGINE_FLAGS RLPAD_SPARK_MASTER RLPAD_SPARK_EXECUTORS \
  RLPAD_SPARK_EXECUTOR_CORES RLPAD_SPARK_EXECUTOR_MEMORY RLPAD_SPARK_DRIVER_MEMORY \
  RLPAD_K8S_NAMESPACE RLPAD_K8S_SERVICE_ACCOUNT
