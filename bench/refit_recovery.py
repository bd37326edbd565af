#!/usr/bin/env python
"""Does the stage-4 refit recover the stage-1 agent? Measured across stage-1 seeds.

Stage 4's sanity cell refits a fresh head on all real transitions and compares its score with
the stage-1 agent's. One quick run answers that for one stage-1 agent; this bench asks it for
several: for each seed it fits stage 1 and 2 of the quick profile (`rlpad fit --set seed=S`,
`rlpad transform`) in a temporary store or --store (reusing runs already there), then plays
  * stage1      the stage-1 agent's own head (what the sanity cell compares with);
  * refit       the profile's refit ([eval] refit_* as shipped, or as --refit-set changes them)
                on all real data, --refits seeds;
  * bc          behaviour cloning (a linear softmax head on the same features fit to the
                replay's actions): the data's average policy, what a refit starts from;
  * fqi         exact fitted Q iteration (ridge regression per iteration, --fqi-iters) from zero:
                the offline fixed point that Q-learning with a target network approximates;
  * stage1+fqi1 one exact FQI iteration started from the stage-1 head: if the stage-1 head were
                an offline fixed point on its own replay, this would keep its score.
10 evaluation episodes each (the trials' evaluation seed), one core per process.

Usage: .venv/bin/python bench/refit_recovery.py [--seeds 1 2 3 4 5 6] [--refits 3] [--store DIR]
         [--fit-set dqn.KEY=VALUE ...] [--refit-set eval.refit_KEY=VALUE ...]
--fit-set changes the stage-1 recipe (the runs are made with it; give a fresh --store), e.g.
`--fit-set dqn.total_steps=150000 dqn.buffer_size=150000 dqn.lr_final=0.1
dqn.stop_at_eval_return=0 dqn.keep_best=false`; --refit-set the refit, e.g.
`--refit-set eval.refit_cql_alpha=5`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def make_run(store: str, seed: int, fit_set: list[str]) -> None:
    run = f"seed{seed}"
    fit_args = [a for kv in fit_set for a in ("--set", kv)]
    for cmd in (["fit", "--set", f"seed={seed}", *fit_args], ["transform"]):
        p = subprocess.run([sys.executable, "-m", "rlpad.cli", *cmd, "--store", store, "--run", run],
                           cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"rlpad {cmd[0]} (seed {seed}) failed:\n{p.stderr[-3000:]}")


def worker(store: str, seed: int, refits: int, fqi_iters: int, ridge: float,
           refit_set: list[str]) -> dict:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rlpad.config import load_config
    from rlpad.play import play
    from rlpad.qnet import build_head, split_at_cut
    from rlpad.artifacts import FitOutputs, TrialContext
    from rlpad.store import Store
    from rlpad.trials import load_artifacts, refit

    run = f"seed{seed}"
    st = Store(store)
    cfg = load_config("quick", ['eval.modes=["none"]', *refit_set])
    art = load_artifacts(TrialContext.for_run(st, run, cfg), cfg.seed)
    fit = FitOutputs.open(st, run)
    e, d = cfg.eval, art.real
    n, dim = len(d.action), art.embed_dim

    def score(head) -> float:
        enc = art.encoder
        q = tf.function(lambda s: head(enc(s, training=False), training=False), reduce_retracing=True)
        return float(play(q, art.fit_cfg.env, art.spec, e.episodes, seed=cfg.seed + 20_000_000,
                          n_envs=e.n_envs).returns.mean())

    def head_of(theta) -> object:
        h = build_head(dim, art.spec.n_actions)
        h.set_weights([theta[:dim].astype(np.float32), theta[dim].astype(np.float32)])
        return h

    out = {"seed": seed, "n": n, "agent_eval": fit.reader.metrics["eval_return_mean"]}
    stage1 = split_at_cut(fit.qnet(), fit.cfg.qnet, art.spec.obs_shape).head
    out["stage1"] = score(stage1)
    if e.refit_method == "lspi":
        refits = 1  # a function of the data alone: another seed gives the same head
    out["refit"] = [score(refit(d, art.spec.n_actions, e, art.gamma, 1000 + r).head)
                    for r in range(refits)]

    ones = np.ones((n, 1))
    phi = np.concatenate([np.maximum(d.e_s, 0), ones], 1)
    phi2 = np.concatenate([np.maximum(d.e_next, 0), ones], 1)
    acts = range(art.spec.n_actions)
    solve = [np.linalg.solve(phi[d.action == a].T @ phi[d.action == a] + ridge * n * np.eye(dim + 1),
                             phi[d.action == a].T) for a in acts]
    g = art.gamma * (1.0 - d.terminal)

    def fqi(theta, iters):
        theta = theta.astype(np.float64).copy()
        for _ in range(iters):
            y = d.reward + g * (phi2 @ theta).max(1)
            for a in acts:
                theta[:, a] = solve[a] @ y[d.action == a]
        return theta

    out["fqi"] = score(head_of(fqi(np.zeros((dim + 1, len(acts))), fqi_iters)))
    out["bc"] = score(head_of(behaviour_clone(phi, d.action, len(acts))))
    w, b = stage1.get_weights()
    out["stage1+fqi1"] = score(head_of(fqi(np.concatenate([w, b[None]]), 1)))
    return out


def behaviour_clone(phi, actions, n_actions: int, steps: int = 3000, lr: float = 1e-2):
    """A linear softmax policy on the head's features, fit to the replay's actions (full-batch
    Adam on the cross-entropy); its logits play greedily like a head's Q-values."""
    import keras
    import numpy as np
    import tensorflow as tf

    x, y = tf.constant(phi, tf.float32), tf.constant(actions, tf.int32)
    theta = tf.Variable(tf.zeros((phi.shape[1], n_actions)))
    opt = keras.optimizers.Adam(lr)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, x @ theta))
        opt.apply_gradients([(tape.gradient(loss, theta), theta)])

    for _ in range(steps):
        step()
    return np.asarray(theta.numpy(), np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--refits", type=int, default=3, help="refit seeds per stage-1 agent")
    ap.add_argument("--fqi-iters", type=int, default=200)
    ap.add_argument("--ridge", type=float, default=1e-3, help="FQI's L2 penalty per transition")
    ap.add_argument("--store", help="a local store for runs seed<S> (stages 1-2); the ones it "
                    "lacks are made (default: a temporary store)")
    ap.add_argument("--fit-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="stage-1 overrides for the runs this bench makes")
    ap.add_argument("--refit-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides of the profile's [eval] refit settings")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.store, args.worker, args.refits, args.fqi_iters, args.ridge,
                                args.refit_set)))
        return
    store = args.store or tempfile.mkdtemp(prefix="rlpad-bench-recovery-")
    t0 = time.time()
    # runs already in the store are reused as they are (--fit-set applies to the ones made here)
    missing = [s for s in args.seeds
               if not (Path(store) / f"seed{s}" / "2-transform" / "manifest.json").exists()]
    if missing:
        print(f"# stages 1-2 of the quick profile for seeds {missing} in {store} ...", flush=True)
        with ThreadPoolExecutor(2) as pool:  # 2 cores: two stage-1 fits at a time
            list(pool.map(lambda s: make_run(store, s, args.fit_set), missing))
        print(f"# made in {time.time() - t0:.0f} s", flush=True)

    def one(seed: int) -> dict:
        p = subprocess.run([sys.executable, __file__, "--worker", str(seed), "--store", store,
                            "--refits", str(args.refits), "--fqi-iters", str(args.fqi_iters),
                            "--ridge", str(args.ridge), "--refit-set", *args.refit_set],
                           capture_output=True, text=True, cwd=ROOT)
        if p.returncode != 0:
            raise SystemExit(f"worker for seed {seed} failed:\n{p.stderr[-3000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(one, args.seeds))
    print(f"\nRefit recovery across stage-1 seeds (quick profile; scores: mean of 10 episodes; "
          f"recovery = refit / stage-1 agent's eval_return_mean)")
    if args.fit_set or args.refit_set:
        print(f"  stage 1 (runs made here): {' '.join(args.fit_set) or 'as shipped'}; "
              f"refit: {' '.join(args.refit_set) or 'as shipped'}")
    print(f"  {'seed':>4} {'transitions':>11} {'agent':>6} {'stage1 head':>11} "
          f"{'refit (each seed)':>26} {'recovery':>8} {'fqi':>6} {'stage1+fqi1':>11} {'bc':>5}")
    ok = 0
    for r in rows:
        rec = sum(r["refit"]) / len(r["refit"]) / r["agent_eval"]
        ok += rec >= 0.9
        each = ", ".join(f"{x:.0f}" for x in r["refit"])
        print(f"  {r['seed']:>4} {r['n']:>11,} {r['agent_eval']:>6.0f} {r['stage1']:>11.0f} "
              f"{each:>26} {rec:>8.0%} {r['fqi']:>6.0f} {r['stage1+fqi1']:>11.0f} {r['bc']:>5.0f}")
    print(f"  refit recovers >= 90 % of the agent for {ok} of {len(rows)} stage-1 seeds "
          f"({time.time() - t0:.0f} s; the runs stay in {store}: reuse them with --store)")


if __name__ == "__main__":
    main()
