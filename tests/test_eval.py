"""Stage 4 (`rlpad eval`) on the shared quick run, with a tiny grid on real Spark.

Covers: the grid's shape; a trial is a pure function of its spec (twice in one process ->
identical); constrained mode's generator sees only the trial's own real rows; a stage killed
mid-grid re-runs only its unfinished trials; the outputs and manifest; local[2] and a
standalone master + worker on 127.0.0.1 give the same per-episode scores and table; local[2,3]
with failures injected on first attempts gives the same table again.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import RLPAD, ROOT, rlpad
from rlpad.config import load_config
from rlpad.store import Store
from rlpad.trials import grid_specs

STAGE = "4-eval"
HERE = Path(__file__).resolve().parent
EVAL_SETS = ["eval.n_real=[200,0]", "eval.n_fake=[0,500]", "eval.repetitions=1",
             "eval.refit_steps=300", "eval.episodes=2", "eval.n_envs=2",
             "eval.constrained_gan_steps=30", "eval.quality_reps=0",
             "study.sanity_episodes=6"]  # the default 30 play 500-step episodes three times over
EVAL = [a for s in EVAL_SETS for a in ("--set", s)]
N_TRIALS = 6  # 2 n_real x (none@0 + simple@500 + constrained@500)
N_TASKS = N_TRIALS + 1  # and the agent's reference task
TIMING = ("gan_s", "refit_s", "play_s", "wall_s")
PNG = b"\x89PNG\r\n\x1a\n"


def _copy_run(store: str, run: str, dst: Path) -> Path:
    for s in ("1-fit", "2-transform", "3-fit-gan"):
        shutil.copytree(Path(store) / run / s, dst / run / s)
    return dst


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ctx(store: str, run: str, extra: tuple[str, ...] = ()) -> dict:
    """What stage 4 hands every trial (see rlpad.stages.evaluate)."""
    from rlpad.artifacts import TrialContext

    cfg = load_config("quick", [*EVAL_SETS, *extra])
    return TrialContext.for_run(Store(store), run, cfg).to_dict()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


# ---- the grid --------------------------------------------------------------------------------
def test_grid_specs_shapes():
    cfg = load_config("quick", ["eval.n_real=[200,0,5000,200]", "eval.n_fake=[0,100,500,100]",
                                "eval.repetitions=2"])
    specs = grid_specs(cfg, n_available=3000)
    ids = [s["trial_id"] for s in specs]
    assert len(ids) == len(set(ids))
    # n_real: duplicates collapse; 0 means all; more than there is is capped at all.
    assert sorted({s["n_real"] for s in specs}) == [200, 3000]
    assert all(s["all_real"] == (s["n_real"] == 3000) for s in specs)
    # 2 n_real x (none at 0 + 2 padded modes x 2 padding levels) x 2 repetitions
    assert len(specs) == 2 * (1 + 2 * 2) * 2
    for s in specs:
        if s["mode"] == "none":
            assert s["n_fake"] == 0
        else:
            assert s["mode"] in ("simple", "constrained") and s["n_fake"] in (100, 500)
    assert {s["n_fake"] for s in specs if s["mode"] == "none"} == {0}
    # Paired design: one seed per (n_real, rep), shared by every mode and padding level.
    seeds: dict[tuple[int, int], set[int]] = {}
    for s in specs:
        seeds.setdefault((s["n_real"], s["rep"]), set()).add(s["seed"])
    assert all(len(v) == 1 for v in seeds.values())
    assert len({next(iter(v)) for v in seeds.values()}) == len(seeds)  # distinct across cells
    # Deterministic, and a different base seed gives different trial seeds.
    assert grid_specs(cfg, 3000) == specs
    other = grid_specs(load_config("quick", ["seed=2", "eval.n_real=[200,0,5000,200]",
                                             "eval.n_fake=[0,100,500,100]",
                                             "eval.repetitions=2"]), 3000)
    assert {s["seed"] for s in other}.isdisjoint({s["seed"] for s in specs})


def test_grid_specs_without_none_mode_or_padding():
    cfg = load_config("quick", ["eval.n_real=[0]", "eval.n_fake=[0]", "eval.repetitions=1"])
    specs = grid_specs(cfg, 1234)
    assert [(s["mode"], s["n_real"], s["n_fake"]) for s in specs] == [("none", 1234, 0)]
    cfg = load_config("quick", ["eval.modes=['simple']", "eval.n_fake=[0,50]",
                                "eval.n_real=[10]", "eval.repetitions=3"])
    specs = grid_specs(cfg, 1234)
    assert {(s["mode"], s["n_fake"]) for s in specs} == {("simple", 50)} and len(specs) == 3


# ---- one trial, in this process ------------------------------------------------------------------
@pytest.fixture(scope="module")
def trial_ctx(quick_run):
    import tensorflow as tf

    # Start TF's runtime with its defaults first: load_artifacts would otherwise pin this
    # whole pytest process to one TF thread (what it does in a Spark worker).
    tf.zeros(1).numpy()
    store, run = quick_run
    return _ctx(store, run), {s["trial_id"]: s for s in
                              grid_specs(load_config("quick", EVAL_SETS),
                                         Store(store).manifest(run, "2-transform")
                                         ["metrics"]["n_transitions"])}


@pytest.mark.parametrize("method", ["bc", "lspi", "dqn"])
def test_run_trial_is_deterministic(trial_ctx, quick_run, method):
    from rlpad.spark import clear_worker_cache
    from rlpad.trials import run_trial

    _, specs = trial_ctx
    ctx = _ctx(*quick_run, extra=(f'eval.refit_method="{method}"',))
    spec = specs["simple-r200-f500-000"]
    a = run_trial(spec, ctx)
    clear_worker_cache()  # the second run reloads every artifact too
    b = run_trial(spec, ctx)
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}  # noqa: E731
    assert strip(a) == strip(b)
    assert len(a["scores"]) == 2 and all(s > 0 for s in a["scores"])
    assert a["n_real"] == 200 and a["n_fake"] == 500
    if method == "dqn":  # the mean loss over each tenth of the steps
        assert len(a["td_loss"]) == 10 and a["refit_converged"]
    elif method == "bc":  # one convex fit: its final loss, solved to tolerance
        assert len(a["td_loss"]) == 1 and a["refit_converged"]
    else:  # one loss per policy iteration; converged or stopped at refit_lspi_iters
        assert 1 <= len(a["td_loss"]) <= 20
        assert a["refit_converged"] == (len(a["td_loss"]) < 20)


def test_constrained_gan_sees_only_the_trials_rows(trial_ctx, quick_run):
    from rlpad.trials import run_trial

    ctx, specs = trial_ctx
    store, run = quick_run
    stage3_train = Store(store).manifest(run, "3-fit-gan")["metrics"]["n_train"]
    c = run_trial(specs["constrained-r200-f500-000"], ctx)
    assert c["gan_n_train"] == c["n_real"] == 200
    assert c["gan_restarts"] == 0 and "pad_c2st" not in c  # quality_reps=0: not judged
    # with quality_reps=1, rep 0's padding is judged against the agent's other real rows
    q = run_trial(specs["constrained-r200-f500-000"], _ctx(store, run, ("eval.quality_reps=1",)))
    assert 0.5 <= q["pad_c2st"] <= 1.0 and q["pad_memorisation"] > 0
    assert q["scores"] == c["scores"]  # judging the padding does not change the trial
    s = run_trial(specs["simple-r200-f500-000"], ctx)
    assert s["gan_n_train"] == stage3_train > 200  # the shared generator saw far more
    n = run_trial(specs["none-r200-f0-000"], ctx)
    assert "gan_n_train" not in n and n["gan_s"] == 0.0
    # The same real sample under every mode (paired design): same seed, same n_real.
    assert c["seed"] == s["seed"] == n["seed"]


def test_resample_pads_with_copies_of_the_trials_own_rows(trial_ctx, quick_run):
    """resample: constrained's control. Its padding rows are rows of the trial's own sample
    (drawn with replacement), it fits no generator, and it shares the paired real sample."""
    from rlpad.refit import Transitions
    from rlpad.trials import resampled, run_trial

    rng = np.random.default_rng(0)
    own = Transitions(rng.standard_normal((50, 4)).astype(np.float32),
                      rng.integers(0, 2, 50).astype(np.int32), np.ones(50, np.float32),
                      rng.standard_normal((50, 4)).astype(np.float32), np.zeros(50, np.float32))
    pad = resampled(own, 400, seed=3)
    rows = {r.tobytes() for r in own.e_s}
    assert len(pad) == 400 and all(r.tobytes() in rows for r in pad.e_s)
    assert len({r.tobytes() for r in pad.e_s}) > 40  # with replacement, over the whole sample
    np.testing.assert_array_equal(resampled(own, 400, seed=3).action, pad.action)

    ctx, _ = trial_ctx
    store, run = quick_run
    n_all = Store(store).manifest(run, "2-transform")["metrics"]["n_transitions"]
    specs = {s["trial_id"]: s for s in grid_specs(
        load_config("quick", [*EVAL_SETS, 'eval.modes=["none", "resample"]']), n_all)}
    r = run_trial(specs["resample-r200-f500-000"], _ctx(store, run, ("eval.quality_reps=1",)))
    assert r["n_real"] == 200 and r["n_fake"] == 500 and "gan_n_train" not in r
    assert r["pad_memorisation"] == 0.0  # copies: the memorisation check sees them
    assert r["seed"] == specs["none-r200-f0-000"]["seed"]


def test_generator_kinds_head_to_head(quick_run, tmp_path):
    """Modes name their generator kind: stage 3 fits each `simple:<kind>` in its own folder
    (the profile's variant stays at 3-fit-gan, untouched), and trials of every kind share the
    paired real sample; a constrained kind fits that kind on the trial's own rows."""
    from conftest import QUICK_GAN
    from rlpad.trials import run_trial

    store, run = quick_run
    dst = _copy_run(store, run, tmp_path)
    modes = 'eval.modes=["none", "simple:cvae", "constrained:diffusion", "constrained:resample"]'
    before = Store(str(dst)).manifest(run, "3-fit-gan")
    out = rlpad("fit-gan", "--store", str(dst), "--run", run, *QUICK_GAN, "--set", modes)
    assert "3-fit-gan-cvae" in out.stdout + out.stderr
    cvae = Store(str(dst)).manifest(run, "3-fit-gan-cvae")
    assert cvae["metrics"]["variant"] == "cvae" and cvae["config"]["gan"]["variant"] == "cvae"
    assert Store(str(dst)).manifest(run, "3-fit-gan") == before  # already done: kept as it was

    cfg = load_config("quick", [*EVAL_SETS, modes])
    n_all = Store(str(dst)).manifest(run, "2-transform")["metrics"]["n_transitions"]
    specs = {s["trial_id"]: s for s in grid_specs(cfg, n_all)}
    assert {s["mode"] for s in specs.values()} == {"none", "simple:cvae", "constrained:diffusion",
                                                   "constrained:resample"}
    ctx = _ctx(str(dst), run, (modes,))
    assert "3-fit-gan-cvae" in ctx["upstream"] and "3-fit-gan" not in ctx["upstream"]
    sc = run_trial(specs["simple-cvae-r200-f500-000"], ctx)
    cd = run_trial(specs["constrained-diffusion-r200-f500-000"], ctx)
    assert sc["gan_n_train"] == cvae["metrics"]["n_train"] and cd["gan_n_train"] == 200
    assert sc["seed"] == cd["seed"] == specs["none-r200-f0-000"]["seed"]
    assert all(s > 0 for s in sc["scores"] + cd["scores"])


# ---- the stage through the CLI: kill, resume, outputs ------------------------------------------
@dataclass
class KilledRun:
    store: Path
    run: str
    killed_rc: int
    manifest_after_kill: bool
    persisted: list[str]
    tampered: str
    rerun: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def eval_local(quick_run, tmp_path_factory) -> KilledRun:
    """Stage 4 on local[2], SIGKILLed (driver, JVM and workers) once a trial is saved, then
    rerun. One saved trial's wall_s is rewritten to 999 before the rerun: if it shows in the
    final trials.csv, that trial was not run again."""
    store, run = quick_run
    copy = _copy_run(store, run, tmp_path_factory.mktemp("eval-local"))
    args = ["eval", "--store", str(copy), "--run", run, "--master", "local[2]", *EVAL]
    trials = copy / run / STAGE / "_trials"
    proc = subprocess.Popen(RLPAD + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 300
        while not list(trials.glob("*/*.json")):
            if proc.poll() is not None:
                pytest.fail(f"eval ended before saving a trial:\n{proc.stdout.read()}")
            if time.monotonic() > deadline:
                pytest.fail("no trial saved within 300 s")
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    persisted = sorted(p.stem for p in trials.glob("*/*.json"))
    manifest_after_kill = (copy / run / STAGE / "manifest.json").exists()
    tampered = next(t for t in persisted if not t.startswith("ref-"))
    path = next(trials.glob(f"*/{tampered}.json"))
    r = json.loads(path.read_text())
    path.write_text(json.dumps({**r, "wall_s": 999.0}))
    rerun = rlpad(*args, timeout=600)
    return KilledRun(copy, run, proc.returncode, manifest_after_kill, persisted, tampered, rerun)


def test_killed_eval_reruns_only_unfinished_trials(eval_local):
    e = eval_local
    assert e.killed_rc == -signal.SIGKILL
    assert not e.manifest_after_kill
    k = len(e.persisted)
    assert 1 <= k < N_TASKS, "the kill should land mid-grid"
    out = e.rerun.stdout
    assert f"{k} of {N_TASKS} trials already finished; running the rest" in out, out
    progress = re.findall(r"trials (\d+)/(\d+) \(\+(\d+) done before\)", out)
    assert progress and progress[-1] == (str(N_TASKS - k), str(N_TASKS - k), str(k)), out
    rows = {r["trial_id"]: r for r in _csv(e.store / e.run / STAGE / "trials.csv")}
    assert float(rows[e.tampered]["wall_s"]) == 999.0  # kept, not re-run
    assert all(float(r["wall_s"]) != 999.0 for t, r in rows.items() if t != e.tampered)


def test_eval_outputs_and_manifest(eval_local):
    e = eval_local
    out = e.store / e.run / STAGE
    m = json.loads((out / "manifest.json").read_text())
    for name in ("episodes.csv", "trials.csv", "summary.json", "study.json", "table.txt",
                 "verdict.txt", "scores.png"):
        assert (out / name).is_file() and name in m["files"], name
    assert (out / "scores.png").read_bytes()[:8] == PNG
    assert not (out / "_trials").exists()  # cleared once published
    st = Store(str(e.store))
    assert m["upstream"] == {s: st.manifest(e.run, s)["_sha256"]
                             for s in ("1-fit", "2-transform", "3-fit-gan")}
    met = m["metrics"]
    assert met["n_trials"] == N_TRIALS and met["n_agents"] == 1
    n_all = st.manifest(e.run, "2-transform")["metrics"]["n_transitions"]
    assert met["n_available_real"] == n_all
    # the sanity rule: the refit on all real data, normalised by the agent and a random policy
    # scored on the same separate episodes (none of which a cell plays)
    from rlpad.study import normalised
    ref = json.loads((out / "study.json").read_text())["references"][0]
    n_sanity = load_config("quick", EVAL_SETS).study.sanity_episodes
    assert len(ref["sanity_refit_scores"]) == len(ref["sanity_agent_scores"]) == n_sanity
    want = normalised(*(sum(ref[k]) / n_sanity for k in
                        ("sanity_refit_scores", "sanity_random_scores", "sanity_agent_scores")))
    assert met["sanity_recovery"] == pytest.approx(want)
    assert met["sanity_holds"] == (met["sanity_recovery"] >= 0.9)
    assert met["refs"]["1"]["random"] < met["refs"]["1"]["agent"]  # it beats random
    assert "a single agent, not a study" in met["table"]
    trials = _csv(out / "trials.csv")
    assert met["refit_unconverged_trials"] == sum(r["refit_converged"] == "False" for r in trials)
    episodes = _csv(out / "episodes.csv")
    assert len(episodes) == N_TRIALS * 2
    assert {(r["mode"], r["n_real"], r["n_fake"]) for r in episodes} == {
        ("none", "200", "0"), ("simple", "200", "500"), ("constrained", "200", "500"),
        ("none", str(n_all), "0"), ("simple", str(n_all), "500"),
        ("constrained", str(n_all), "500")}
    trials = _csv(out / "trials.csv")
    assert sorted(r["trial_id"] for r in trials) == sorted({r["trial_id"] for r in episodes})
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["summary"]) == N_TRIALS and summary["sanity_recovery"] == met["sanity_recovery"]
    table = (out / "table.txt").read_text()
    assert (out / "verdict.txt").read_text() == table
    assert table.strip() == met["table"].strip()
    assert met["table"].strip() in e.rerun.stdout  # the stage prints its table
    for mode in ("none", "simple", "constrained"):
        assert re.search(rf"^{mode}\s+200\s", table, re.M), table


# ---- the same grid on a standalone cluster -----------------------------------------------------
def test_standalone_cluster_matches_local(quick_run, eval_local, spark_cluster, tmp_path):
    standalone_cluster = spark_cluster[0]
    store, run = quick_run
    copy = _copy_run(store, run, tmp_path / "store")
    # What 4-scaled-simple-eval.sh does for a spark:// master: spark-submit, client mode.
    p = rlpad("eval", "--store", str(copy), "--run", run, "--master", standalone_cluster,
              "--executors", "1", "--executor-cores", "2", "--executor-memory", "1g",
              "--submit", *EVAL, timeout=600)
    assert "spark-submit" in p.stderr
    a, b = eval_local.store / run / STAGE, copy / run / STAGE
    assert _csv(b / "episodes.csv") == _csv(a / "episodes.csv")
    assert (b / "table.txt").read_text() == (a / "table.txt").read_text()
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(_csv(b / "trials.csv")) == strip(_csv(a / "trials.csv"))
    ma = json.loads((a / "manifest.json").read_text())["metrics"]
    mb = json.loads((b / "manifest.json").read_text())["metrics"]
    assert mb["summary"] == ma["summary"] and mb["sanity_recovery"] == ma["sanity_recovery"]


# ---- local[2,3] with injected first-attempt failures ----------------------------------------------
def test_retried_trials_give_the_same_table(quick_run, eval_local):
    from rlpad import stats
    from rlpad.spark import SparkSettings, run_grid, session
    from rlpad.stages.evaluate import episode_rows

    store, run = quick_run
    # The grid runs on the fixture's (untouched) store: trials only read it.
    ctx = _ctx(store, run)
    n_all = Store(store).manifest(run, "2-transform")["metrics"]["n_transitions"]
    flaky = {"simple-r200-f500-000", "none-r200-f0-000", "constrained-r" + str(n_all) + "-f500-000"}
    specs = [dict(s, flaky=s["trial_id"] in flaky)
             for s in grid_specs(load_config("quick", EVAL_SETS), n_all)]
    assert len(specs) == N_TRIALS and sum(s["flaky"] for s in specs) == 3
    with session(SparkSettings(master="local[2,3]")) as spark:
        spark.sparkContext.addPyFile(str(HERE / "eval_flaky_trial.py"))
        results = run_grid(specs, "eval_flaky_trial:flaky_trial", ctx, spark=spark)
    attempts = {r["trial_id"]: r.pop("attempt") for r in results}
    assert {t for t, a in attempts.items() if a > 0} == flaky
    assert all(attempts[t] == 1 for t in flaky)

    ref = eval_local.store / run / STAGE
    ref_eps = [{**r, "agent": int(r["agent"]), "n_real": int(r["n_real"]), "n_fake": int(r["n_fake"]),
                "rep": int(r["rep"]), "episode": int(r["episode"]), "score": float(r["score"]),
                "length": int(r["length"])} for r in _csv(ref / "episodes.csv")]
    eps = episode_rows(results)
    assert eps == ref_eps  # identical per-episode scores
    table = stats.format_table(stats.summarize(eps, 500.0))
    assert table == stats.format_table(stats.summarize(ref_eps, 500.0))
    # ... and the printed table's body (its first line is the title) is the same text.
    assert table == "\n".join((ref / "table.txt").read_text().rstrip("\n").splitlines()[1:])
