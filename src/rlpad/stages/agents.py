"""Stages 1-3 for every agent of a study: one after another here, or one Spark task per
agent on a cluster master (spark://, k8s://), each task writing its agent's stage to the store.

A task is a whole stage of one agent, so what a task does is what the sequential loop does:
finished agents are skipped by their manifests and a killed agent resumes from its
checkpoints, whichever machine reruns it. The store must be one every executor reaches (a
gs:// bucket, or a folder mounted at the same path on every machine).
"""
from __future__ import annotations

import importlib
from typing import Callable

from ..artifacts import Agent, agent_by_seed, study_agents
from ..config import Config, config_from_dict
from ..store.status import fail_running

TASK_FN = "rlpad.stages.agents:run_agent_task"
MODULES = {"fit": "fit", "transform": "transform", "fit-gan": "fitgan"}


def run_agent_stage(command: str, cfg: Config, store, run_id: str, agent: Agent, force: bool,
                    log: Callable[[str], None] = print) -> dict:
    stage = importlib.import_module(f"rlpad.stages.{MODULES[command]}")
    return stage.run(agent.config(cfg), store, run_id, force=force, log=log, agent=agent)


def run_agent_task(spec: dict, ctx: dict) -> dict:
    """The Spark task: one agent's stage (spec: command, agent seed)."""
    from ..store import Store

    cfg = config_from_dict(ctx["config"], "agent-stage context")
    agent = agent_by_seed(cfg, int(spec["agent"]))
    lines: list[str] = []
    try:
        metrics = run_agent_stage(spec["command"], cfg, Store(ctx["store"]), ctx["run"], agent,
                                  bool(ctx["force"]), log=lines.append)
    except BaseException as e:  # on an executor: the stage's status says failed, and why
        fail_running(e)
        raise
    keep = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    return {"trial_id": spec["trial_id"], "agent": agent.seed, "metrics": keep, "log": lines}


def run_all(command: str, cfg: Config, store, run_id: str, force: bool, settings=None,
            log: Callable[[str], None] = print) -> list[dict]:
    """Every agent's stage: Spark tasks in parallel when `settings` name a cluster master
    and there are several agents, else one after another in this process."""
    agents = study_agents(cfg)
    master = settings.validate() if settings is not None else None
    if master is None or not master.is_cluster or len(agents) == 1:
        out = []
        for i, agent in enumerate(agents):
            if len(agents) > 1:
                log(f"rlpad {command}: agent {i + 1} of {len(agents)} (seed {agent.seed})")
            out.append(run_agent_stage(command, cfg, store, run_id, agent, force, log))
        return out
    from ..spark import run_grid

    specs = [{"trial_id": f"{command}-a{a.seed}", "command": command, "agent": a.seed}
             for a in agents]
    ctx = {"store": store.uri, "run": run_id, "config": cfg.to_dict(), "force": force}
    log(f"rlpad {command}: {len(agents)} agents as parallel Spark tasks on {master.url}")

    def done(r: dict) -> None:
        for line in r["log"]:
            log(f"  [agent {r['agent']}] {line}")

    results = run_grid(specs, TASK_FN, ctx, settings, on_result=done)
    return [r["metrics"] for r in results]
