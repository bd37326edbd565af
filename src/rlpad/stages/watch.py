"""`rlpad play`: a stored agent plays greedily; each episode becomes a GIF in the store.

Every frame carries the episode, step and score so far (so no two consecutive frames are the
same and a GIF encoder keeps them all). Episode k runs on env seed seed + 20,000,000 + k, apart
from the training and evaluation episodes. The folder `play/` (per agent in a study) is
rewritten on every call, manifest last.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

import numpy as np

from ..artifacts import FitOutputs, select_agents
from ..config import Config
from ..store import Store

STAGE = "play"
SEED_OFFSET = 20_000_000


def _annotate(frame: np.ndarray, text: str):
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    if img.width < 160:  # MinAtar-size renders: big enough to watch and to hold the text
        img = img.resize((img.width * 4, img.height * 4), Image.NEAREST)
    ImageDraw.Draw(img).text((3, 2), text, fill=(255, 0, 0))
    return img


def record_episode(q_fn, cfg: Config, spec, seed: int, episode: int, max_steps: int = 0):
    """(frames, score, steps) of one greedy episode; frames: the reset frame and one a step."""
    from ..envs import FrameStack, make_env

    env = make_env(cfg.env, render=True)
    stack = FrameStack(spec)
    try:
        obs, _ = env.reset(seed=seed)
        state = stack.reset(obs)
        score, steps = 0.0, 0
        frames = [_annotate(env.render(), f"ep {episode} step 0 score 0")]
        while True:
            a = int(np.asarray(q_fn(state[None]))[0].argmax())
            obs, r, term, trunc, _ = env.step(spec.action_ids[a])
            score += float(r)
            steps += 1
            state = stack.push(obs)
            frames.append(_annotate(env.render(), f"ep {episode} step {steps} score {score:g}"))
            if term or trunc or (max_steps and steps >= max_steps):
                return frames, score, steps
    finally:
        env.close()


def write_gif(frames, path: str, fps: int) -> None:
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(1, 1000 // fps),
                   loop=0)


def play_agents(cfg: Config, store: Store, run: str, agent_seed: int | None = None,
                episodes: int = 3, max_steps: int = 0, fps: int = 30,
                log: Callable[[str], None] = print) -> list[dict]:
    """Every agent of the run (or the one of `agent_seed`): `episodes` greedy episodes, GIFs
    and their scores in `<agent>/play/`. Returns each agent's metrics."""
    fits = [(a, FitOutputs.open(store, run, a, need_q=False))  # all exist before any work
            for a in select_agents(cfg, agent_seed)]
    out = []
    for a, fit in fits:
        spec = fit.spec()
        q_fn = fit.greedy_fn()
        stage = a.stage(STAGE)
        writer = store.writer(run, stage)
        writer.begin()
        rows = []
        with tempfile.TemporaryDirectory(prefix="rlpad-play-") as work:
            for k in range(episodes):
                frames, score, steps = record_episode(q_fn, fit.cfg, spec,
                                                      fit.cfg.seed + SEED_OFFSET + k, k, max_steps)
                name = f"episode-{k}.gif"
                write_gif(frames, os.path.join(work, name), fps)
                writer.put_file(os.path.join(work, name), name)
                rows.append({"episode": k, "file": name, "score": score, "steps": steps,
                             "frames": len(frames)})
                log(f"[{stage}] episode {k}: score {score:g} in {steps} steps -> "
                    f"{store.url(run, stage, name)}")
        metrics = {"episodes": rows, "mean_score": float(np.mean([r["score"] for r in rows])),
                   "learner": fit.cfg.learner.kind, "env_id": fit.cfg.env.id}
        writer.commit(config={"episodes": episodes, "max_steps": max_steps, "fps": fps},
                      config_hash=fit.reader.manifest_sha256[:16], metrics=metrics,
                      upstream={fit.reader.stage: fit.reader.manifest_sha256})
        out.append(metrics)
    return out
