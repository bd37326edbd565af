"""`rlpad export minari`: an agent's data as Minari datasets, which `minari.load_dataset` opens
(and through it d3rlpy, TorchRL, AgileRL...).

Datasets, per agent:
- `replay`: stage 1's replay, the agent's learning history: env observations (single frames,
  as the env returns them; stacking is the learner's business), env action ids, raw rewards,
  the env's terminations and truncations, and `infos/life_lost`.
- `policy`: stage 2's recording of the agent's own epsilon-greedy play (profiles whose
  transform.dataset is "policy"), in the same form.
- `embedded`: stage 2's embedded transitions as vector observations e(s) of the cut Q-net,
  episode by episode over the replay stage 2 embedded (an episode's last observation is
  e(s) + (e(s') - e(s)) of its last transition, clipped as stage 2 clipped).
An episode cut by the ring buffer at its start is left out; the episode under way when
recording stopped ends truncated. Episode seeds are kept when the replay holds its whole run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..artifacts import FitOutputs, select_agents
from ..config import Config
from ..minari_format import Episode, dataset_dir, env_spec_json, write_dataset
from ..replay import ReplayMemory
from ..seeding import derive_seed, episode_seed
from ..store import Store, StoreError

DATASETS = ("replay", "policy", "embedded")


def minari_root() -> Path:
    """Where minari looks: MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH")
                or Path.home() / ".minari" / "datasets")


def dataset_id(run: str, seed: int, n_agents: int, dataset: str) -> str:
    """Minari ids take [-_A-Za-z0-9/]: a run id's other characters become "_" (the run id
    itself is in the dataset's metadata)."""
    ns = "rlpad/" + re.sub(r"[^-\w]", "_", run)
    return f"{ns}/{dataset}-v0" if n_agents == 1 else f"{ns}/seed{seed}/{dataset}-v0"


def replay_episodes(replay: ReplayMemory, action_ids: tuple[int, ...], obs_dtype,
                    actor_seed: int | None, observe=None) -> Iterator[Episode]:
    """The replay's episodes (see the module's doc). observe(rows, last_transition_row) gives
    an episode's observations (default: the frames of its rows); it may return None to leave
    the episode out. actor_seed: the recording Actor's seed, when the replay holds its run."""
    ids = np.asarray(action_ids, np.int64)
    for k, (rows, under_way) in enumerate(replay.episodes()):
        t = rows[:-1]
        if not (replay.has_next[t].all() and not replay.has_next[rows[-1]]):
            raise StoreError("replay rows do not form episodes (a transition is missing); "
                             "the file is damaged: rerun `bash 1-initial-fit.sh` --force")
        obs = replay.frames[rows] if observe is None else observe(rows)
        if obs is None:
            continue
        trunc = replay.truncations[t].copy()
        if under_way:
            trunc[-1] = True
        yield Episode(
            observations=_cast(obs, obs_dtype), actions=ids[replay.actions[t]],
            rewards=replay.rewards[t].astype(np.float64), terminations=replay.terminations[t].copy(),
            truncations=trunc, infos={"life_lost": np.r_[False, replay.life_losses[t]]},
            seed=None if actor_seed is None else episode_seed(actor_seed, k))


def _cast(obs: np.ndarray, dtype) -> np.ndarray:
    out = obs.astype(dtype, copy=False)
    if not np.array_equal(out.astype(obs.dtype), obs):
        raise ValueError(f"observations of dtype {obs.dtype} do not fit the env's {np.dtype(dtype)}")
    return out


def _whole_run(replay: ReplayMemory) -> bool:
    return replay.added == replay.size and replay.size > 0 and replay.pos[0] == 0


