#!/usr/bin/env python
"""Stage 1's learners side by side: K independent agents per learner on one profile.

Runs `rlpad fit --set study.agents=K --set learner.kind=<kind>` per learner (the CLI as
1-initial-fit.sh runs it) in a fresh store, then prints per learner the agents' final greedy
scores (the profile's final evaluation episodes), how many reach --solved, the IQM with a
bootstrap CI over agents, and the wall time; the learning curves of every agent go into one PNG.
Issue 14's acceptance: on `quick` every learner >= 475 for >= 4 of 5 seeds; on lunarlander
and minatar-breakout 3 seeds per learner at the same step budget.

Usage: .venv/bin/python bench/learners.py [--profile quick] [--agents 5]
       [--learners dqn,double-dqn,split-q] [--set KEY=VALUE ...] [--solved 475] [--png curves.png]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rlpad.study import iqm  # noqa: E402


def rlpad_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "rlpad"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rlpad.cli"]


def iqm_ci(x: list[float], reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    a = np.asarray(x, float)
    if a.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = [iqm(a[rng.integers(0, a.size, a.size)]) for _ in range(reps)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(lo), float(hi)


def run_learner(store: str, profile: str, kind: str, agents: int, sets: list[str]) -> dict:
    cmd = [*rlpad_cmd(), "fit", "--store", store, "--run", kind, "--profile", profile,
           "--set", f"study.agents={agents}", "--set", f"learner.kind={kind}"]
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-3000:])
        raise SystemExit(f"rlpad fit ({kind}) failed with exit {p.returncode}")
    run = Path(store) / kind
    dirs = sorted((run / "agents").iterdir(), key=lambda d: int(d.name)) if (run / "agents").exists() \
        else [run]
    scores, curves, seeds = [], [], []
    for d in dirs:
        m = json.loads((d / "1-fit" / "manifest.json").read_text())
        seeds.append(int(m["config"]["seed"]))
        scores.append(float(m["metrics"]["eval_return_mean"]))
        with open(d / "1-fit" / "curve.csv") as f:
            curves.append([(int(r["step"]), float(r["eval_return_mean"])) for r in csv.DictReader(f)])
        episodes = int(m["metrics"]["eval_episodes"])
    return {"kind": kind, "seeds": seeds, "scores": scores, "curves": curves, "wall_s": wall,
            "episodes": episodes}


def plot(results: list[dict], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for i, r in enumerate(results):
        colour = f"C{i}"
        for j, c in enumerate(r["curves"]):
            ax.plot([s for s, _ in c], [v for _, v in c], color=colour, alpha=0.5,
                    label=r["kind"] if j == 0 else None)
    ax.set_xlabel("agent steps")
    ax.set_ylabel("greedy eval return (each line an agent)")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--learners", default="dqn,double-dqn,split-q")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--solved", type=float, default=475.0)
    ap.add_argument("--png", default="")
    a = ap.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"profile {a.profile}, {a.agents} agents per learner, overrides {a.sets}")
    results = []
    with tempfile.TemporaryDirectory(prefix="rlpad-learners-") as tmp:
        for kind in a.learners.split(","):
            r = run_learner(os.path.join(tmp, "store"), a.profile, kind, a.agents, a.sets)
            results.append(r)
            lo, hi = iqm_ci(r["scores"])
            solved = sum(s >= a.solved for s in r["scores"])
            print(f"{kind:12s} solved (>= {a.solved:g}) {solved}/{len(r['scores'])}  "
                  f"IQM {iqm(r['scores']):8.1f} [{lo:.1f}, {hi:.1f}]  wall {r['wall_s']:6.0f} s  "
                  f"per seed ({r['episodes']} episodes each): "
                  + ", ".join(f"{s}: {v:.1f}" for s, v in zip(r["seeds"], r["scores"])), flush=True)
    if a.png:
        plot(results, a.png, f"{a.profile}: stage-1 learners, {a.agents} agents each")
        print(f"learning curves: {a.png}")


if __name__ == "__main__":
    main()
