"""Stage 2 (cut + embed) on the shared quick run: the cut is exact, the class table round-trips,
embeddings.h5 holds what the README says and its features are [e(s), e(s') - e(s)] of the
replay's own states, and broken or missing upstream artifacts are refused with actionable errors.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import rlpad
from rlpad.config import load_config
from rlpad.embed import CLASS_COLUMNS, class_ids, class_table
from rlpad.store import Store

STAGE = "2-transform"


def flip_byte(path: Path, where: float = 0.5) -> None:
    """Flip one byte in the middle of a file (a corruption no format check would notice)."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def copy_stages(store: str, run: str, dst: Path, stages: tuple[str, ...]) -> Path:
    """A private copy of some stages of the shared fixture's run (never touch the original)."""
    for s in stages:
        shutil.copytree(Path(store) / run / s, dst / run / s)
    return dst


def dataset_memory(st: Store, run: str):
    """The memory stage 2 embedded: the policy play it recorded, or stage 1's replay."""
    from rlpad.replay import ReplayMemory

    reader = st.require(run, STAGE)
    if reader.metrics.get("dataset_kind") == "policy":
        return ReplayMemory.load(reader.local_path("policy_replay.h5"))
    return ReplayMemory.load(st.require(run, "1-fit").local_path("replay.h5"))


# ---- the cut ---------------------------------------------------------------------------------
def test_cut_equivalence(quick_run):
    from rlpad.qnet import split_at_cut
    from rlpad.replay import ReplayMemory
    from rlpad.artifacts import FitOutputs

    store, run = quick_run
    st = Store(store)
    fit = FitOutputs.open(st, run)
    full = fit.qnet()
    spec = fit.spec()
    cut = split_at_cut(full, fit.cfg.qnet, spec.obs_shape)
    replay = ReplayMemory.load(fit.reader.local_path("replay.h5"))
    rows = replay.transition_rows()
    sample = np.random.default_rng(0).choice(rows, size=min(500, len(rows)), replace=False)
    s = replay.states(sample)

    q_full = full.model(s, training=False).numpy()
    e = cut.encoder(s, training=False).numpy()
    q_cut = cut.head(e, training=False).numpy()
    assert q_full.shape == q_cut.shape == (len(sample), spec.n_actions)
    assert np.max(np.abs(q_full - q_cut)) <= 1e-4
    # The halves are independent models (copies), not the full net's own layers.
    assert cut.encoder is not full.encoder and cut.head is not full.head
    # The cut sits before the ReLU: the embedding takes negative values, and the head's first
    # layer is the ReLU (so head(e) == head(max(e, 0))).
    assert e.shape[1] == fit.cfg.qnet.hidden[-1] and (e < 0).any()
    np.testing.assert_allclose(cut.head(np.maximum(e, 0), training=False).numpy(), q_cut,
                               rtol=0, atol=1e-6)

    m = st.manifest(run, STAGE)
    assert m is not None
    assert 0 <= m["metrics"]["cut_check_max_abs_diff"] <= 1e-4
    assert m["metrics"]["cut_check_samples"] > 0


# ---- the class table -------------------------------------------------------------------------
def _n_actions(profile: str) -> int:
    from rlpad.envs import env_spec

    return env_spec(load_config(profile).env).n_actions


@pytest.mark.parametrize("profile,rewards", [
    ("breakout", [0.0, 1.0, 4.0, 7.0]),  # Breakout's brick values (raw, as the replay keeps them)
    ("quick", [1.0]),                     # CartPole: +1 every step
])
def test_class_table_round_trip(profile, rewards):
    n_actions = _n_actions(profile)
    assert n_actions == {"breakout": 3, "quick": 2}[profile]
    table = class_table(n_actions)
    assert table.shape == (6 * n_actions, len(CLASS_COLUMNS))
    assert len({tuple(r) for r in table}) == len(table)  # one row per class

    a, r, t = (g.ravel() for g in np.meshgrid(np.arange(n_actions), np.asarray(rewards, np.float32),
                                              [False, True], indexing="ij"))
    ids = class_ids(a.astype(np.int32), r, t)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < len(table)
    back = table[ids]
    np.testing.assert_array_equal(back[:, 0], a)
    np.testing.assert_array_equal(back[:, 1], np.sign(r).astype(int))
    np.testing.assert_array_equal(back[:, 2], t.astype(int))
    # Different (action, sign, terminal) never share a class; same ones always do.
    keys = list(zip(a.tolist(), np.sign(r).tolist(), t.tolist()))
    assert len(set(zip(keys, ids.tolist()))) == len(set(keys)) == len(set(ids.tolist()))


