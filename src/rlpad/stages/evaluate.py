"""Stage 4: the padded-refit trial grid on Spark, across a study's agents, and its statistics.

Every finished task is saved at once under _trials/<config hash>/, so a killed stage re-runs
only unfinished ones. The grid holds each agent's trials and one reference task per agent (its
own and a random policy's scores, and its sanity refit on separate episodes). With one agent
the table is trial-level, as before studies; with several, agent-level statistics and verdicts
(rlpad.study). Outputs become visible, manifest last: per-episode and per-trial CSVs,
summary.json, study.json, table.txt, verdict.txt and plots.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from typing import Callable

import numpy as np

from .. import failpoints
from ..artifacts import FitOutputs, TrialContext, study_agents
from ..config import Config, primary_cell, primary_missing
from ..store import Store
from ..store.status import report_progress
from .common import already_done

STAGE = "4-eval"


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def episode_rows(results: list[dict]) -> list[dict]:
    return [{"trial_id": r["trial_id"], "agent": r.get("agent"), "mode": r["mode"],
             "n_real": r["n_real"], "n_fake": r["n_fake"], "rep": r["rep"], "episode": i,
             "score": s, "length": n}
            for r in results if r["mode"] != "reference"
            for i, (s, n) in enumerate(zip(r["scores"], r["lengths"]))]


def trial_rows(results: list[dict]) -> list[dict]:
    keys = ("trial_id", "agent", "mode", "n_real", "n_real_cfg", "n_fake", "rep", "seed",
            "q_mean", "refit_converged", "gan_s", "refit_s", "play_s", "wall_s",
            "pad_c2st", "pad_fd_ratio", "pad_memorisation")
    return [{**{k: r.get(k) for k in keys}, "mean_score": sum(r["scores"]) / len(r["scores"]),
             "final_td_loss": r["td_loss"][-1] if r["td_loss"] else None}
            for r in results if r["mode"] != "reference"]


def padding_quality_lines(trials: list[dict], single: bool) -> list[str]:
    """Median quality of the judged trials' padding per (mode, n_real): 0.5 = C2ST can't tell,
    memorisation ~1 = no closer to the trial's rows than new real rows (0 = copies)."""
    cells: dict = {}
    for r in trials:
        if r.get("pad_c2st") is not None:
            cells.setdefault((r["mode"], _n_real_label(r, single)), []).append(r)
    out = []
    for (mode, n), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        med = lambda k: float(np.median([r[k] for r in rs if r.get(k) is not None] or [np.nan]))  # noqa: E731
        out.append(f"padding quality {mode} n_real={n}: C2ST {med('pad_c2st'):.2f}, Fréchet/floor "
                   f"{med('pad_fd_ratio'):.2f}, memorisation {med('pad_memorisation'):.2f} "
                   f"(median of {len(rs)} trial(s))")
    return out


def _n_real_label(r: dict, single: bool) -> str:
    """A trial's n_real as its cell names it: the actual size for one agent, the configured
    one (all = every transition of that agent) in a study."""
    if single:
        return str(r["n_real"])
    n = int(r.get("n_real_cfg", r["n_real"]))
    return "all" if n == 0 else str(n)


def agent_refs(refs: list[dict]) -> dict:
    """AgentRef per agent seed from the reference tasks' results."""
    from ..study import AgentRef, beats_random, normalised

    out = {}
    for r in refs:
        ok, why = beats_random(r["sanity_agent_scores"], r["sanity_random_scores"])
        sanity = normalised(float(np.mean(r["sanity_refit_scores"])),
                            float(np.mean(r["sanity_random_scores"])),
                            float(np.mean(r["sanity_agent_scores"])))
        out[int(r["agent"])] = AgentRef(int(r["agent"]), r["game"], float(np.mean(r["agent_scores"])),
                                        float(np.mean(r["random_scores"])), ok, why, sanity)
    return out


def cell_means(results: list[dict]) -> dict:
    """(agent, mode, configured n_real, n_fake) -> the mean over that agent's trials of their
    mean episode scores."""
    acc: dict[tuple, list[float]] = {}
    for r in results:
        if r["mode"] != "reference":
            key = (int(r["agent"]), r["mode"], int(r["n_real_cfg"]), int(r["n_fake"]))
            acc.setdefault(key, []).append(float(np.mean(r["scores"])))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def check_trial_memory(cfg: Config, feature_dim: int, n_available: dict[int, int],
                       memory_bytes: int | None = None) -> None:
    """Refuse, before any work, a grid whose largest trial cannot fit in this machine's memory:
    a trial holds its real and generated transitions a few times over (the sample, the padded
    union, the refit's packed rows)."""
    memory = memory_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    n_real = max(min(n or a, a) for n in cfg.eval.n_real for a in n_available.values())
    n_fake = max(cfg.eval.n_fake) if any(m != "none" for m in cfg.eval.modes) else 0
    need = (n_real + n_fake) * (feature_dim + 3) * 4 * 4
    if need > memory // 2:
        key = "eval.n_fake" if n_fake >= n_real else "eval.n_real"
        raise ValueError(f"{key}: a trial of {n_real:,} real + {n_fake:,} generated transitions "
                         f"({feature_dim} features each) needs ~{need / 2**30:,.0f} GiB; this "
                         f"machine has {memory / 2**30:.0f} GiB: lower {key}")


