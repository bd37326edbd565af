"""Training checkpoints of a GAN: weights, optimiser and dropout-seed variables (HDF5), the loop's
state (JSON marker, written last: a folder without it is not a checkpoint)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from ..h5arrays import assign_arrays, write_arrays
from .common import CKPT_MARKER, CKPT_PREFIX, FORMAT, FORMAT_VERSION, GanError, _jsonable

if TYPE_CHECKING:
    import keras


def find_checkpoint(state_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint: state_dir itself (as restored flat by Store.load_checkpoint)
    or state_dir/ckpt-<step>/."""
    d = Path(state_dir)
    if not d.exists():
        return None
    best: tuple[int, Path] | None = None
    cands = [d] + sorted(p for p in d.iterdir()
                         if p.is_dir() and p.name.startswith(CKPT_PREFIX) and p.name[len(CKPT_PREFIX):].isdigit())
    for p in cands:
        mk = p / CKPT_MARKER
        if mk.exists():
            try:
                total = int(json.loads(mk.read_text())["state"]["total_steps"])
            except (ValueError, KeyError, json.JSONDecodeError):
                continue
            if best is None or total > best[0]:
                best = (total, p)
    return None if best is None else best[1]


def _extra_vars(model: keras.Model) -> list:
    """Model variables that .weights.h5 does not hold (dropout seed-generator states)."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def _parts(G, D, g_opt, d_opt, G_ema) -> tuple[list, list]:
    """What a checkpoint holds: (weights file, model) pairs and (HDF5 group, variables) pairs."""
    models = [("generator.weights.h5", G)]
    groups = [("g_opt", g_opt.variables), ("g_extra", _extra_vars(G))]
    if D is not None:  # a diffusion model has no second net
        models.append(("discriminator.weights.h5", D))
        groups += [("d_opt", d_opt.variables), ("d_extra", _extra_vars(D))]
    if G_ema is not None:
        models.append(("generator_ema.weights.h5", G_ema))
    return models, groups


def save_checkpoint(state_dir: Path, st, fp: str, G, D, g_opt, d_opt, G_ema) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    final = state_dir / f"{CKPT_PREFIX}{st.total_steps:09d}"
    tmp = state_dir / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    models, groups = _parts(G, D, g_opt, d_opt, G_ema)
    for name, model in models:
        model.save_weights(str(tmp / name))
    with h5py.File(tmp / "train_state.h5", "w") as f:
        for gname, vs in groups:
            write_arrays(f.create_group(gname), (v.numpy() for v in vs))
    marker = {"format": FORMAT + "-checkpoint", "format_version": FORMAT_VERSION,
              "fingerprint": fp, "state": _jsonable(dataclasses.asdict(st)), "time": time.time()}
    with open(tmp / CKPT_MARKER, "w") as fh:  # the marker last: it is what makes this a checkpoint
        json.dump(marker, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for p in state_dir.iterdir():  # keep only the newest checkpoint
        if p.is_dir() and p.name.startswith(CKPT_PREFIX) and p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def restore_checkpoint(d: Path, G, D, g_opt, d_opt, G_ema) -> None:
    models, groups = _parts(G, D, g_opt, d_opt, G_ema)
    for name, model in models:
        model.load_weights(str(d / name))
    with h5py.File(d / "train_state.h5", "r") as f:
        for gname, vs in groups:
            try:
                assign_arrays(vs, f[gname], f"checkpoint {d}: {gname}")
            except ValueError as e:
                raise GanError(str(e)) from None

