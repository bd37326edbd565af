"""Stage 4: the padded-refit trial grid on Spark, and its win statistics.

Every finished trial is saved at once under _trials/<config hash>/, so a killed stage
re-runs only unfinished trials. The grid's results become visible, manifest last,
as per-episode and per-trial CSVs, summary.json, a table and a plot.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import Callable

from ..config import Config
from ..store import Store
from .common import already_done
from .upstream import FitOutputs

STAGE = "4-eval"
# the refit on all real data must reach this fraction of the stage-1 agent's score
SANITY_RECOVERY = 0.9


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def episode_rows(results: list[dict]) -> list[dict]:
    return [{"trial_id": r["trial_id"], "mode": r["mode"], "n_real": r["n_real"],
             "n_fake": r["n_fake"], "rep": r["rep"], "episode": i, "score": s, "length": n}
            for r in results for i, (s, n) in enumerate(zip(r["scores"], r["lengths"]))]


def trial_rows(results: list[dict]) -> list[dict]:
    keys = ("trial_id", "mode", "n_real", "n_fake", "rep", "seed", "q_mean", "refit_converged",
            "gan_s", "refit_s", "play_s", "wall_s")
    return [{**{k: r.get(k) for k in keys}, "mean_score": sum(r["scores"]) / len(r["scores"]),
             "final_td_loss": r["td_loss"][-1] if r["td_loss"] else None} for r in results]


def run(cfg: Config, store: Store, run_id: str, force: bool = False, master: str = "local[*]",
        executors: int = 2, spark_settings=None, log: Callable[[str], None] = print) -> dict:
    from .. import stats
    from ..spark import GridProgress, SparkSettings, run_grid
    from ..trials import TRIAL_FN, grid_specs

    fit = FitOutputs.open(store, run_id)
    tr = store.require(run_id, "2-transform")
    upstream = {"1-fit": fit.reader.manifest_sha256, "2-transform": tr.manifest_sha256}
    if "simple" in cfg.eval.modes:
        upstream["3-fit-gan"] = store.require(run_id, "3-fit-gan").manifest_sha256
    config_hash = cfg.section_hash("eval", "gan") + "-" + "".join(v[:6] for v in upstream.values())
    done = already_done(store, run_id, STAGE, config_hash, force, log)
    if done:
        print(done["metrics"].get("table", ""))
        return done["metrics"]

    n_available = int(tr.metrics["n_transitions"])
    specs = grid_specs(cfg, n_available)
    trials_dir = store.path(run_id, STAGE, f"_trials/{config_hash}")
    finished: dict[str, dict] = {}
    if force:
        store.rm(store.path(run_id, STAGE, "_trials"), recursive=True)
    elif store.exists(trials_dir):
        for p in store.fs.ls(trials_dir, detail=False):
            if p.endswith(".json"):
                r = json.loads(store.read_bytes(p))
                finished[r["trial_id"]] = r
    wanted = {s["trial_id"] for s in specs}
    finished = {k: v for k, v in finished.items() if k in wanted}
    if finished:
        log(f"[{STAGE}] {len(finished)} of {len(specs)} trials already finished; running the rest")

    writer = store.writer(run_id, STAGE)
    writer.begin()
    ctx = {"store": store.uri, "run": run_id, "config": cfg.to_dict(), "upstream": upstream}
    settings = spark_settings or SparkSettings(master=master, executors=executors)
    log(f"[{STAGE}] {len(specs)} trials on Spark master {settings.master}")

    def persist(r: dict) -> None:
        store.write_bytes(f"{trials_dir}/{r['trial_id']}.json", json.dumps(r).encode())

    def progress(p: GridProgress) -> None:
        log(f"[{STAGE}] {p}")

    results = run_grid(specs, TRIAL_FN, ctx, settings, done=finished, on_result=persist,
                       on_progress=progress)

    summary = stats.summarize(episode_rows(results), cfg.env.win_threshold)
    stage1 = float(fit.reader.metrics["eval_return_mean"])
    sanity = next((c for c in summary if c["mode"] == "none" and c["n_real"] == n_available), None)
    title = (f"{fit.cfg.env.id}: score after refitting the head on n_real real + n_fake generated "
             f"transitions (n_real={n_available} is all real data; stage-1 agent: {stage1:.1f})")
    table = stats.format_table(summary, title=title)
    metrics = {
        "n_trials": len(results), "n_available_real": n_available,
        "stage1_eval_return_mean": stage1,
        "sanity_all_real_mean": sanity["mean"] if sanity else None,
        "sanity_recovery": (sanity["mean"] / stage1) if sanity and stage1 else None,
        "sanity_holds": (sanity["mean"] >= SANITY_RECOVERY * stage1) if sanity and stage1 else None,
        "refit_unconverged_trials": sum(not r.get("refit_converged", True) for r in results),
        "summary": stats.to_jsonable(summary), "table": table,
    }
    with tempfile.TemporaryDirectory(prefix="rlpad-eval-") as work:
        png = os.path.join(work, "scores.png")
        stats.plot_summary(summary, png, title=f"{fit.cfg.env.id}: padded-refit scores (95% CI)")
        writer.put_file(png, "scores.png")
    writer.put_bytes("episodes.csv", _csv_bytes(episode_rows(results)))
    writer.put_bytes("trials.csv", _csv_bytes(trial_rows(results)))
    writer.put_json("summary.json", {k: v for k, v in metrics.items() if k != "table"})
    writer.put_bytes("table.txt", (table + "\n").encode())
    writer.commit(config=cfg.to_dict(), config_hash=config_hash, metrics=metrics, upstream=upstream)
    store.rm(store.path(run_id, STAGE, "_trials"), recursive=True)
    print(table)
    if metrics["refit_unconverged_trials"]:
        cells = sorted({f"{r['mode']}/{r['n_real']}/{r['n_fake']}" for r in results
                        if not r.get("refit_converged", True)})
        log(f"[{STAGE}] the refit cycled without converging (last iterate used) in "
            f"{metrics['refit_unconverged_trials']} of {len(results)} trials; cells "
            f"(mode/n_real/n_fake): {', '.join(cells)}")
    if sanity:
        log(f"[{STAGE}] sanity: refit on all {n_available:,} real transitions scores {sanity['mean']:.1f} "
            f"= {100 * metrics['sanity_recovery']:.0f}% of the stage-1 agent's {stage1:.1f}")
        if not metrics["sanity_holds"]:
            log(f"[{STAGE}] sanity FAILS (< {SANITY_RECOVERY:.0%}): the refit does not recover this "
                f"agent, so the lifts above do not answer the padding question; README 'Reading "
                f"the quick profile's answer', and bench/refit_recovery.py across stage-1 seeds")
    log(f"[{STAGE}] outputs at {store.url(run_id, STAGE)}")
    return metrics
