#!/usr/bin/env python
"""Stage 4's trial speed: one quick-profile trial on one core, and the grid from 1 to 2 executors.

Setup: stages 1-3 of the quick profile in a temporary store, by the CLI, as the test suite's
shared fixture makes them (stage 1 as shipped, stage 2, stage 3 with gan.steps=300); or
--store/--run to reuse a run that has them.

Part 1, one trial on one core: a fresh Python process pinned with `taskset -c 0` (TensorFlow
limited to one intra-op and one inter-op thread, as in a Spark worker) calls
`rlpad.trials.run_trial` with the quick profile's [eval] as shipped. The first trial pays the
artifact load and tracing (reported apart); then --trials trials per mode (none, simple,
constrained at the smallest n_real, different repetitions) give medians of the trial's wall time
and its parts: gan_s (generator: sampling, plus a per-trial fit for constrained), refit_s
(offline Q-learning of the head), play_s (the evaluation episodes).
  Target: <= 1 s per trial.

Part 2, the grid from local[1] to local[2]: the same grid (quick [eval], --grid-set overrides)
through `rlpad.spark.run_grid`, each master in its own driver process, run twice in one
SparkSession: cold (Python workers start, import TF and load the artifacts inside the timing) and
warm (the same grid again on the reused workers). Timed from the call to the last result; the
SparkSession start is reported apart.
  Target: local[2] / local[1] speedup >= 1.7x on 2 cores.

Usage: .venv/bin/python bench/trial_speed.py [--store DIR --run RUN] [--trials 3]
                                           [--grid-set eval.repetitions=2 ...]
(default grid: the quick profile's as shipped, 45 trials, ~5 min for both masters)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
STAGES_1_3 = [("fit", []), ("transform", []),
              ("fit-gan", ["--set", "gan.steps=300", "--set", "gan.checkpoint_every=100"])]
MODES = ("none", "simple", "constrained")
PARTS = ("gan_s", "refit_s", "play_s", "wall_s")
DEFAULT_GRID: list[str] = []  # the quick profile's grid as shipped (45 trials)


def _ctx(store: str, run: str, overrides: list[str]) -> dict:
    from rlpad.artifacts import TrialContext
    from rlpad.config import load_config
    from rlpad.store import Store

    return TrialContext.for_run(Store(store), run, load_config("quick", overrides)).to_dict()


def _specs(store: str, run: str, overrides: list[str]) -> list[dict]:
    """Stage 4's grid as the stage builds it: with --grid-set study.agents=K (a study run in
    --store), every agent's trials and reference tasks."""
    from rlpad.artifacts import study_agents
    from rlpad.config import load_config
    from rlpad.store import Store
    from rlpad.trials import study_specs

    cfg, st = load_config("quick", overrides), Store(store)
    n = {a.seed: int(st.require(run, a.stage("2-transform")).metrics["n_transitions"])
         for a in study_agents(cfg)}
    return study_specs(cfg, n)


# ---- workers (own processes) -------------------------------------------------------------------
def worker_one_core(args) -> dict:
    import rlpad  # noqa: F401  oneDNN on before TensorFlow loads (rlpad/__init__.py)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rlpad.trials import run_trial

    ctx = _ctx(args.store, args.run, [])
    specs = [s for s in _specs(args.store, args.run, []) if s["mode"] != "reference"]
    n_real = min(s["n_real"] for s in specs)
    by_mode = {m: [s for s in specs if s["mode"] == m and s["n_real"] == n_real] for m in MODES}
    t = time.perf_counter()
    first = run_trial(by_mode["none"][0], ctx)  # loads the artifacts, traces play/refit
    first_s = time.perf_counter() - t
    out = {"affinity": sorted(os.sched_getaffinity(0)), "n_real": n_real,
           "first_trial_s": first_s, "first_trial_wall_s": first["wall_s"], "modes": {}}
    for m in MODES:
        runs = [run_trial(s, ctx) for s in (by_mode[m] * args.trials)[:args.trials]]
        out["modes"][m] = {"n_fake": runs[0]["n_fake"],
                           **{p: statistics.median(r[p] for r in runs) for p in PARTS},
                           "mean_score": statistics.mean(statistics.mean(r["scores"]) for r in runs)}
    return out


def worker_grid(args) -> dict:
    from rlpad.spark import SparkSettings, run_grid, session

    ctx = _ctx(args.store, args.run, args.grid_set)
    specs = _specs(args.store, args.run, args.grid_set)
    slots = int(args.master.split("[")[1].split("]")[0].split(",")[0])
    t = time.perf_counter()
    with session(SparkSettings(master=args.master, app_name="rlpad-bench")) as spark:
        session_s = time.perf_counter() - t
        t = time.perf_counter()
        res = run_grid(specs, "rlpad.trials:run_trial", ctx, spark=spark)  # cold workers
        cold = time.perf_counter() - t
        t = time.perf_counter()
        again = run_grid(specs, "rlpad.trials:run_trial", ctx, spark=spark)  # warm, reused
        warm = time.perf_counter() - t
    return {"master": args.master, "slots": slots, "trials": len(res), "cold_s": cold,
            "warm_s": warm, "session_s": session_s,
            "trial_wall_sum_s": sum(r.get("wall_s", 0.0) for r in again),
            # an agent's reference task (a study's grid has one per agent) has no "scores"
            "scores": {r["trial_id"]: r["scores"] for r in res if "scores" in r},
            "same_again": [r.get("scores") for r in res] == [r.get("scores") for r in again],
            "load": os.getloadavg()[0]}


