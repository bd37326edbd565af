#!/usr/bin/env python
"""The dashboard in a real browser: render time of the runs page over 200 runs and of a study
page over 1,000 trials, against a static HTML page of the same table (the browser's floor).

The store is generated: `--runs` copies of one real run (a study of two agents through stages
1-4; made here with a tiny budget if `--source` is not given), and one study run whose stage 4
holds `--trials` synthetic trials summarised by rlpad's own statistics (stats.summarize,
study.study_rows) and written through the store with a manifest, as stage 4 writes them.
Render time = from the navigation until the page's table and every plot are drawn (Selenium
in Debian's headless Chromium), median of --repeats loads after one untimed warm-up; the
dashboard's first (cold) load is printed too.

  .venv/bin/python bench/dashboard_render.py [--runs 200] [--trials 1000] [--repeats 5]
      [--source STORE/RUN] [--work DIR]
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
TINY = ["dqn.total_steps=3000", "dqn.learning_starts=300", "dqn.eval_every=1000",
        "dqn.eval_episodes=2", "dqn.final_eval_episodes=2", "dqn.stop_at_eval_return=0",
        "transform.policy_steps=2000", "study.agents=2", "study.sanity_episodes=5",
        "eval.n_real=[200,0]", "eval.n_fake=[0,500]", "eval.repetitions=1", "eval.episodes=2",
        "eval.n_envs=2", 'eval.modes=["none","simple"]', "gan.steps=200",
        "gan.checkpoint_every=100"]


def make_source(work: Path) -> Path:
    store = work / "source"
    args = [a for s in TINY for a in ("--set", s)]
    for cmd in ("fit", "transform", "fit-gan", "eval"):
        subprocess.run([sys.executable, "-m", "rlpad.cli", cmd, "--store", str(store), "--run",
                        "src", *args], check=True, cwd=ROOT, capture_output=True)
    return store / "src"


def synthetic_study(store_dir: Path, run: str, n_trials: int, seed: int = 0) -> None:
    """A stage 4 of `n_trials` trials: 10 agents x 5 n_real x 10 cells x reps, scores drawn
    around a per-agent level, summarised by rlpad's statistics."""
    import numpy as np

    from rlpad import stats, study
    from rlpad.store import Store

    rng = np.random.default_rng(seed)
    agents, n_reals = list(range(1, 11)), [100, 200, 500, 1000, 0]
    cells = [("none", 0)] + [(m, f) for m in ("simple", "constrained", "simple:cvae",
                                              "constrained:diffusion", "resample")
                             for f in (500, 5000)][:9]
    reps = max(1, n_trials // (len(agents) * len(n_reals) * len(cells)))
    refs, trials, episodes, means = {}, [], [], {}
    for a in agents:
        level = rng.uniform(150, 450)
        refs[a] = study.AgentRef(seed=a, game="CartPole-v1", agent=480.0, random=22.0,
                                 beats_random=True, random_reason="", sanity_norm=0.95)
        for n in n_reals:
            for mode, n_fake in cells:
                vals = []
                for r in range(reps):
                    score = float(np.clip(level + rng.normal(0, 60) + (n or 5000) / 50, 9, 500))
                    tid = f"a{a}-{mode}-{n}-{n_fake}-{r}"
                    trials.append({"trial_id": tid, "agent": a, "mode": mode, "n_real": n or 5000,
                                   "n_real_cfg": n, "n_fake": n_fake, "rep": r,
                                   "mean_score": score})
                    for e in range(10):
                        episodes.append({"trial_id": tid, "mode": mode, "n_real": n or 5000,
                                         "n_fake": n_fake,
                                         "score": float(np.clip(score + rng.normal(0, 30), 9, 500))})
                    vals.append(score)
                means[(a, mode, n, n_fake)] = float(np.mean(vals))
    rows = study.study_rows(means, refs, "all") + study.study_rows(means, refs, "sanity")
    summary = stats.summarize(episodes, 475.0)
    ref_json = {str(a): {"agent": r.agent, "random": r.random, "beats_random": True,
                         "sanity_normalised": 0.95, "sanity_holds": True} for a, r in refs.items()}
    metrics = {"n_trials": len(trials), "n_agents": len(agents), "agents": agents,
               "dataset": "synthetic", "refs": ref_json, "sanity_holds_agents": agents,
               "summary": stats.to_jsonable(summary), "primary": []}
    s = Store(str(store_dir))
    w = s.writer(run, "4-eval")
    w.begin()
    w.put_json("summary.json", metrics)
    w.put_json("study.json", {"game": "CartPole-v1", "agents": agents, "single_agent": False,
                              "cells": stats.to_jsonable(rows), "primary": [], "refs": ref_json})
    w.commit(config={"eval": {"n_real": n_reals}, "gan": {"variant": "wgan-gp"}},
             config_hash="synthetic", metrics=metrics)


def timed_load(driver, url: str, css: list[str]) -> float:
    from browser import wait_for

    t = time.perf_counter()
    driver.get(url)
    for c in css:
        wait_for(driver, c, timeout=120)
    return time.perf_counter() - t


def static_runs_page(view, path: Path) -> None:
    """The runs table as plain HTML: what the browser needs at the least for the same rows."""
    from rlpad.dashboard.page_runs import key_metrics, stage_states

    rows = []
    for run in view.runs():
        rv = view.run_view(run, refresh=False)
        st, km = stage_states(rv), key_metrics(rv)
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in [run, rv.game, rv.learner, *[
            f"{st[s]} {km[s]}" for s in st]]) + "</tr>")
    path.write_text("<html><body><table id='runs-table'>" + "".join(rows) + "</table></body></html>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--source", help="a real run (STORE/RUN) to copy --runs times")
    ap.add_argument("--work", default="/tmp/rlpad-dash-bench")
    args = ap.parse_args()
    from browser import chrome
    from conftest import free_port

    from rlpad.dashboard.data import StoreView

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = Path(args.source) if args.source else make_source(work)
    store = work / "store"
    for i in range(args.runs):
        shutil.copytree(src, store / f"run-{i:03d}", ignore=shutil.ignore_patterns("_ckpt"))
    synthetic_study(store, "run-000", args.trials)
    static = work / "static"
    static.mkdir()
    static_runs_page(StoreView(str(store)), static / "runs.html")
    n = json.loads((store / "run-000" / "4-eval" / "manifest.json").read_text())["metrics"]["n_trials"]

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(static))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rlpad.cli", "dashboard", "--store", str(store),
                             "--port", str(port), "--poll", "60"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        pages = {
            f"runs page, {args.runs} runs": (f"{base}/", [f'#runs-table tr[data-key="run-{args.runs - 1:03d}"]']),
            f"study page, {n:,} trials": (f"{base}/study/run-000", [
                "#verdict-table", "#score-plot .main-svg", "#lift-plot .main-svg",
                "#sanity-plot .main-svg"]),
            f"static HTML, the same {args.runs} rows (peer)": (
                f"http://127.0.0.1:{httpd.server_port}/runs.html", ["#runs-table tr:last-child"]),
        }
        print(f"# CPU: {platform.processor() or platform.machine()} "
              f"({_cpu_model()}), {os.cpu_count()} cores; Chromium headless; medians of "
              f"{args.repeats} loads after a warm-up")
        res = {}
        with chrome() as d:
            for name, (url, css) in pages.items():
                cold = timed_load(d, url, css)
                times = [timed_load(d, url, css) for _ in range(args.repeats)]
                res[name] = statistics.median(times)
                print(f"{name:<44} median {res[name]:6.3f} s  (first load {cold:.3f} s; "
                      f"all {', '.join(f'{t:.2f}' for t in times)})", flush=True)
        runs_name, study_name, peer_name = list(pages)
        print(f"runs page / static peer: {res[runs_name] / res[peer_name]:.1f}x; "
              f"target: each dashboard page <= 2 s: runs {'met' if res[runs_name] <= 2 else 'MISSED'}, "
              f"study {'met' if res[study_name] <= 2 else 'MISSED'}")
    finally:
        proc.terminate()
        httpd.shutdown()


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