def test_class_ids_negative_rewards():
    table = class_table(3)
    a = np.array([0, 1, 2, 2], np.int32)
    r = np.array([-1.0, -0.25, 0.0, -3.0], np.float32)
    t = np.array([True, False, True, False])
    np.testing.assert_array_equal(table[class_ids(a, r, t)],
                                  [[0, -1, 1], [1, -1, 0], [2, 0, 1], [2, -1, 0]])


# ---- embeddings.h5 ----------------------------------------------------------------------------
def test_embeddings_file_contents_and_features(quick_run):
    from rlpad.qnet import split_at_cut
    from rlpad.artifacts import FitOutputs

    store, run = quick_run
    st = Store(store)
    reader = st.require(run, STAGE)
    fit = FitOutputs.open(st, run)
    path = reader.local_path("embeddings.h5")
    with h5py.File(path, "r") as f:
        names = set(f.keys())
        assert {"features", "labels", "actions", "rewards", "terminals", "class_table",
                "norm_mean", "norm_std", "class_counts", "rows"} <= names
        x = f["features"][...]
        labels, actions = f["labels"][...], f["actions"][...]
        rewards, terminals, rows = f["rewards"][...], f["terminals"][...], f["rows"][...]
        table, counts = f["class_table"][...], f["class_counts"][...]
        mean, std = f["norm_mean"][...], f["norm_std"][...]
        attrs = dict(f.attrs)
    d = int(attrs["embed_dim"])
    n = len(labels)
    assert d == fit.cfg.qnet.hidden[-1] and x.shape == (n, 2 * d) and x.dtype == np.float32
    assert n == reader.metrics["n_transitions"] > 1000
    assert all(len(a) == n for a in (actions, rewards, terminals, rows))
    assert float(attrs["gamma"]) == fit.cfg.dqn.gamma and int(attrs["n_actions"]) == 2
    np.testing.assert_array_equal(table, class_table(2))
    np.testing.assert_array_equal(labels, class_ids(actions, rewards, terminals))
    np.testing.assert_array_equal(table[labels],
                                  np.stack([actions, np.sign(rewards), terminals], 1).astype(int))
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=len(table)))
    assert set(np.unique(rewards).tolist()) == {1.0} and not terminals.all()
    # a replay holds the early agent's falls; a 500-scoring agent's own play may hold none
    assert terminals.any() or reader.metrics["dataset_kind"] == "policy"
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-4, atol=1e-4)
    assert (std > 0).any()

    # Recompute a few rows from the memory stage 2 embedded and the stage-1 Q-net.
    replay = dataset_memory(Store(store), run)
    cut = split_at_cut(fit.qnet(), fit.cfg.qnet, fit.spec().obs_shape)
    pick = np.random.default_rng(1).choice(n, size=16, replace=False)
    r = rows[pick]
    assert replay.valid(r).all()
    e_s = cut.encoder(replay.states(r), training=False).numpy()
    e_next = cut.encoder(replay.states((r + 1) % replay.capacity), training=False).numpy()
    cfg = load_config("quick")
    ce, cd = cfg.transform.clip_embedding, cfg.transform.clip_delta
    np.testing.assert_allclose(x[pick, :d], np.clip(e_s, -ce, ce), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(x[pick, d:], np.clip(e_next - e_s, -cd, cd), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(actions[pick], replay.actions[r])
    np.testing.assert_array_equal(rewards[pick], replay.rewards[r])
    np.testing.assert_array_equal(terminals[pick], replay.terminals[r])
    # Consecutive transitions of an episode chain: e(s') of row t is e(s) of row t+1.
    where = {int(v): i for i, v in enumerate(rows)}
    pairs = [(i, where[int(v) + 1]) for i, v in enumerate(rows[:2000]) if int(v) + 1 in where]
    assert len(pairs) > 1000
    i, j = np.asarray(pairs).T
    np.testing.assert_allclose(x[i, :d] + x[i, d:], x[j, :d], rtol=1e-5, atol=1e-3)


# ---- refused inputs --------------------------------------------------------------------------
def test_corrupted_replay_is_refused(quick_run, tmp_path):
    store, run = quick_run
    copy = copy_stages(store, run, tmp_path / "store", ("1-fit",))
    flip_byte(copy / run / "1-fit" / "replay.h5")
    p = rlpad("transform", "--store", str(copy), "--run", run, "--set",
              'transform.dataset="replay"', check=False, timeout=300)  # the kind that reads it
    assert p.returncode == 2, p.stdout + p.stderr
    assert "replay.h5" in p.stderr and "checksum" in p.stderr and "--force" in p.stderr, p.stderr
    assert "1-initial-fit.sh" in p.stderr
    assert not (copy / run / STAGE / "manifest.json").exists()
    # The shared fixture's file is untouched.
    assert Store(store).require(run, "1-fit").local_path("replay.h5")


def test_transform_without_stage1_names_the_script(tmp_path):
    p = rlpad("transform", "--store", str(tmp_path / "empty"), "--run", "r", check=False,
              timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "1-initial-fit.sh" in p.stderr and "1-fit" in p.stderr, p.stderr
    assert not (tmp_path / "empty" / "r" / STAGE / "manifest.json").exists()


def test_transform_manifest_records_upstream(quick_run):
    store, run = quick_run
    st = Store(store)
    m = st.manifest(run, STAGE)
    assert m["upstream"] == {"1-fit": st.manifest(run, "1-fit")["_sha256"]}
    assert m["files"]["embeddings.h5"]["sha256"]
    assert json.loads(json.dumps(m["metrics"]))["n_classes"] == 12
    # CartPole: 2 actions x reward +1 x terminal or not; a 500-scoring agent's play never falls
    present = 4 if m["metrics"]["dataset_kind"] == "replay" else len(m["metrics"]["class_counts"])
    assert m["metrics"]["classes_present"] == present >= 2


def test_dataset_kind_and_window_are_recorded_and_not_silently_reused(quick_run, tmp_path):
    """Stage 2 records what it embedded (the dataset kind and the recency window); a stage 2
    made from another window is refused, not reused, by a rerun with this one."""
    from conftest import QUICK_TRANSFORM, rlpad

    store, run = quick_run
    dst = tmp_path / "store"
    shutil.copytree(Path(store) / run / "1-fit", dst / run / "1-fit")
    common = ["--store", str(dst), "--run", run, *QUICK_TRANSFORM]
    rlpad("transform", *common, "--set", "transform.window=2000")
    m = json.loads((dst / run / "2-transform" / "manifest.json").read_text())
    assert m["metrics"]["dataset_kind"] == "policy" and m["metrics"]["window"] == 2000
    assert m["metrics"]["n_transitions"] == 2000
    from rlpad.embed import Embedded
    full = Embedded.load(str(Path(store) / run / "2-transform" / "embeddings.h5"))
    assert len(full.rows) > 2000
    win = Embedded.load(str(dst / run / "2-transform" / "embeddings.h5"))
    np.testing.assert_array_equal(win.rows, full.rows[-2000:])  # the newest 2,000
    np.testing.assert_array_equal(win.features, full.features[-2000:])
    p = rlpad("transform", *common, check=False)  # window 0: all of the data
    assert p.returncode == 2 and "another config" in p.stderr


def test_policy_dataset_is_the_agents_own_play_recorded_and_labelled(quick_run, tmp_path):
    """dataset = policy: stage 2 records the shipped agent's epsilon-greedy play (exactly
    policy_steps transitions, kept as policy_replay.h5 in stage 1's replay format) and embeds it;
    its greedy steps are the agent's argmax; two runs give the same file; a stage 2 of the
    replay kind is not silently reused for it."""
    from conftest import rlpad
    from rlpad.artifacts import FitOutputs
    from rlpad.embed import Embedded
    from rlpad.replay import ReplayMemory

    store, run = quick_run
    sets = ["--set", 'transform.dataset="policy"', "--set", "transform.policy_steps=700",
            "--set", "transform.policy_epsilon=0.2"]
    shas = []
    for k in range(2):
        dst = tmp_path / f"store{k}"
        shutil.copytree(Path(store) / run / "1-fit", dst / run / "1-fit")
        rlpad("transform", "--store", str(dst), "--run", run, *sets)
        m = json.loads((dst / run / STAGE / "manifest.json").read_text())
        shas.append((m["files"]["embeddings.h5"]["sha256"], m["files"]["policy_replay.h5"]["sha256"]))
    met = m["metrics"]
    assert met["dataset_kind"] == "policy" and met["policy_epsilon"] == 0.2
    assert met["n_transitions"] == 700 and met["policy_episodes"] >= 1
    assert shas[0] == shas[1]  # a function of the agent's seed and the settings
    mem = ReplayMemory.load(str(dst / run / STAGE / "policy_replay.h5"))
    emb = Embedded.load(str(dst / run / STAGE / "embeddings.h5"))
    np.testing.assert_array_equal(emb.actions, mem.actions[mem.transition_rows()])
    fit = FitOutputs.open(Store(str(dst)), run)
    q = fit.qnet().model(mem.states(mem.transition_rows()), training=False).numpy()
    agree = float((q.argmax(1) == emb.actions).mean())
    assert 0.85 < agree < 0.95  # 0.2 of steps random, half of those still the argmax: ~0.9
    p = rlpad("transform", "--store", str(dst), "--run", run, check=False)  # the replay kind
    assert p.returncode == 2 and "another config" in p.stderr
