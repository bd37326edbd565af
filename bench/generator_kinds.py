#!/usr/bin/env python
"""Every generator kind on one agent's stage-2 embeddings: stage-3 fits on all training rows
and constrained fits on n_real rows, each judged on held-out real rows (C2ST, Fréchet / floor,
memorisation ratio), with fit wall time (one-time tracing excluded: each signature is traced by
a 1-step fit first), steps/s and the time to sample 5,000 transitions.

Peer, in the same run: the WGAN-GP loop one step per call (a chunk of 1, as the loop ran
before compiled chunks), against the chunked loop on the same settings.

--time-to C (e.g. 0.75): per kind, fits of 1k, 2k, 4k, 8k, 16k steps and the kind's own
budget, in that order, until one's held-out C2ST is <= C: its steps and fit wall time, and the
peer's time for as many steps at its per-call rate.

Usage: .venv/bin/python bench/generator_kinds.py --embeddings STORE/RUN/agents/S/2-transform/embeddings.h5
           --seed S [--kinds wgan-gp,cvae,diffusion,cgan-seed] [--n-real 100,500,2000]
           [--profile quick] [--time-to 0.75] [--out F.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from rlpad.config import load_config  # noqa: E402
from rlpad.embed import Embedded  # noqa: E402
from rlpad.generators import fit_gan, generator_rows, holdout_split  # noqa: E402
from rlpad.generators.quality import quality_report  # noqa: E402
from rlpad.modes import kind_config  # noqa: E402
from rlpad.trials import constrained_config  # noqa: E402


def judge(fitted, x, emb, train_idx, hold_idx, seed):
    t = time.perf_counter()
    fx, fl = fitted.sample(len(hold_idx), labels=emb.labels[hold_idx], seed=seed + 7)
    rep = quality_report(x[hold_idx], emb.labels[hold_idx], fx, fl,
                         len(emb.class_table), seed=seed, train_x=x[train_idx])
    return rep, time.perf_counter() - t


def timed_fit(x, y, k, cfg, seed):
    fit_gan(x, y, k, dataclasses.replace(cfg, steps=1), seed=seed)  # traces this signature
    t = time.perf_counter()
    f = fit_gan(x, y, k, cfg, seed=seed)
    return f, time.perf_counter() - t


def time_to(bar, x, emb, train, hold, k, cfg, seed, peer_steps_per_s) -> dict:
    """The first fit of the ladder whose held-out C2ST is <= bar."""
    ladder = sorted({s for s in (1000, 2000, 4000, 8000, 16000) if s < cfg.steps} | {cfg.steps})
    tried = []
    for steps in ladder:
        f, wall = timed_fit(x[train], emb.labels[train], k,
                            dataclasses.replace(cfg, steps=steps), seed)
        c = judge(f, x, emb, train, hold, seed)[0]["c2st_accuracy"]
        tried.append({"steps": steps, "wall_s": wall, "c2st": c})
        if c <= bar:
            return {"kind": cfg.variant, "fit": f"time to C2ST <= {bar}", "steps": steps,
                    "wall_s": wall, "c2st_accuracy": c,
                    "peer_wall_s": steps / peer_steps_per_s, "ladder": tried}
    return {"kind": cfg.variant, "fit": f"time to C2ST <= {bar}", "steps": None,
            "wall_s": None, "c2st_accuracy": None, "ladder": tried}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--seed", type=int, required=True, help="the agent's seed")
    ap.add_argument("--kinds", default="wgan-gp,cvae,diffusion,cgan-seed")
    ap.add_argument("--n-real", default="100,500,2000")
    ap.add_argument("--peer-steps", type=int, default=300)
    ap.add_argument("--profile", default="quick", help="the profile the embeddings' run used")
    ap.add_argument("--time-to", type=float, default=None, metavar="C2ST",
                    help="also: steps and wall time until a fit's C2ST is <= this")
    ap.add_argument("--out")
    a = ap.parse_args()
    prof = load_config(a.profile)
    base = prof.gan
    emb = Embedded.load(a.embeddings)
    x = generator_rows(emb.features, emb.rewards, base.reward)  # what stage 3 fits
    k = len(emb.class_table)
    train, hold = holdout_split(emb.labels, base.holdout_fraction, a.seed)
    rows = []

    peer = dataclasses.replace(base, steps=a.peer_steps, log_every=1, checkpoint_every=10**9)
    chunked = dataclasses.replace(peer, log_every=100)
    _, t1 = timed_fit(x[train], emb.labels[train], k, peer, a.seed)
    _, tc = timed_fit(x[train], emb.labels[train], k, chunked, a.seed)
    rows.append({"what": "peer: wgan-gp one step per call vs chunks of 100",
                 "per_call_steps_per_s": a.peer_steps / t1, "chunked_steps_per_s": a.peer_steps / tc,
                 "speedup": t1 / tc})
    print(json.dumps(rows[-1]), flush=True)

    for kind in a.kinds.split(","):
        cfg = kind_config(base, kind)  # as stage 3 fits it
        f, wall = timed_fit(x[train], emb.labels[train], k, cfg, a.seed)
        rep, _ = judge(f, x, emb, train, hold, a.seed)
        t = time.perf_counter()
        f.sample(5000, seed=1)
        rows.append({"kind": kind, "fit": "all", "n": len(train), "wall_s": wall,
                     "steps_per_s": cfg.steps / wall, "sample_5000_s": time.perf_counter() - t,
                     **{m: rep[m] for m in ("c2st_accuracy", "fd_ratio", "memorisation_ratio")}})
        print(json.dumps(rows[-1]), flush=True)
        if a.time_to is not None:
            rows.append(time_to(a.time_to, x, emb, train, hold, k, cfg, a.seed,
                                peer_steps_per_s=a.peer_steps / t1))
            print(json.dumps(rows[-1]), flush=True)
        for n_real in [int(v) for v in a.n_real.split(",")]:
            rng = np.random.default_rng([a.seed, n_real])
            idx = np.sort(rng.choice(train, n_real, replace=False))
            ccfg = constrained_config(cfg, prof.eval, n_real)  # as a stage-4 trial fits it
            f, wall = timed_fit(x[idx], emb.labels[idx], k, ccfg, a.seed)
            rep, _ = judge(f, x, emb, idx, hold, a.seed)
            rows.append({"kind": kind, "fit": "constrained", "n": n_real, "wall_s": wall,
                         **{m: rep[m] for m in ("c2st_accuracy", "fd_ratio", "memorisation_ratio")}})
            print(json.dumps(rows[-1]), flush=True)
    out = {"embeddings": a.embeddings, "seed": a.seed, "cpu": platform.processor() or
           platform.machine(), "rows": rows}
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
