#!/usr/bin/env bash
# Run every benchmark once and keep their reports under bench/results/ (not committed).
# Usage: bash bench/run.sh [--quick]   (--quick: shorter runs, for a smoke check)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
QUICK=""
if [[ "${1:-}" == "--quick" ]]; then
  QUICK=1
  MIN=(--steps 500 --learning-starts 500)
  FIT=()
  THR=(--steps 400 --learning-starts 200 --micro-reps 10)
  MEM=(--rows 50000 --batches 200)
else
  FIT=(--sb3)
  THR=(--steps 2000 --learning-starts 1000 --repeats 2)
  MEM=()
  MIN=(--repeats 2)
fi
echo "== quick_fit (stage 1, quick profile, vs the 3-minute target; SB3 peer if installed)"
"$PY" bench/quick_fit.py ${FIT[@]+"${FIT[@]}"} | tee "$OUT/quick_fit.txt"
echo "== dqn_throughput (Breakout learning throughput vs Stable-Baselines3; train step vs matmul)"
"$PY" bench/dqn_throughput.py ${THR[@]+"${THR[@]}"} | tee "$OUT/dqn_throughput.txt"
echo "== replay_memory (peak RAM of a 400k-row Atari replay vs the seed's layout)"
"$PY" bench/replay_memory.py ${MEM[@]+"${MEM[@]}"} | tee "$OUT/replay_memory.txt"
echo "== embed_throughput (stage 2: Atari encoder states/s vs model.predict)"
"$PY" bench/embed_throughput.py | tee "$OUT/embed_throughput.txt"
echo "== gan_steps (stage 3: GAN train steps/s vs the seed's train_on_batch loop)"
"$PY" bench/gan_steps.py | tee "$OUT/gan_steps.txt"
echo "== trial_speed (stage 4: one trial on one core; the grid from 1 to 2 executors)"
"$PY" bench/trial_speed.py | tee "$OUT/trial_speed.txt"
echo "== minatar_throughput (MinAtar Breakout learning throughput vs Stable-Baselines3)"
"$PY" bench/minatar_throughput.py ${MIN[@]+"${MIN[@]}"} | tee "$OUT/minatar_throughput.txt"
echo "== refit_recovery (the sanity rule across stage-1 seeds, 30 separate episodes each)"
"$PY" bench/refit_recovery.py --store "$OUT/recovery-store" --seeds 1-6 | tee "$OUT/refit_recovery.txt"
if [[ -z "$QUICK" ]]; then
  echo "== study_speed (a study's wall time for 1, 2, 4 agents; stage 4 from 1 to 2 executors)"
  "$PY" bench/study_speed.py --agents 1 2 4 --set gan.steps=2000 --scaling | tee "$OUT/study_speed.txt"
fi
echo "== dashboard_render (the dashboard in headless Chromium: 200 runs, a 1,000-trial study)"
"$PY" bench/dashboard_render.py ${QUICK:+--runs 20 --repeats 2} --work "$OUT/dashboard" | tee "$OUT/dashboard_render.txt"
echo "reports in $OUT"
