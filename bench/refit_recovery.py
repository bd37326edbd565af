#!/usr/bin/env python
"""Does the refit recover the stage-1 agent? The sanity rule of a study, for a range of seeds.

For agents with seeds --seeds A-B of --profile (a study run: seed = A, study.agents = B - A + 1),
makes stages 1-2 by the CLI where the store lacks them (reused otherwise), then runs each
agent's reference task (rlpad.trials.run_reference, as stage 4 does) with the refit under test:
the stage-1 agent, a uniform-random policy and the refit on all the agent's real data, each on
study.sanity_episodes (30) episodes no cell plays. Prints per agent the normalised score
(refit - random) / (agent - random) and how many agents recover >= 0.9.

Pre-registration (issue 11): choose methods on some seeds, freeze the choice in the profile
with a commit, then run the held-out seeds once with --heldout: it refuses a dirty tree and
records the commit it ran from in its JSON report.

  .venv/bin/python bench/refit_recovery.py --store DIR --seeds 1-12 [--profile quick]
      [--refit-set eval.refit_method="fqi" ...] [--transform-set transform.window=10000]
      [--fit-set KEY=VALUE ...] [--heldout] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def seed_range(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def run_id(profile: str, seeds: list[int], fit_set: list[str], transform_set: list[str]) -> str:
    tag = hashlib.sha256(json.dumps([fit_set, transform_set]).encode()).hexdigest()[:8]
    return f"{Path(profile).stem}-s{seeds[0]}-{seeds[-1]}-{tag}"


def study_sets(seeds: list[int]) -> list[str]:
    return [f"seed={seeds[0]}", f"study.agents={len(seeds)}"]


def git_state() -> tuple[str, bool]:
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return rev, dirty


def make_stages(store: str, run: str, profile: str, sets: list[str]) -> None:
    for cmd in ("fit", "transform"):
        p = subprocess.run([sys.executable, "-m", "rlpad.cli", cmd, "--store", store, "--run", run,
                            "--profile", profile, *[a for s in sets for a in ("--set", s)]],
                           cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"rlpad {cmd} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")


def worker(store: str, run: str, profile: str, sets: list[str], seed: int) -> dict:
    import rlpad  # noqa: F401  oneDNN on before TensorFlow loads (rlpad/__init__.py)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rlpad.artifacts import TrialContext, study_agents
    from rlpad.config import load_config
    from rlpad.store import Store
    from rlpad.study import beats_random, normalised
    from rlpad.trials import reference_spec, run_reference

    cfg = load_config(profile, [*sets, 'eval.modes=["none"]'])  # no generator needed here
    ctx = TrialContext(Store(store).uri, run, cfg.to_dict(),
                       {a.seed: a.prefix for a in study_agents(cfg)}, {})
    t = time.time()
    r = run_reference(reference_spec(cfg, seed), ctx.to_dict())
    mean = lambda k: sum(r[k]) / len(r[k])  # noqa: E731
    ok, why = beats_random(r["sanity_agent_scores"], r["sanity_random_scores"])
    return {"seed": seed, "n": r["n_real"], "agent": mean("sanity_agent_scores"),
            "random": mean("sanity_random_scores"), "refit": mean("sanity_refit_scores"),
            "normalised": normalised(mean("sanity_refit_scores"), mean("sanity_random_scores"),
                                     mean("sanity_agent_scores")),
            "beats_random": ok, "why": why, "converged": r["sanity_refit_converged"],
            "episodes": len(r["sanity_refit_scores"]), "wall_s": time.time() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="a local store; the runs it lacks are made")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seeds", default="1-6", help="A-B: the agents' seeds")
    ap.add_argument("--run", help="use this study run (default: named from profile, seeds, sets)")
    ap.add_argument("--fit-set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--transform-set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--refit-set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--stage1-from", metavar="RUN",
                    help="copy the agents' stage 1 from this run of the store where missing "
                         "(another stage 2 of the same agents, e.g. with --transform-set)")
    ap.add_argument("--heldout", action="store_true",
                    help="a pre-registered held-out run: refuse a dirty tree, record the commit")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    seeds = seed_range(args.seeds)
    run = args.run or run_id(args.profile, seeds, args.fit_set, args.transform_set)
    stage_sets = study_sets(seeds) + args.fit_set + args.transform_set
    if args.worker is not None:
        print(json.dumps(worker(args.store, run, args.profile, stage_sets + args.refit_set,
                                args.worker)))
        return
    rev, dirty = git_state()
    if args.heldout and dirty:
        raise SystemExit("refit_recovery --heldout: the git tree has uncommitted changes; commit "
                         "the frozen choice first (a held-out run must name the commit it ran)")
    t0 = time.time()
    if args.stage1_from:
        import shutil

        from rlpad.artifacts import study_agents
        from rlpad.config import load_config

        for a in study_agents(load_config(args.profile, stage_sets)):
            src = Path(args.store) / args.stage1_from / a.stage("1-fit")
            dst = Path(args.store) / run / a.stage("1-fit")
            if not dst.exists():
                shutil.copytree(src, dst)
    make_stages(args.store, run, args.profile, stage_sets)
    print(f"# stages 1-2 ready in {time.time() - t0:.0f} s ({args.store}/{run})", flush=True)

    def one(seed: int) -> dict:
        p = subprocess.run([sys.executable, __file__, "--worker", str(seed), "--store", args.store,
                            "--profile", args.profile, "--seeds", args.seeds, "--run", run,
                            "--fit-set", *args.fit_set, "--transform-set", *args.transform_set,
                            "--refit-set", *args.refit_set], capture_output=True, text=True,
                           cwd=ROOT)
        if p.returncode != 0:
            raise SystemExit(f"worker for seed {seed} failed:\n{p.stderr[-3000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(2) as pool:  # 2 cores: two agents at a time
        rows = list(pool.map(one, seeds))
    ok = [r for r in rows if r["beats_random"] and r["normalised"] >= 0.9]
    print(f"\nRefit recovery, {args.profile} seeds {seeds[0]}-{seeds[-1]}"
          f"{' (HELD OUT)' if args.heldout else ''}; commit {rev[:12]}{' + changes' if dirty else ''}")
    print(f"  stage 1: {' '.join(args.fit_set) or 'as shipped'}; stage 2: "
          f"{' '.join(args.transform_set) or 'as shipped'}; refit: {' '.join(args.refit_set) or 'as shipped'}")
    print(f"  scores: means over {rows[0]['episodes']} sanity episodes (none of them a cell's)")
    print(f"  {'seed':>4} {'transitions':>11} {'agent':>8} {'random':>8} {'refit':>8} "
          f"{'normalised':>10}  converged")
    for r in rows:
        flag = "" if r["beats_random"] else f"  excluded: {r['why']}"
        print(f"  {r['seed']:>4} {r['n']:>11,} {r['agent']:>8.1f} {r['random']:>8.1f} "
              f"{r['refit']:>8.1f} {r['normalised']:>10.2f}  {r['converged']}{flag}")
    print(f"  recovers >= 0.9 normalised: {len(ok)} of {len(rows)} agents "
          f"(seeds {', '.join(str(r['seed']) for r in ok) or 'none'}); {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "profile": args.profile, "seeds": seeds, "heldout": args.heldout, "commit": rev,
            "dirty": dirty, "fit_set": args.fit_set, "transform_set": args.transform_set,
            "refit_set": args.refit_set, "rows": rows, "recovered": len(ok)}, indent=1))


if __name__ == "__main__":
    main()
