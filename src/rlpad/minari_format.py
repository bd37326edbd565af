"""Minari's on-disk dataset format (its HDF5 storage, as minari 0.5 reads it), written directly
with h5py: exporting needs neither minari nor the jax its dataset creation pulls in. Tests open
what this writes with minari's own loader.

A dataset is <root>/<namespace>/<name>-v<N>/data/ holding metadata.json and main_data.hdf5,
with one group episode_<i> per episode: observations (steps + 1 rows, the reset's first),
actions, rewards, terminations and truncations (one row per step), and infos (steps + 1 rows,
as minari's DataCollector records them). Images are stored raw (jpeg_encoding false): minari's
default JPEG is lossy, and Atari frames must come back exactly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import gymnasium as gym
import h5py
import numpy as np

MINARI_VERSION = "0.5.4"  # the dataset version written (minari reads it from 0.5.4 on)
DATASET_ID = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")


@dataclass
class Episode:
    observations: np.ndarray  # (steps + 1, *obs)
    actions: np.ndarray  # (steps,)
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # each (steps + 1, ...)
    seed: int | None = None

    def __post_init__(self):
        n = len(self.actions)
        if n < 1 or len(self.observations) != n + 1:
            raise ValueError(f"an episode needs steps >= 1 and steps + 1 observations "
                             f"(got {n} steps, {len(self.observations)} observations)")
        for name in ("rewards", "terminations", "truncations"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"episode {name}: {len(getattr(self, name))} rows for {n} steps")


def serialize_space(space: gym.Space) -> str:
    """A space as minari's serialize_space writes it (the types our games use)."""
    if isinstance(space, gym.spaces.Box):
        d = {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
             "low": space.low.tolist(), "high": space.high.tolist()}
    elif isinstance(space, gym.spaces.Discrete):
        d = {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    else:
        raise ValueError(f"no Minari serialisation here for a {type(space).__name__} space")
    return json.dumps(d)


def dataset_dir(root: str | os.PathLike, dataset_id: str) -> Path:
    if not DATASET_ID.fullmatch(dataset_id):
        raise ValueError(f"dataset id {dataset_id!r} is not Minari's (namespace/)name-v<N>")
    return Path(root) / dataset_id


def write_dataset(root: str | os.PathLike, dataset_id: str, episodes: Iterable[Episode],
                  observation_space: gym.Space, action_space: gym.Space,
                  env_spec_json: str | None = None, extra: dict | None = None,
                  force: bool = False) -> dict:
    """Write a whole dataset under `root` (minari's datasets folder) and return its metadata.
    The folder appears complete or not at all: it is written beside its place and renamed
    in; an existing dataset is kept unless `force`, and then replaced only once the new one
    is complete."""
    final = dataset_dir(root, dataset_id)
    if final.exists() and not force:
        raise FileExistsError(f"{final} exists; pass --force to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        data = work / "data"
        data.mkdir()
        steps = n_episodes = 0
        with h5py.File(data / "main_data.hdf5", "w", track_order=True) as f:
            for i, ep in enumerate(episodes):
                g = f.create_group(f"episode_{i}")
                g.attrs["id"] = i
                g.attrs["total_steps"] = len(ep.actions)
                if ep.seed is not None:
                    g.attrs["seed"] = int(ep.seed)
                g.create_dataset("observations", data=ep.observations, chunks=True)
                g.create_dataset("actions", data=ep.actions, chunks=True)
                g.create_dataset("rewards", data=ep.rewards, chunks=True)
                g.create_dataset("terminations", data=ep.terminations.astype(np.bool_))
                g.create_dataset("truncations", data=ep.truncations.astype(np.bool_))
                if ep.infos:
                    info = g.create_group("infos")
                    for k, v in ep.infos.items():
                        info.create_dataset(k, data=v)
                steps += len(ep.actions)
                n_episodes += 1
        if n_episodes == 0:
            raise ValueError(f"{dataset_id}: no complete episode to export")
        metadata = {
            "dataset_id": dataset_id, "minari_version": MINARI_VERSION, "data_format": "hdf5",
            "jpeg_encoding": False, "total_episodes": n_episodes, "total_steps": steps,
            "observation_space": serialize_space(observation_space),
            "action_space": serialize_space(action_space),
            "dataset_size": round(os.path.getsize(data / "main_data.hdf5") / 1e6, 1),
            **(extra or {}),
        }
        if env_spec_json is not None:
            metadata["env_spec"] = env_spec_json
        (data / "metadata.json").write_text(json.dumps(metadata))
        work.chmod(0o755)  # mkdtemp's 0700 would hide it in a shared datasets folder
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            old.rmdir()
            final.rename(old)
        try:
            work.rename(final)
        except OSError:
            if old is not None:
                old.rename(final)  # the old dataset back where it was
            raise
        if old is not None:
            shutil.rmtree(old)
        return metadata
    finally:
        if work.exists():
            shutil.rmtree(work)


def env_spec_json(env: gym.Env) -> str | None:
    """The env's spec as minari stores it (to recover the env), or None where gymnasium
    cannot serialise it."""
    try:
        return env.spec.to_json() if env.spec is not None else None
    except (TypeError, ValueError):  # a wrapper or kwarg gymnasium cannot write as JSON
        return None