def dataset_label(transform_metrics: dict) -> str:
    """What a table's title says of the data a stage 2 embedded."""
    m = transform_metrics
    if m.get("dataset_kind", "replay") == "policy":
        text = (f"data: the agent's own play after training (epsilon {m['policy_epsilon']}, "
                f"{m['policy_steps']:,} steps)")
    else:
        text = "data: the agent's replay"
    return text + (f", newest {m['window']:,} transitions" if m.get("window") else "")


def run(cfg: Config, store: Store, run_id: str, force: bool = False, master: str = "local[*]",
        executors: int = 2, spark_settings=None, log: Callable[[str], None] = print) -> dict:
    from .. import stats, study
    from ..spark import GridProgress, SparkSettings, run_grid
    from ..trials import TRIAL_FN, study_specs

    agents = study_agents(cfg)
    ctx = TrialContext.for_run(store, run_id, cfg)  # every upstream manifest
    upstream = ctx.upstream
    digest = hashlib.sha256("".join(upstream[k] for k in sorted(upstream)).encode()).hexdigest()
    config_hash = cfg.section_hash("eval", "gan", "study") + "-" + digest[:12]
    done = already_done(store, run_id, STAGE, config_hash, force, log)
    if done:
        print(done["metrics"].get("table", ""))
        return done["metrics"]

    tr_metrics = {a.seed: store.require(run_id, a.stage("2-transform")).metrics for a in agents}
    n_available = {s: int(m["n_transitions"]) for s, m in tr_metrics.items()}
    data_kind = "; ".join(sorted({dataset_label(m) for m in tr_metrics.values()}))
    check_trial_memory(cfg, int(next(iter(tr_metrics.values()))["feature_dim"]), n_available)
    ctx.verify_files(store)  # after the skip check: a finished stage 4 hashes nothing
    single = len(agents) == 1
    specs = study_specs(cfg, n_available, log=lambda m: log(f"[{STAGE}] {m}"))
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
    settings = spark_settings or SparkSettings(master=master, executors=executors)
    n_ref = len(agents)
    log(f"[{STAGE}] {len(specs) - n_ref} trials and {n_ref} reference task(s) for "
        f"{len(agents)} agent(s) on Spark master {settings.master}")

    def persist(r: dict) -> None:
        store.write_bytes(f"{trials_dir}/{r['trial_id']}.json", json.dumps(r).encode())
        failpoints.hit("4-eval.persist")  # crash tests: killed mid-grid

    def progress(p: GridProgress) -> None:
        log(f"[{STAGE}] {p}")
        report_progress(STAGE, p.done + p.skipped, p.total + p.skipped, "trials", p.rate,
                        p.eta_s if p.eta_s is not None else float("inf"), {})

    results = run_grid(specs, TRIAL_FN, ctx.to_dict(), settings, done=finished, on_result=persist,
                       on_progress=progress)
    refs = agent_refs([r for r in results if r["mode"] == "reference"])
    trials = [r for r in results if r["mode"] != "reference"]
    fit = FitOutputs.open(store, run_id, agents[0])
    game = fit.cfg.env.id
    means = cell_means(trials)
    rows = study.study_rows(means, refs, "all") + study.study_rows(means, refs, "sanity")
    primary, skip = [], primary_missing(cfg) if cfg.study.primary else ""
    if cfg.study.primary and not single and not skip:
        n_r, n_f = primary_cell(cfg)
        primary = study.primary_rows(means, refs, cfg.study.primary, cfg.study.primary_controls,
                                     n_r, n_f)
    summary = stats.summarize(episode_rows(trials), cfg.env.win_threshold)

    if single:
        a = agents[0]
        stage1 = float(fit.reader.metrics["eval_return_mean"])
        title = (f"{game}: score after refitting the head on n_real real + n_fake generated "
                 f"transitions (n_real={n_available[a.seed]} is all real data; stage-1 agent: "
                 f"{stage1:.1f}; {data_kind}) - a single agent, not a study (study.agents = 1)")
        table = stats.format_table(summary, title=title)
    else:
        title = (f"{game}: a study of {len(agents)} agents (seeds {agents[0].seed}-"
                 f"{agents[-1].seed}; {data_kind}); lift = each agent's padded cell minus its own "
                 "control")
        table = study.format_verdicts(rows, refs, title)
        if primary:
            table = study.format_primary(primary) + "\n\n" + table
        elif skip:
            table = f"PRIMARY ({cfg.study.primary}): not tested: {skip}\n\n" + table
    sane = [s for s, r in refs.items() if r.sanity_holds]
    metrics = {
        "n_trials": len(trials), "n_agents": len(agents), "agents": [a.seed for a in agents],
        "dataset": data_kind,
        "n_available_real": n_available[agents[0].seed] if single else n_available,
        "refs": stats.to_jsonable({str(s): {"agent": r.agent, "random": r.random, "beats_random": r.beats_random,
                          "sanity_normalised": r.sanity_norm, "sanity_holds": r.sanity_holds}
                 for s, r in refs.items()}),
        "sanity_holds_agents": sane,
        "refit_unconverged_trials": sum(not r.get("refit_converged", True) for r in trials),
        "summary": stats.to_jsonable(summary), "table": table,
        "primary": stats.to_jsonable([{k: r[k] for k in ("mode", "control", "n_real", "n_fake",
                                       "k", "lift", "lift_lo", "lift_hi", "p_holm", "verdict")}
                                      for r in primary]),
    }
    if single:
        ref = refs[agents[0].seed]
        metrics.update(stage1_eval_return_mean=float(fit.reader.metrics["eval_return_mean"]),
                       sanity_recovery=stats.to_jsonable(ref.sanity_norm),
                       sanity_holds=ref.sanity_holds)
    with tempfile.TemporaryDirectory(prefix="rlpad-eval-") as work:
        png = os.path.join(work, "scores.png")
        stats.plot_summary(summary, png, title=f"{game}: padded-refit scores (95% CI)"
                           + ("" if single else ", trials pooled over agents"))
        writer.put_file(png, "scores.png")
        if not single:
            png = os.path.join(work, "lifts.png")
            study.plot_lifts(rows, refs, png, f"{game}: lift per cell, {len(agents)} agents")
            writer.put_file(png, "lifts.png")
    writer.put_bytes("episodes.csv", _csv_bytes(episode_rows(trials)))
    writer.put_bytes("trials.csv", _csv_bytes(trial_rows(trials)))
    writer.put_json("summary.json", {k: v for k, v in metrics.items() if k != "table"})
    writer.put_json("study.json", {"game": game, "agents": [a.seed for a in agents],
                                   "single_agent": single, "cells": stats.to_jsonable(rows),
                                   "primary": stats.to_jsonable(primary),
                                   "refs": metrics["refs"],
                                   "references": [r for r in results if r["mode"] == "reference"]})
    writer.put_bytes("table.txt", (table + "\n").encode())
    writer.put_bytes("verdict.txt", (table + "\n").encode())
    writer.commit(config=cfg.to_dict(), config_hash=config_hash, metrics=metrics, upstream=upstream)
    store.rm(store.path(run_id, STAGE, "_trials"), recursive=True)
    print(table)
    if metrics["refit_unconverged_trials"]:
        cells = sorted({f"{r['mode']}/{_n_real_label(r, single)}/{r['n_fake']}" for r in trials
                        if not r.get("refit_converged", True)})
        log(f"[{STAGE}] the refit cycled without converging (last iterate used) in "
            f"{metrics['refit_unconverged_trials']} of {len(trials)} trials; cells "
            f"(mode/n_real/n_fake): {', '.join(cells)}")
    for s, r in sorted(refs.items()):
        who = "" if single else f"agent {s}: "
        if not r.beats_random:
            log(f"[{STAGE}] {who}excluded from the statistics: {r.random_reason}")
            continue
        log(f"[{STAGE}] {who}sanity: the refit on all real data scores {r.sanity_norm:.2f} "
            f"normalised ((score - random) / (agent - random), on "
            f"{cfg.study.sanity_episodes} separate episodes)"
            + ("" if r.sanity_holds else
               f"; sanity FAILS (< {study.SANITY_RECOVERY}): the refit does not recover this "
               "agent, so its lifts do not answer the padding question"))
    if not single:
        log(f"[{STAGE}] sanity holds for {len(sane)} of {len(agents)} agents")
        if skip:
            log(f"[{STAGE}] study.primary ({cfg.study.primary}) not tested: {skip}")
    elif cfg.study.primary:
        log(f"[{STAGE}] study.primary is tested across agents: a single agent has no primary "
            "test (set study.agents)")
    for line in padding_quality_lines(trials, single):
        log(f"[{STAGE}] {line}")
    log(f"[{STAGE}] outputs at {store.url(run_id, STAGE)}")
    return metrics
