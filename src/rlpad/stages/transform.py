"""Stage 2: cut the stage-1 Q-net and embed every transition of the dataset: the agent's replay
(`replay`) or its own epsilon-greedy play, recorded here (`policy`)."""
from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np

from ..config import Config
from ..artifacts import Agent, FitOutputs
from ..store import Store, StoreError
from .common import already_done

STAGE = "2-transform"


class CutCheckError(StoreError):
    pass


def run(cfg: Config, store: Store, run_id: str, force: bool = False,
        log: Callable[[str], None] = print, agent: Agent | None = None) -> dict:
    """cfg: the agent's own config (its seed); agent: where its stages live (None: <run>/)."""
    stage = agent.stage(STAGE) if agent else STAGE
    from ..embed import cut_check, embed_replay
    from ..progress import Progress
    from ..qnet import split_at_cut
    from ..replay import ReplayMemory

    fit = FitOutputs.open(store, run_id, agent)
    upstream = {fit.reader.stage: fit.reader.manifest_sha256}
    config_hash = cfg.section_hash("transform") + "-" + fit.reader.manifest_sha256[:12]
    done = already_done(store, run_id, stage, config_hash, force, log)
    if done:
        return done["metrics"]
    spec = fit.spec()
    full = fit.qnet()
    cut = split_at_cut(full, fit.cfg.qnet, spec.obs_shape)
    c = cfg.transform
    policy_info: dict = {}
    if c.dataset == "policy":
        from ..collect import collect_policy_data

        prog = Progress(c.policy_steps, stage, unit="steps")
        replay, returns = collect_policy_data(fit.cfg, spec, full.model, c.policy_steps,
                                              c.policy_epsilon, progress=prog.update)
        prog.close()
        policy_info = {"policy_steps": c.policy_steps, "policy_epsilon": c.policy_epsilon,
                       "policy_episodes": len(returns),
                       "policy_return_mean": float(np.mean(returns)) if returns else None}
        log(f"[{stage}] recorded {c.policy_steps:,} steps of the agent's epsilon-greedy play "
            f"(epsilon {c.policy_epsilon}): {len(returns)} finished episodes, mean return "
            f"{policy_info['policy_return_mean']}")
    else:
        replay = ReplayMemory.load(fit.reader.local_path("replay.h5"))

    rng = np.random.default_rng(cfg.seed)
    rows = replay.transition_rows()
    if len(rows) == 0:
        raise StoreError("stage 1's replay holds no transitions; rerun `bash 1-initial-fit.sh` --force")
    sample = rng.choice(rows, size=min(c.cut_check_samples, len(rows)), replace=False)
    max_diff = cut_check(full, cut, replay.states(sample))
    if not max_diff <= c.cut_check_tol:
        raise CutCheckError(f"cut check failed: head(encoder(s)) differs from Q(s) by {max_diff:.3g} "
                            f"> transform.cut_check_tol={c.cut_check_tol}")
    log(f"[{stage}] cut check: max |head(e(s)) - Q(s)| = {max_diff:.2e} over {len(sample)} states")

    writer = store.writer(run_id, stage)
    writer.begin()
    prog = Progress(replay.size, stage, unit="states")
    t0 = time.time()
    emb = embed_replay(cut, replay, c.batch_size, c.clip_embedding, c.clip_delta,
                       progress=lambda n: prog.update(n), window=c.window)
    states_per_s = replay.size / max(time.time() - t0, 1e-9)
    prog.close()
    counts = np.bincount(emb.labels, minlength=len(emb.class_table))
    metrics = {
        "cut_check_max_abs_diff": max_diff,
        "cut_check_samples": int(len(sample)),
        "n_transitions": int(len(emb.labels)),
        "n_states_embedded": int(replay.size),
        "embed_states_per_s": states_per_s,
        "feature_dim": int(emb.features.shape[1]),
        "embed_dim": emb.embed_dim,
        "clip_fraction_embedding": emb.clip_fraction_embedding,
        "clip_fraction_delta": emb.clip_fraction_delta,
        "n_classes": int(len(emb.class_table)),
        "classes_present": int((counts > 0).sum()),
        "class_counts": {str(k): int(v) for k, v in enumerate(counts) if v},
        "gamma": fit.cfg.dqn.gamma,
        "dataset_kind": c.dataset, "window": c.window, **policy_info,
    }
    with tempfile.TemporaryDirectory(prefix="rlpad-transform-") as work:
        path = os.path.join(work, "embeddings.h5")
        emb.save(path, {"gamma": fit.cfg.dqn.gamma, "n_actions": spec.n_actions})
        writer.put_file(path, "embeddings.h5")
        if c.dataset == "policy":  # the recorded play itself, in stage 1's replay format
            replay.save(os.path.join(work, "policy_replay.h5"))
            writer.put_file(os.path.join(work, "policy_replay.h5"), "policy_replay.h5")
        writer.commit(config=cfg.to_dict(), config_hash=config_hash, metrics=metrics,
                      upstream=upstream)
    log(f"[{stage}] {metrics['n_transitions']:,} transitions embedded ({metrics['feature_dim']} features, "
        f"{metrics['classes_present']}/{metrics['n_classes']} classes present, "
        f"{100 * emb.clip_fraction_embedding:.2f}% / {100 * emb.clip_fraction_delta:.2f}% values clipped); "
        f"outputs at {store.url(run_id, stage)}")
    return metrics
