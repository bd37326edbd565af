"""A study of two agents through the CLI: layout, skip/resume per agent, stage 4's agent-level
statistics and outputs, the paired design within each agent.

Both agents train a small DQN budget (the statistics and the layout are under test here, not
the agents' skill). Stage 1 is killed while it trains agent 2, after agent 1 finished; the rerun
skips agent 1 by its manifest and resumes agent 2 from its checkpoint. The study itself is
conftest's `study_run` (the dashboard tests read it too).
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from conftest import rlpad


def test_agents_have_their_own_stages_and_resume(study_run):
    store, run, (killed, _, _), before, outs = study_run
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:]
    for seed in (1, 2):
        for s in ("1-fit", "2-transform", "3-fit-gan"):
            m = json.loads((store / run / "agents" / str(seed) / s / "manifest.json").read_text())
            assert m["config"]["seed"] == seed
            assert m["stage"] == f"agents/{seed}/{s}"
    # agent 1 was skipped (its manifest untouched), agent 2 resumed from its checkpoint
    assert (store / run / "agents" / "1" / "1-fit" / "manifest.json").read_bytes() == before
    assert "agent 1 of 2 (seed 1)" in outs[0] and "skipping" in outs[0]
    m2 = json.loads((store / run / "agents" / "2" / "1-fit" / "manifest.json").read_text())
    assert 0 < m2["run_info"]["resumed_from_step"] < m2["metrics"]["agent_steps"]
    assert "random_return_mean" in m2["metrics"]
    assert not (store / run / "1-fit").exists()  # several agents: nothing at the run's top


def test_killed_study_eval_reruns_only_unfinished_tasks(study_run):
    store, run, (_, killed4, saved), _, outs = study_run
    assert killed4.returncode == -signal.SIGKILL, killed4.stdout[-2000:]
    assert len(saved) == 5
    assert "5 of 18 trials already finished; running the rest" in outs[-1]
    assert "trials 13/13 (+5 done before)" in outs[-1]
    trials = {r["trial_id"] for r in _csv(store / run / "4-eval" / "trials.csv")}
    assert {t for t in saved if not t.startswith("ref-")} <= trials


def test_study_outputs_and_agent_level_statistics(study_run):
    store, run, _, _, outs = study_run
    out = store / run / "4-eval"
    m = json.loads((out / "manifest.json").read_text())
    for name in ("study.json", "verdict.txt", "lifts.png", "trials.csv", "episodes.csv"):
        assert name in m["files"], name
    met = m["metrics"]
    assert met["n_agents"] == 2 and met["agents"] == [1, 2]
    assert met["n_trials"] == 2 * 2 * 2 * 2  # agents x n_real x (none + simple) x reps
    assert set(m["upstream"]) == {f"agents/{s}/{n}" for s in (1, 2)
                                  for n in ("1-fit", "2-transform", "3-fit-gan")}
    st = json.loads((out / "study.json").read_text())
    cells = {(c["subset"], c["mode"], c["n_real"]) for c in st["cells"]}
    assert ("all", "simple", 200) in cells and ("all", "simple", 0) in cells
    # both agents beat random and enter every cell's statistics (else the lift checks below
    # would check nothing)
    assert all(len(c["agent_lifts"]) == 2 for c in st["cells"] if c["subset"] == "all"), st["cells"]
    trials = {}
    for r in _csv(out / "trials.csv"):
        trials.setdefault(int(r["agent"]), []).append(r)
    # each agent's lift is its own padded cell minus its own control (same configured n_real)
    for c in st["cells"]:
        for seed, lift in c["agent_lifts"].items():
            mine = trials[int(seed)]
            mean = lambda mode: sum(float(r["mean_score"]) for r in mine  # noqa: E731
                                    if r["mode"] == mode and int(r["n_real_cfg"]) == c["n_real"]) / 2
            assert lift == pytest.approx(mean(c["mode"]) - mean("none"))
    # paired design: within an agent modes share the real sample (seed); agents do not
    for seed, mine in trials.items():
        by = {}
        for r in mine:
            by.setdefault((r["n_real_cfg"], r["rep"]), set()).add(r["seed"])
        assert all(len(v) == 1 for v in by.values())
    assert not ({r["seed"] for r in trials[1]} & {r["seed"] for r in trials[2]})
    text = (out / "verdict.txt").read_text()
    # the profile's primary comparison comes first, tested as its own family
    assert text.startswith("PRIMARY (pre-registered in the profile): simple at n_real 200, "
                           "n_fake 500; Holm across its 1 control(s) only")
    (prim,) = st["primary"]
    cell = next(c for c in st["cells"] if (c["subset"], c["mode"], c["n_real"]) == ("all", "simple", 200))
    assert prim["control"] == "none" and prim["lift"] == pytest.approx(cell["lift"])
    assert prim["p_holm"] == pytest.approx(prim["p"])  # a family of one
    assert "a study of 2 agents" in text and "agents whose sanity holds" in text
    assert "seed    1" in text and "seed    2" in text
    assert "sanity holds for" in outs[-1]


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_standalone_master_runs_agents_stage1_as_parallel_tasks(tmp_path, spark_cluster):
    """Two agents' stage 1 on a standalone master + worker (2 cores) on 127.0.0.1: one Spark
    task per agent, running at the same time, each writing its agent's stage to the store."""
    import time as _time

    store = tmp_path / "store"
    tiny = ["study.agents=2", "dqn.total_steps=3000", "dqn.learning_starts=100",
            "dqn.train_freq=1", "dqn.gradient_steps=1", "dqn.eval_every=3000", "dqn.eval_episodes=1",
            "dqn.final_eval_episodes=2", "dqn.stop_at_eval_return=0"]
    url = spark_cluster[0]
    p = rlpad("fit", "--store", str(store), "--run", "par", "--master", url,
              "--executors", "2", "--executor-cores", "1", "--executor-memory", "512m",
              *[a for s in tiny for a in ("--set", s)], timeout=600)
    assert "2 agents as parallel Spark tasks on spark://127.0.0.1" in p.stdout + p.stderr
    windows = []
    for seed in (1, 2):
        m = json.loads((store / "par" / "agents" / str(seed) / "1-fit" / "manifest.json").read_text())
        assert m["config"]["seed"] == seed and m["metrics"]["agent_steps"] == 3000
        end = _time.mktime(_time.strptime(m["finished_at"], "%Y-%m-%dT%H:%M:%SZ"))
        windows.append((end - m["wall_time_s"], end))
    (s1, e1), (s2, e2) = windows
    overlap = min(e1, e2) - max(s1, s2)
    assert overlap > 0.5 * min(e1 - s1, e2 - s2), windows  # they ran side by side
