#!/usr/bin/env python
"""Study wall time: stages 1-4 of the quick profile for K = 1, 2, 4 agents, by the CLI.

Each K runs in a fresh temporary store (nothing reused across K), stage by stage as the
numbered scripts run them (Spark local[*]); prints each stage's wall time per K and the total
against K = 1. Stages 1-3 run agent after agent on a local master, so they should scale ~K;
stage 4 is one grid across agents (its worker start-up is paid once).
Then, with --scaling, stage 4's grid of the largest study from 1 to 2 executors
(bench/trial_speed.py's part 2 on that store; target >= 1.7x).

  .venv/bin/python bench/study_speed.py [--agents 1 2 4] [--set KEY=VALUE ...] [--scaling]
e.g. --set gan.steps=2000 for a shorter run (then the figures are of that budget).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("fit", "transform", "fit-gan", "eval")


def run_study(store: str, k: int, sets: list[str]) -> dict[str, float]:
    walls = {}
    for cmd in STAGES:
        argv = [sys.executable, "-m", "rlpad.cli", cmd, "--store", store, "--run", "study",
                "--set", f"study.agents={k}", *[a for s in sets for a in ("--set", s)]]
        t = time.perf_counter()
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        walls[cmd] = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"rlpad {cmd} (K={k}) failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        print(f"  K={k} {cmd:10s} {walls[cmd]:7.1f} s", flush=True)
    return walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--scaling", action="store_true",
                    help="then stage 4 of the largest study on local[1] vs local[2]")
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"study_speed: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"quick profile{' + ' + ' '.join(args.sets) if args.sets else ' as shipped'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rlpad-study-bench-") as tmp:
        walls = {}
        for k in args.agents:
            walls[k] = run_study(os.path.join(tmp, f"k{k}"), k, args.sets)
        base = sum(walls[args.agents[0]].values())
        print()
        print(f"  {'agents':>6s} " + " ".join(f"{c:>9s}" for c in STAGES) + f" {'total':>9s} {'vs K=' + str(args.agents[0]):>8s}")
        for k, w in walls.items():
            total = sum(w.values())
            print(f"  {k:6d} " + " ".join(f"{w[c]:9.1f}" for c in STAGES)
                  + f" {total:9.1f} {total / base:7.2f}x")
        if args.scaling:
            k = max(args.agents)
            print(f"\nstage 4 of the K={k} study, local[1] -> local[2] (bench/trial_speed.py):",
                  flush=True)
            subprocess.run([sys.executable, str(ROOT / "bench" / "trial_speed.py"), "--store",
                            os.path.join(tmp, f"k{k}"), "--run", "study", "--skip-one-core",
                            "--grid-set", f"study.agents={k}",
                            *[a for s in args.sets if s.startswith(("eval.", "study.", "gan."))
                              for a in ("--grid-set", s)]], cwd=ROOT, check=True)
    print(f"  (load average at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
