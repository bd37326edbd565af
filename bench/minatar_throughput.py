#!/usr/bin/env python
"""MinAtar Breakout DQN learning throughput: rlpad against Stable-Baselines3, same run.

Agent steps per second while learning, timed over --steps agent steps after --learning-starts
untimed warm-up steps, for
  * rlpad: DQNAgent + ReplayMemory + the env in rlpad.dqn.train_dqn's loop (Actor), minus its
    periodic evaluations and checkpoints, on the minatar-breakout profile;
  * Stable-Baselines3's DQN (PyTorch, its own environment: bench/peers.py) with the same net
    (MinAtar's: conv 16 3x3 stride 1 -> dense 128 -> 3 actions, as a features extractor + an
    empty net_arch) and settings.
Same settings for both: MinAtar/Breakout-v1, a batch-32 update every agent step (MinAtar's
training frequency), Adam (lr 2.5e-4), Huber loss, gradient-norm clip 10, target sync every
1,000 steps, a fixed epsilon of 0.1, replay capacity --buffer. Small nets are dispatch-bound,
so this measures per-step overhead more than FLOPs.

Target: rlpad / SB3 >= 1.5x (goal 2x). Usage:
  .venv/bin/python bench/minatar_throughput.py [--steps 3000] [--learning-starts 1000] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
EPSILON, LR, TARGET_UPDATE, GRAD_CLIP = 0.1, 2.5e-4, 1_000, 10.0


def worker_rlpad(args) -> dict:
    import numpy as np

    from rlpad.config import load_config
    from rlpad.dqn import Actor, DQNAgent
    from rlpad.envs import env_spec
    from rlpad.replay import ReplayMemory

    cfg = load_config("minatar-breakout", [
        f"dqn.buffer_size={args.buffer}", f"dqn.learning_starts={args.learning_starts}",
        f"dqn.eps_start={EPSILON}", f"dqn.eps_end={EPSILON}", f"dqn.lr={LR}",
        f"dqn.target_update={TARGET_UPDATE}", f"dqn.max_grad_norm={GRAD_CLIP}", f"seed={args.seed}"])
    c = cfg.dqn
    spec = env_spec(cfg.env)
    agent = DQNAgent(cfg, spec)
    replay = ReplayMemory(c.buffer_size, spec.frame_shape, spec.frame_dtype, spec.stack)
    rng = np.random.default_rng(cfg.seed)
    actor = Actor(cfg, spec, agent, replay, rng)
    actor.reset()
    total, step, t0 = args.learning_starts + args.steps, 0, None
    while step < total:  # train_dqn's loop body, minus logging, evals and checkpoints
        if step == args.learning_starts:
            t0 = time.perf_counter()
        actor.step(EPSILON)
        step += 1
        if step >= c.learning_starts and step % c.train_freq == 0:
            for _ in range(c.gradient_steps):
                agent.train(replay.sample(rng, c.batch_size))
        if step % c.target_update == 0:
            agent.sync_target()
    dt = time.perf_counter() - t0
    actor.close()
    import tensorflow as tf

    return {"steps_per_s": args.steps / dt, "version": f"TF {tf.__version__}"}


def worker_sb3(args) -> dict:
    try:
        import minatar.gym
        import stable_baselines3
        import torch
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    except ImportError as e:
        return {"missing": f"the SB3 peer environment lacks {e.name} (bench/peers/sb3.txt)"}
    import gymnasium as gym
    from torch import nn

    minatar.gym.register_envs()
    env = gym.make("MinAtar/Breakout-v1")

    import peers

    MinAtarCNN = peers.minatar_cnn(BaseFeaturesExtractor, nn)
    model = DQN("MlpPolicy", env, learning_rate=LR, buffer_size=args.buffer,
                learning_starts=args.learning_starts, batch_size=32, gamma=0.99, train_freq=1,
                gradient_steps=1, target_update_interval=TARGET_UPDATE,
                exploration_initial_eps=EPSILON, exploration_final_eps=EPSILON,
                max_grad_norm=GRAD_CLIP,
                policy_kwargs={"features_extractor_class": MinAtarCNN, "net_arch": [],
                               "normalize_images": False},
                device="cpu", seed=args.seed, verbose=0)
    clock = peers.step_clock(BaseCallback, args.learning_starts, args.learning_starts + args.steps)
    model.learn(total_timesteps=args.learning_starts + args.steps, callback=clock)
    return {"steps_per_s": args.steps / (clock.t1 - clock.t0),
            "version": f"SB3 {stable_baselines3.__version__}, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads"}


WORKERS = {"rlpad": worker_rlpad, "sb3": worker_sb3}


def _spawn(kind: str, args) -> dict:
    argv = ["--worker", kind, "--steps", str(args.steps), "--learning-starts",
            str(args.learning_starts), "--buffer", str(args.buffer), "--seed", str(args.seed)]
    if kind == "sb3":  # its own environment (bench/peers.py): never beside TensorFlow
        import peers

        return peers.run_worker("sb3", os.path.abspath(__file__), argv)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"worker {kind} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--learning-starts", type=int, default=1000)
    ap.add_argument("--buffer", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1, help="runs per peer (medians reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"minatar_throughput: {cpu}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.steps:,} timed agent steps after "
          f"{args.learning_starts:,}, {args.repeats} repeat(s)", flush=True)
    runs: dict[str, list[dict]] = {"rlpad": [], "sb3": []}
    kinds = ["rlpad", "sb3"]
    for r in range(args.repeats):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            res = _spawn(kind, args)
            if "missing" in res or "crashed" in res:
                print(f"  SB3 peer left out: {res.get('missing') or res['crashed']}")
                kinds.remove("sb3")
                continue
            runs[kind].append(res)
            print(f"  {kind:6s} {res['steps_per_s']:8.1f} agent steps/s", flush=True)
    med = {k: statistics.median(r["steps_per_s"] for r in v) for k, v in runs.items() if v}
    print()
    for k, label in (("rlpad", "rlpad (TensorFlow)"), ("sb3", "Stable-Baselines3 DQN")):
        if k in med:
            print(f"  {label:26s} {med[k]:10.1f} agent steps/s   ({runs[k][0]['version']})")
    if "sb3" in med:
        ratio = med["rlpad"] / med["sb3"]
        print(f"  {'ratio rlpad / SB3':26s} {ratio:10.2f}x   target >= 1.5x: "
              f"{'meets' if ratio >= 1.5 else 'MISSES'} (goal 2x)")
    print(f"  (load average at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
