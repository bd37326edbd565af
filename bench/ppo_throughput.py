#!/usr/bin/env python
"""PPO learning throughput and final return: rlpad against Stable-Baselines3, same run.

For each game, both learners train for the same agent steps at the same settings, then play
--episodes greedy (deterministic) episodes:
  * rlpad: `rlpad.learners.ppo.train_ppo` (envs stepped together in one process, GAE, minibatch
    epochs), steps/s over its training loop (its one evaluation comes after the timed part);
  * Stable-Baselines3's PPO (PyTorch, its own environment: bench/peers.py) on a DummyVecEnv of
    the same size, steps/s over model.learn.
Games and settings:
  * CartPole-v1, RL Baselines3 Zoo's PPO (8 envs x 32 steps, 20 epochs of one 256-step
    minibatch, GAE 0.8, gamma 0.98, lr 1e-3 decayed linearly, no entropy bonus), 100k steps;
    nets: rlpad's quick Q-net torso (256-64, ReLU) shared by the policy and value heads, SB3's
    MlpPolicy with separate 256-64 ReLU nets for each (SB3 2.x has no shared MLP torso), so SB3
    does about twice rlpad's MLP FLOPs here;
  * MinAtar Breakout-v1, CleanRL's ppo.py defaults (8 envs x 128 steps, 4 epochs of 4
    minibatches, GAE 0.95, gamma 0.99, lr 2.5e-4 decayed, entropy 0.01), --minatar-steps steps;
    both on MinAtar's CNN (conv 16 3x3 -> dense 128) shared by both heads.
Target (issue 14): rlpad / SB3 >= 1.5x steps/s at an equal return.
Usage: .venv/bin/python bench/ppo_throughput.py [--games cartpole,minatar] [--minatar-steps 200000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GAMES = {
    "cartpole": {"profile": "quick", "env": "CartPole-v1", "steps": 100_000, "n_envs": 8,
                 "n_steps": 32, "epochs": 20, "minibatches": 1, "gamma": 0.98, "gae": 0.8,
                 "lr": 1e-3, "ent": 0.0},
    "minatar": {"profile": "minatar-breakout", "env": "MinAtar/Breakout-v1", "steps": 200_000,
                "n_envs": 8, "n_steps": 128, "epochs": 4, "minibatches": 4, "gamma": 0.99,
                "gae": 0.95, "lr": 2.5e-4, "ent": 0.01},
}


def worker_rlpad(g: dict, episodes: int, seed: int) -> dict:
    from rlpad.config import load_config
    from rlpad.envs import env_spec
    from rlpad.learners.ppo import train_ppo

    class NoCkpt:
        def save(self, *a):
            pass

        def load(self, *a):
            return None

    over = ["learner.kind=ppo", f"ppo.total_steps={g['steps']}", f"ppo.n_envs={g['n_envs']}",
            f"ppo.n_steps={g['n_steps']}", f"ppo.epochs={g['epochs']}",
            f"ppo.minibatches={g['minibatches']}", f"ppo.gamma={g['gamma']}",
            f"ppo.gae_lambda={g['gae']}", f"ppo.lr={g['lr']}", f"ppo.ent_coef={g['ent']}",
            "ppo.stop_at_eval_return=0", f"dqn.eval_every={10 * g['steps']}",
            f"dqn.final_eval_episodes={episodes}", "ppo.keep_best=false", f"seed={seed}"]
    cfg = load_config(g["profile"], over)
    import tempfile
    with tempfile.TemporaryDirectory() as work:
        res = train_ppo(cfg, env_spec(cfg.env), work, NoCkpt(), log=lambda s: None)
    return {"steps_per_s": res.curve[-1]["steps_per_s"], "return": res.metrics["eval_return_mean"],
            "steps": res.metrics["agent_steps"]}


def worker_sb3(g: dict, episodes: int, seed: int) -> dict:
    try:
        import stable_baselines3
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    except ImportError as e:
        return {"missing": f"the SB3 peer environment lacks {e.name} (bench/peers/sb3.txt)"}
    import time

    from torch import nn

    if g["env"].startswith("MinAtar"):
        import minatar.gym
        import peers

        minatar.gym.register_envs()
        MinAtarCNN = peers.minatar_cnn(BaseFeaturesExtractor, nn)
        kwargs = {"features_extractor_class": MinAtarCNN, "net_arch": [], "normalize_images": False}
    else:
        kwargs = {"net_arch": {"pi": [256, 64], "vf": [256, 64]}, "activation_fn": nn.ReLU}
    env = make_vec_env(g["env"], n_envs=g["n_envs"], seed=seed)
    batch = g["n_envs"] * g["n_steps"] // g["minibatches"]
    model = PPO("MlpPolicy", env, n_steps=g["n_steps"], batch_size=batch, n_epochs=g["epochs"],
                gamma=g["gamma"], gae_lambda=g["gae"], learning_rate=lambda f: g["lr"] * f,
                ent_coef=g["ent"], clip_range=0.2, vf_coef=0.5, max_grad_norm=0.5,
                policy_kwargs=kwargs, device="cpu", seed=seed, verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=g["steps"])
    wall = time.perf_counter() - t
    import gymnasium as gym
    rets, _ = evaluate_policy(model, gym.make(g["env"]), n_eval_episodes=episodes, deterministic=True,
                              return_episode_rewards=True)
    return {"steps_per_s": model.num_timesteps / wall, "return": float(sum(rets) / len(rets)),
            "steps": int(model.num_timesteps),
            "version": f"SB3 {stable_baselines3.__version__}, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads"}


def _spawn(kind: str, game: str, g: dict, episodes: int, seed: int) -> dict:
    argv = ["--worker", kind, "--game", game, "--spec", json.dumps(g), "--episodes", str(episodes),
            "--seed", str(seed)]
    if kind == "sb3":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import peers
        return peers.run_worker("sb3", os.path.abspath(__file__), argv)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"worker {kind} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", default="cartpole,minatar")
    ap.add_argument("--minatar-steps", type=int, default=200_000)
    ap.add_argument("--cartpole-steps", type=int, default=100_000)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--worker", choices=["rlpad", "sb3"], help=argparse.SUPPRESS)
    ap.add_argument("--game", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = worker_rlpad if a.worker == "rlpad" else worker_sb3
        print(json.dumps(fn(json.loads(a.spec), a.episodes, a.seed)))
        return
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; seed {a.seed}, "
          f"{a.episodes} greedy episodes after training")
    for game in a.games.split(","):
        g = dict(GAMES[game], steps=a.minatar_steps if game == "minatar" else a.cartpole_steps)
        r = _spawn("rlpad", game, g, a.episodes, a.seed)
        s = _spawn("sb3", game, g, a.episodes, a.seed)
        print(f"{game}: {g['steps']:,} steps")
        print(f"  rlpad PPO: {r['steps_per_s']:7.0f} steps/s  return {r['return']:.1f}")
        if "steps_per_s" in s:
            print(f"  SB3 PPO:   {s['steps_per_s']:7.0f} steps/s  return {s['return']:.1f}  ({s['version']})")
            print(f"  rlpad / SB3 throughput: {r['steps_per_s'] / s['steps_per_s']:.2f}x (target >= 1.5x)")
        else:
            print(f"  SB3 peer left out: {s.get('missing') or s.get('crashed')}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