def _run_worker(cmd_prefix: list[str], args: list[str]) -> dict:
    cmd = cmd_prefix + [sys.executable, str(Path(__file__).resolve()), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"worker failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- driver ---------------------------------------------------------------------------------------
def make_store(store: str, run: str) -> float:
    t = time.perf_counter()
    for cmd, extra in STAGES_1_3:
        p = subprocess.run([sys.executable, "-m", "rlpad.cli", cmd, "--store", store, "--run", run,
                            *extra], cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"rlpad {cmd} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="a store holding stages 1-3 of a quick run (default: make one)")
    ap.add_argument("--run", default="bench")
    ap.add_argument("--trials", type=int, default=3, help="timed trials per mode (part 1)")
    ap.add_argument("--grid-set", action="append", default=None, metavar="KEY=VALUE",
                    help="override for the part-2 grid (default: none, the quick grid as shipped; "
                         "eval.repetitions=2 gives a quicker 18-trial grid)")
    ap.add_argument("--skip-grid", action="store_true", help="part 1 only")
    ap.add_argument("--skip-one-core", action="store_true", help="part 2 only")
    ap.add_argument("--worker", choices=("one-core", "grid"), help=argparse.SUPPRESS)
    ap.add_argument("--master", default="local[1]", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.grid_set is None:
        args.grid_set = list(DEFAULT_GRID)
    if args.worker:
        fn = worker_one_core if args.worker == "one-core" else worker_grid
        print(json.dumps(fn(args)))
        return

    tmp = None
    if not args.store:
        tmp = tempfile.mkdtemp(prefix="rlpad-bench-trial-")
        args.store = tmp
        print(f"# making stages 1-3 of the quick profile in {tmp} ...", flush=True)
        print(f"# stages 1-3 took {make_store(tmp, args.run):.0f} s", flush=True)
    try:
        print(f"# trial_speed: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        common = ["--store", args.store, "--run", args.run]
        if not args.skip_one_core:
            one = _run_worker(pin, ["--worker", "one-core", "--trials", str(args.trials), *common])
            print(f"\nPart 1: one trial on one core (CPU affinity {one['affinity']}, TF 1+1 threads), "
                  f"quick [eval] as shipped, n_real={one['n_real']}; medians of {args.trials}")
            print(f"  first trial (artifact load + tracing): {one['first_trial_s']:.2f} s")
            print(f"  {'mode':<12} {'n_fake':>6} {'gan_s':>7} {'refit_s':>8} {'play_s':>7} "
                  f"{'wall_s':>7}  {'target':>6}  mean score")
            for m, r in one["modes"].items():
                ok = "ok" if r["wall_s"] <= 1.0 else "MISS"
                print(f"  {m:<12} {r['n_fake']:>6} {r['gan_s']:>7.2f} {r['refit_s']:>8.2f} "
                      f"{r['play_s']:>7.2f} {r['wall_s']:>7.2f}  {ok:>6}  {r['mean_score']:.1f}")
            c = one["modes"].get("constrained")
            if c:
                print(f"  constrained fits its own generator on the trial's {one['n_real']} rows "
                      f"(gan_s, [eval] constrained_gan_*); the rest of its trial: "
                      f"{c['wall_s'] - c['gan_s']:.2f} s")
        if args.skip_grid:
            return
        grid = {}
        for master in ("local[1]", "local[2]"):
            grid[master] = _run_worker([], ["--worker", "grid", "--master", master,
                                            *common, *sum((["--grid-set", g] for g in args.grid_set), [])])
        g1, g2 = grid["local[1]"], grid["local[2]"]
        same = g1["scores"] == g2["scores"] and g1["same_again"] and g2["same_again"]
        sets = "".join(" + " + g for g in args.grid_set)
        print(f"\nPart 2: the grid ({g1['trials']} trials; quick [eval]{sets}), "
              "run twice per master: cold (Python workers start, import TF, load the artifacts), "
              "then again on the reused workers")
        print(f"  {'master':<9} {'cold s':>7} {'warm s':>7} {'session s':>9} "
              f"{'sum of trial wall s (warm)':>26} {'load after':>10}")
        for g in (g1, g2):
            print(f"  {g['master']:<9} {g['cold_s']:>7.1f} {g['warm_s']:>7.1f} {g['session_s']:>9.1f} "
                  f"{g['trial_wall_sum_s']:>26.1f} {g['load']:>10.2f}")
        for what in ("cold", "warm"):
            sp = g1[f"{what}_s"] / g2[f"{what}_s"]
            print(f"  speedup local[2] / local[1], {what}: {sp:.2f}x "
                  f"(target >= 1.7x: {'ok' if sp >= 1.7 else 'MISS'})")
        print(f"  identical scores (local[1] vs local[2], cold vs warm): {same}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
