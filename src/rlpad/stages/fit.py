"""Stage 1: fit the profile's learner (DQN, Double DQN, Split-Q or PPO); publish its net, data,
learning curve and TensorBoard logs."""
from __future__ import annotations

import csv
import os
import tempfile
from typing import Callable

from ..config import Config
from ..artifacts import Agent
from ..store import Store
from .common import StoreCheckpointer, already_done

STAGE = "1-fit"


def plot_curve(curve: list[dict], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    steps = [r["step"] for r in curve]
    mean = [r["eval_return_mean"] for r in curve]
    std = [r["eval_return_std"] for r in curve]
    ax.plot(steps, mean, marker="o", label="greedy eval return")
    ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    alpha=0.2, label="± 1 sd")
    ax.plot(steps, [r["train_return"] for r in curve], alpha=0.7, label="training return (last 20)")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def run(cfg: Config, store: Store, run_id: str, force: bool = False,
        log: Callable[[str], None] = print, agent: Agent | None = None) -> dict:
    """cfg: the agent's own config (its seed); agent: where its stages live (None: <run>/)."""
    stage = agent.stage(STAGE) if agent else STAGE
    config_hash = cfg.fit_hash()
    done = already_done(store, run_id, stage, config_hash, force, log)
    if done:
        return done["metrics"]
    from ..learners import learner  # TensorFlow loads only when the stage really runs
    from ..envs import env_spec
    spec = env_spec(cfg.env)
    writer = store.writer(run_id, stage)
    writer.begin()
    with tempfile.TemporaryDirectory(prefix="rlpad-fit-") as work:
        tb = os.path.join(work, "tb")
        res = learner(cfg.learner.kind)(cfg, spec, work, StoreCheckpointer(store, run_id, stage, config_hash),
                        log=log, tb_dir=tb)
        out = os.path.join(work, "out")
        os.makedirs(out)
        res.write(out)  # Q-family: qnet.weights.h5 + replay.h5; ppo: policy.weights.h5 + rollout.h5
        write_csv(res.curve, os.path.join(out, "curve.csv"))
        plot_curve(res.curve, os.path.join(out, "curve.png"), f"{cfg.env.id}: stage-1 {cfg.learner.kind}")
        for name in sorted(os.listdir(out)):
            writer.put_file(os.path.join(out, name), name)
        for name in sorted(os.listdir(tb)):
            writer.put_file(os.path.join(tb, name), f"tb/{name}")
        metrics = {**res.metrics, "learner": cfg.learner.kind, "env_id": cfg.env.id, "n_actions": spec.n_actions,
                   "embed_dim": res.embed_dim}
        writer.commit(config=cfg.to_dict(), config_hash=config_hash, metrics=metrics,
                      run_info={"resumed_from_step": res.resumed_from})
    store.clear_checkpoints(run_id, stage)
    log(f"[{stage}] eval return {metrics['eval_return_mean']:.1f} ± {metrics['eval_return_std']:.1f} "
        f"over {metrics['eval_episodes']} episodes; outputs at {store.url(run_id, stage)}")
    return metrics
