#!/usr/bin/env python
"""Breakout DQN learning throughput: rlpad against Stable-Baselines3, measured in the same run.

Part 1 - learning throughput: agent steps/s while learning (one batch-32 update every 4 agent
steps), timed over --steps agent steps after --learning-starts warm-up steps, for
  * rlpad: DQNAgent + ReplayMemory + FrameStack + the env, in the same loop as
    rlpad.dqn.train_dqn (minus its periodic evaluation and checkpoints);
  * Stable-Baselines3's DQN ("CnnPolicy", PyTorch) at the same settings.
Both: ALE/Breakout-v5 with frameskip=1 + AtariPreprocessing (84x84 grey, frame skip 4, up to
30 no-ops, sticky actions off) + a 4-frame stack; Nature CNN; batch 32; train_freq 4;
gradient_steps 1; RMSprop(lr 2.5e-4, rho 0.9, eps 0.01 outside the root); Huber loss; gradient-norm clip 10 (SB3
always clips, so rlpad clips too here); target sync every 10k steps; a fixed epsilon of 0.1
(both pay for a greedy forward pass on ~90 % of steps, as in most of a real run); the same
replay capacity (--buffer). Differences, stated: SB3 acts over all 4 Breakout actions
(rlpad: the seed's 3) - one 512x4 vs 512x3 output layer, immaterial; SB3 stores obs and
next_obs stacks (its default layout), rlpad one frame per row.

Part 2 - the train step alone (batch 32, tf.function) against the machine's float32 matmul
rate measured here (a 2048x2048 tf.matmul), with the step's FLOPs counted from the
Nature-CNN layer shapes; plus act() latency and, when SB3 is installed, its train step.

Each measurement runs in a fresh subprocess (no TF/PyTorch thread pools competing).
Timings on a shared 2-core machine are noisy: use --repeats to take medians.

Usage: .venv/bin/python bench/dqn_throughput.py [--steps 2000] [--repeats 1]
The SB3 peer runs in its own environment (bench/peers.py), made on first use.
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

EPSILON = 0.1
GRAD_CLIP = 10.0
TARGET_UPDATE = 10_000


def _rlpad_cfg(buffer: int, learning_starts: int, seed: int):
    from rlpad.config import load_config

    return load_config("breakout", [
        f"dqn.buffer_size={buffer}", f"dqn.learning_starts={learning_starts}",
        f"dqn.eps_start={EPSILON}", f"dqn.eps_end={EPSILON}", f"dqn.max_grad_norm={GRAD_CLIP}",
        f"dqn.target_update={TARGET_UPDATE}", f"seed={seed}"])


# ---- workers (each runs in its own process) ----------------------------------------------------
def worker_rlpad(args) -> dict:
    import numpy as np

    from rlpad.dqn import Actor, DQNAgent, epsilon_at
    from rlpad.envs import env_spec
    from rlpad.replay import ReplayMemory

    cfg = _rlpad_cfg(args.buffer, args.learning_starts, args.seed)
    c = cfg.dqn
    spec = env_spec(cfg.env)
    agent = DQNAgent(cfg, spec)
    replay = ReplayMemory(c.buffer_size, spec.frame_shape, spec.frame_dtype, spec.stack)
    rng = np.random.default_rng(cfg.seed)
    actor = Actor(cfg, spec, agent, replay, rng)
    actor.reset()
    total = args.learning_starts + args.steps
    step, updates, episodes, t0 = 0, 0, 0, None
    # The loop of rlpad.dqn.train_dqn (same Actor, same training schedule), minus its logging.
    while step < total:
        if step == args.learning_starts:
            t0 = time.perf_counter()
        _, ended_return = actor.step(epsilon_at(c, step))
        step += 1
        episodes += ended_return is not None
        if step >= c.learning_starts and step % c.train_freq == 0:
            for _ in range(c.gradient_steps):
                agent.train(replay.sample(rng, c.batch_size))
                updates += 1 if t0 is not None else 0
        if step % c.target_update == 0:
            agent.sync_target()
    dt = time.perf_counter() - t0
    actor.close()
    # sample + train, as the loop calls it, on the replay just filled
    ts = []
    for i in range(args.micro_reps + 3):
        t = time.perf_counter()
        agent.train(replay.sample(rng, c.batch_size))
        if i >= 3:
            ts.append(time.perf_counter() - t)
    return {"steps_per_s": args.steps / dt, "seconds": dt, "updates": updates,
            "episodes": episodes, "sample_train_ms": 1e3 * statistics.median(ts)}


def worker_sb3(args) -> dict:
    try:
        import stable_baselines3
        import torch
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as e:
        return {"missing": f"the SB3 peer environment lacks {e.name} (bench/peers/sb3.txt)"}
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True,
                                          scale_obs=False)
    env = gym.wrappers.FrameStackObservation(env, 4)  # (4, 84, 84) uint8, channels first

    model = DQN("CnnPolicy", env, learning_rate=2.5e-4, buffer_size=args.buffer,
                learning_starts=args.learning_starts, batch_size=32, gamma=0.99, train_freq=4,
                gradient_steps=1, target_update_interval=TARGET_UPDATE,
                exploration_initial_eps=EPSILON, exploration_final_eps=EPSILON,
                max_grad_norm=GRAD_CLIP,
                policy_kwargs={"optimizer_class": torch.optim.RMSprop,
                               "optimizer_kwargs": {"eps": 0.01, "alpha": 0.9}},
                device="cpu", seed=args.seed, verbose=0)
    import peers

    clock = peers.step_clock(BaseCallback, args.learning_starts, args.learning_starts + args.steps)
    model.learn(total_timesteps=args.learning_starts + args.steps, callback=clock)
    dt = clock.t1 - clock.t0
    ts = []
    for i in range(args.micro_reps + 3):  # SB3's own train(): replay sample + one update
        t = time.perf_counter()
        model.train(gradient_steps=1, batch_size=32)
        if i >= 3:
            ts.append(time.perf_counter() - t)
    return {"steps_per_s": args.steps / dt, "seconds": dt,
            "sample_train_ms": 1e3 * statistics.median(ts),
            "version": f"SB3 {stable_baselines3.__version__}, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads"}


def _layer_flops(qnet) -> list[tuple[str, int]]:
    """Forward FLOPs per state (multiply + add = 2) from the Conv2D / Dense layer shapes."""
    import keras

    out = []
    for layer in qnet.encoder.layers + qnet.head.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, oh, ow, _ = layer.output.shape
            out.append((f"conv {kh}x{kw}/{layer.strides[0]} {cin}->{cout} -> {oh}x{ow}",
                        2 * oh * ow * cout * kh * kw * cin))
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            out.append((f"dense {cin}->{cout}", 2 * cin * cout))
    return out


def worker_micro(args) -> dict:
    import numpy as np
    import rlpad  # noqa: F401  oneDNN on before TensorFlow loads (rlpad/__init__.py)
    import tensorflow as tf

    from rlpad.dqn import DQNAgent
    from rlpad.envs import env_spec

    cfg = _rlpad_cfg(args.buffer, args.learning_starts, args.seed)
    spec = env_spec(cfg.env)
    agent = DQNAgent(cfg, spec)
    rng = np.random.default_rng(0)
    b = cfg.dqn.batch_size
    batch = (rng.integers(0, 256, (b, *spec.obs_shape), dtype=np.uint8),
             rng.integers(0, spec.n_actions, b).astype(np.int32),
             rng.standard_normal(b).astype(np.float32),
             rng.integers(0, 256, (b, *spec.obs_shape), dtype=np.uint8),
             (rng.random(b) < 0.05).astype(np.float32))

    def median_s(fn, reps, warm=3):
        for _ in range(warm):
            fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    train_s = median_s(lambda: agent.train(batch), args.micro_reps)
    state = batch[0][0]
    act_s = median_s(lambda: agent.act(state), 200)
    n = 2048
    a = tf.random.normal((n, n))
    bm = tf.random.normal((n, n))
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    mm_s = median_s(lambda: mm(a, bm).numpy(), 20)
    layers = _layer_flops(agent.online)
    fwd = sum(f for _, f in layers)
    return {"train_ms": 1e3 * train_s, "act_ms": 1e3 * act_s, "matmul_gflops": 2 * n ** 3 / mm_s / 1e9,
            "fwd_flops": fwd, "layers": layers, "batch": b, "tf": tf.__version__}


WORKERS = {"rlpad": worker_rlpad, "sb3": worker_sb3, "micro": worker_micro}


def _spawn(kind: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind,
           "--steps", str(args.steps), "--learning-starts", str(args.learning_starts),
           "--buffer", str(args.buffer), "--seed", str(args.seed),
           "--micro-reps", str(args.micro_reps)]
    t = time.time()
    if kind == "sb3":  # in its own environment (bench/peers.py): never beside TensorFlow
        import peers

        res = peers.run_worker("sb3", cmd[1], cmd[2:])
        if "missing" not in res and "crashed" not in res:
            print(f"  {kind:6s} done in {time.time() - t:5.1f} s", flush=True)
        return res
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"worker {kind} failed (exit {p.returncode})")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  {kind:6s} done in {time.time() - t:5.1f} s", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="timed agent steps (after warm-up)")
    ap.add_argument("--learning-starts", type=int, default=1000, help="untimed warm-up steps")
    ap.add_argument("--buffer", type=int, default=50_000, help="replay capacity for both")
    ap.add_argument("--repeats", type=int, default=1, help="runs per peer (medians reported)")
    ap.add_argument("--micro-reps", type=int, default=30, help="timed train steps in part 2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sb3", action="store_true", help="skip the Stable-Baselines3 peer")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return

    print(f"dqn_throughput: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}; {args.steps:,} timed agent steps after "
          f"{args.learning_starts:,} warm-up, replay capacity {args.buffer:,}, eps {EPSILON}, "
          f"{args.repeats} repeat(s)", flush=True)
    runs: dict[str, list[dict]] = {"rlpad": [], "sb3": []}
    kinds = ["rlpad"] + ([] if args.no_sb3 else ["sb3"])
    for r in range(args.repeats):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):  # alternate the order
            res = _spawn(kind, args)
            if "missing" in res or "crashed" in res:
                print(f"  SB3 peer left out: {res.get('missing') or res['crashed']}")
                kinds.remove("sb3")
                continue
            runs[kind].append(res)
    micro = _spawn("micro", args)
    load = os.getloadavg()[0]

    def med(kind, key):
        return statistics.median(r[key] for r in runs[kind])

    print()
    print("Breakout learning throughput (batch-32 update every 4 agent steps)")
    print(f"  {'':28s} {'agent steps/s':>14s} {'ms/agent step':>14s} {'sample+train ms':>16s}")
    for kind, label in (("rlpad", "rlpad (TensorFlow)"), ("sb3", "Stable-Baselines3 DQN")):
        if runs[kind]:
            sps = med(kind, "steps_per_s")
            each = ", ".join(f"{r['steps_per_s']:.1f}" for r in runs[kind])
            print(f"  {label:28s} {sps:14.1f} {1e3 / sps:14.2f} {med(kind, 'sample_train_ms'):16.1f}"
                  + (f"   (runs: {each})" if len(runs[kind]) > 1 else ""))
    if runs["sb3"]:
        ratio = med("rlpad", "steps_per_s") / med("sb3", "steps_per_s")
        verdict = "meets" if ratio >= 1.5 else "MISSES"
        print(f"  {'ratio rlpad / SB3':28s} {ratio:13.2f}x   target >= 1.5x: {verdict}")
        print(f"  SB3 peer: {runs['sb3'][0]['version']}")
    else:
        print("  (no SB3 peer: see above)")

    fwd, b = micro["fwd_flops"], micro["batch"]
    step_flops = b * (3 * fwd + fwd)  # online fwd + bwd (~2x fwd) + target fwd on s'
    achieved = step_flops / (micro["train_ms"] / 1e3) / 1e9
    floor_ms = step_flops / (micro["matmul_gflops"] * 1e9) * 1e3
    print()
    print(f"Train step alone (batch {b}, Nature CNN, tf.function, TF {micro['tf']})")
    for name, f in micro["layers"]:
        print(f"  {name:40s} {f / 1e6:8.2f} MFLOP / state")
    print(f"  {'forward, one state':40s} {fwd / 1e6:8.2f} MFLOP")
    print(f"  train step = {b} x (3 x fwd [online fwd+bwd] + fwd [target]) = "
          f"{step_flops / 1e9:.2f} GFLOP")
    print(f"  {'':28s} {'ms':>8s} {'GFLOP/s':>9s} {'of matmul':>10s}")
    print(f"  {'tf.matmul 2048x2048 fp32':28s} {2 * 2048**3 / micro['matmul_gflops'] / 1e6:8.1f} "
          f"{micro['matmul_gflops']:9.1f} {'100%':>10s}")
    print(f"  {'rlpad train step':28s} {micro['train_ms']:8.1f} {achieved:9.1f} "
          f"{achieved / micro['matmul_gflops']:10.0%}")
    print(f"  {'floor at the matmul rate':28s} {floor_ms:8.1f}")
    print(f"  rlpad act() at batch 1: {micro['act_ms']:.2f} ms")
    print(f"  (load average at the end {load:.1f} on {os.cpu_count()} cores: above the core count"
          " the figures are skewed, PyTorch's OpenMP pool worst of all; DESIGN.md's record on an"
          " idle machine: ~26 ms/step, floor ~11.5 ms, SB3 62-77 agent steps/s)")


if __name__ == "__main__":
    main()
