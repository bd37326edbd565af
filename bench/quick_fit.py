#!/usr/bin/env python
"""Wall time of stage 1 on the quick profile (CartPole-v1), from a fresh store, by the CLI.

Runs `rlpad fit --profile quick` exactly as 1-initial-fit.sh does (TensorFlow import, env
checks, training with periodic evals and checkpoints, the 20-episode final evaluation,
publishing to the store) and reports the wall time against the 3-minute target together with
the final eval_return_mean (acceptance: >= 475 over 20 episodes).

With --sb3 the same run also times Stable-Baselines3's DQN at the profile's settings
(RL Baselines3 Zoo's tuned CartPole-v1 hyperparameters, which the quick profile cites) with the
same stopping rule (greedy eval of 10 episodes every 2,500 steps, stop at a mean of 500) and a
20-episode final evaluation, for a ratio against a peer. Differences: SB3's MLP is 256-256
(the zoo's), rlpad's 256-64; SB3 keeps its last weights, rlpad the best periodic eval's.

Usage: .venv/bin/python bench/quick_fit.py [--runs 1] [--sb3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 180.0


def rlpad_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "rlpad"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rlpad.cli"]


def run_rlpad(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="rlpad-bench-") as tmp:
        store = os.path.join(tmp, "store")
        cmd = [*rlpad_cmd(), "fit", "--store", store, "--run", "bench", "--profile", "quick"]
        for ov in overrides:
            cmd += ["--set", ov]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
            raise SystemExit(f"rlpad fit failed (exit {p.returncode})")
        with open(os.path.join(store, "bench", "1-fit", "manifest.json")) as f:
            m = json.load(f)["metrics"]
    return {"wall_s": wall, "eval_return_mean": m["eval_return_mean"],
            "eval_return_std": m["eval_return_std"], "eval_episodes": m["eval_episodes"],
            "agent_steps": m["agent_steps"]}


def worker_sb3() -> dict:
    try:
        import stable_baselines3
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
        from stable_baselines3.common.evaluation import evaluate_policy
    except ImportError as e:
        return {"missing": f"the SB3 peer environment lacks {e.name} (bench/peers/sb3.txt)"}
    import gymnasium as gym
    import torch

    model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64,
                buffer_size=100_000, learning_starts=1000, gamma=0.99, target_update_interval=10,
                train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
                device="cpu", seed=1, verbose=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=500.0, verbose=0)
    cb = EvalCallback(gym.make("CartPole-v1"), eval_freq=2500, n_eval_episodes=10,
                      callback_on_new_best=stop, verbose=0)
    model.learn(total_timesteps=50_000, callback=cb)
    rets, _ = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=20,
                              deterministic=True, return_episode_rewards=True)
    return {"eval_return_mean": float(sum(rets) / len(rets)),
            "eval_return_std": float(statistics.pstdev(rets)), "eval_episodes": len(rets),
            "agent_steps": int(model.num_timesteps),
            "version": f"SB3 {stable_baselines3.__version__}, torch {torch.__version__}"}


def run_sb3() -> dict:
    """The SB3 worker in its own environment (bench/peers.py): never beside TensorFlow."""
    import peers

    t = time.perf_counter()
    res = peers.run_worker("sb3", os.path.abspath(__file__), ["--worker", "sb3"])
    return {"wall_s": time.perf_counter() - t, **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="fits to time (median reported)")
    ap.add_argument("--sb3", action="store_true", help="also time Stable-Baselines3's DQN")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra profile overrides (changes what is measured)")
    ap.add_argument("--worker", choices=["sb3"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker_sb3()))
        return
    print(f"quick_fit: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; stage 1 of the quick profile by the CLI, fresh store"
          + (f", overrides {args.overrides}" if args.overrides else ""), flush=True)
    rows: dict[str, list[dict]] = {"rlpad": [], "sb3": []}
    for i in range(args.runs):
        rows["rlpad"].append(run_rlpad(args.overrides))
        print(f"  rlpad run {i + 1}: {rows['rlpad'][-1]['wall_s']:.1f} s", flush=True)
        if args.sb3:
            res = run_sb3()
            if "missing" in res or "crashed" in res:
                print(f"  SB3 peer left out: {res.get('missing') or res['crashed']}")
                args.sb3 = False
            else:
                rows["sb3"].append(res)
                print(f"  SB3 run {i + 1}: {res['wall_s']:.1f} s", flush=True)

    print()
    print(f"  {'':24s} {'wall s':>8s} {'vs 180 s':>9s} {'agent steps':>12s} {'eval return (n)':>22s}")
    for kind, label in (("rlpad", "rlpad fit --profile quick"), ("sb3", "SB3 DQN, zoo settings")):
        rs = rows[kind]
        if not rs:
            continue
        wall = statistics.median(r["wall_s"] for r in rs)
        last = rs[-1]
        ev = f"{last['eval_return_mean']:.1f} ± {last['eval_return_std']:.1f} ({last['eval_episodes']})"
        print(f"  {label:24s} {wall:8.1f} {wall / TARGET_S:8.2f}x {last['agent_steps']:12,} {ev:>22s}")
    wall = statistics.median(r["wall_s"] for r in rows["rlpad"])
    ok_t = "meets" if wall <= TARGET_S else "MISSES"
    ok_r = all(r["eval_return_mean"] >= 475 for r in rows["rlpad"])
    print(f"  rlpad: {wall:.0f} s, target <= {TARGET_S:.0f} s: {ok_t}; eval_return_mean >= 475 "
          f"over 20 episodes: {'meets' if ok_r else 'MISSES'}")
    if rows["sb3"]:
        ratio = statistics.median(r["wall_s"] for r in rows["sb3"]) / wall
        print(f"  SB3 wall / rlpad wall: {ratio:.2f}x  (peer: {rows['sb3'][0]['version']})")
    print("  (wall time on a shared 2-core machine is noisy; the fit stops early once a periodic"
          " eval reaches 500)")


if __name__ == "__main__":
    main()