def export_minari(cfg: Config, store: Store, run: str, agent_seed: int | None = None,
                  datasets: tuple[str, ...] = ("replay",), root: str | os.PathLike | None = None,
                  force: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Every agent of the run (or the one of `agent_seed`): each dataset asked for, written
    under `root` (default: minari's folder). Returns the datasets' metadata."""
    import gymnasium as gym

    from ..envs import make_env

    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise ValueError(f"--dataset {bad[0]!r}: choose from {', '.join(DATASETS)}")
    n_agents = cfg.study.agents  # ids name the seed in a study, whichever agents are exported
    agents = select_agents(cfg, agent_seed)
    root = Path(root) if root is not None else minari_root()
    # every upstream stage is opened (and so checked to exist) before anything is written
    plan = []
    for a in agents:
        fit = FitOutputs.open(store, run, a)
        tr = store.require(run, a.stage("2-transform")) if set(datasets) - {"replay"} else None
        if tr is not None and tr.manifest.get("upstream", {}).get(fit.reader.stage) != \
                fit.reader.manifest_sha256:
            raise StoreError(f"{store.url(run, tr.stage)} was made from another stage 1 than "
                             f"{store.url(run, fit.reader.stage)}; rerun `bash 2-transform.sh` "
                             "with --force")
        if "policy" in datasets and "policy_replay.h5" not in tr.manifest["files"]:
            raise StoreError(f"{store.url(run, tr.stage)} holds no recorded play (its "
                             "transform.dataset is not \"policy\"): export --dataset replay")
        ids = {name: dataset_id(run, a.seed, n_agents, name) for name in datasets}
        for did in ids.values():
            if dataset_dir(root, did).exists() and not force:
                raise FileExistsError(f"{dataset_dir(root, did)} exists; pass --force to replace it")
        plan.append((a, fit, tr, ids))
    out = []
    for a, fit, tr, ids in plan:
        spec = fit.spec()
        env = make_env(fit.cfg.env)
        try:
            obs_space, act_space, spec_json = env.observation_space, env.action_space, env_spec_json(env)
        finally:
            env.close()
        for name in datasets:
            did = ids[name]
            if name == "replay":
                replay = ReplayMemory.load(fit.reader.local_path("replay.h5"))
                actor_seed = fit.cfg.seed if _whole_run(replay) else None
                episodes = replay_episodes(replay, spec.action_ids, obs_space.dtype, actor_seed)
                space, source = obs_space, fit.reader.stage
            else:
                src, actor_seed, replay = _transform_replay(fit, tr)
                source = f"{tr.stage} ({src})"
                actor_seed = actor_seed if _whole_run(replay) else None
                if name == "policy":
                    episodes = replay_episodes(replay, spec.action_ids, obs_space.dtype, actor_seed)
                    space = obs_space
                else:
                    observe, dim = _embedded_observer(tr, replay)
                    episodes = replay_episodes(replay, spec.action_ids, np.float32, actor_seed,
                                               observe=observe)
                    space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
            meta = write_dataset(
                root, did, episodes, space, act_space, spec_json if name != "embedded" else None,
                extra={"author": ["rlpad"], "algorithm_name": "rlpad DQN (learning history)"
                       if "1-fit" in source else "epsilon-greedy play of the rlpad agent",
                       "code_permalink": "rlpad export minari",
                       "rlpad": {"run": run, "agent_seed": a.seed, "dataset": name,
                                 "source": source, "env_id": fit.cfg.env.id,
                                 "action_ids": list(spec.action_ids)}},
                force=force)
            log(f"rlpad export: {did}: {meta['total_episodes']:,} episodes, "
                f"{meta['total_steps']:,} steps from {source} -> {root / did}")
            out.append(meta)
    return out


def _transform_replay(fit: FitOutputs, tr) -> tuple[str, int, ReplayMemory]:
    """The replay stage 2 embedded: its own recording (policy) or stage 1's, with the seed of
    the Actor that recorded it."""
    if "policy_replay.h5" in tr.manifest["files"]:
        return ("its recorded play", derive_seed(fit.cfg.seed, "policy-data"),
                ReplayMemory.load(tr.local_path("policy_replay.h5")))
    return "stage 1's replay", fit.cfg.seed, ReplayMemory.load(fit.reader.local_path("replay.h5"))


def _embedded_observer(tr, replay: ReplayMemory):
    """observe(rows) for the embedded dataset: e(s) of each row, the last one's as
    e(s) + delta of the episode's last transition; None where stage 2 did not embed the
    whole episode (a recency window)."""
    from ..embed import Embedded

    emb = Embedded.load(tr.local_path("embeddings.h5"))
    d = emb.embed_dim
    index = np.full(replay.capacity, -1, np.int64)
    index[emb.rows] = np.arange(len(emb.rows))

    def observe(rows: np.ndarray):
        idx = index[rows[:-1]]
        if (idx < 0).any():
            return None
        e = emb.features[idx]
        return np.concatenate([e[:, :d], e[-1:, :d] + e[-1:, d:]])

    return observe, d
