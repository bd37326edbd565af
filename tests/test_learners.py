"""Learners chosen by name: the registry, self-contradicting profiles, Double-DQN targets,
and stage 1 through the CLI with a named learner."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rlpad.config import ConfigError, config_from_dict, load_config
from rlpad.learners import learner

from conftest import rlpad


def test_default_learner_keeps_stage1_hash():
    cfg = load_config("quick")
    assert cfg.learner.kind == "dqn" and not cfg.double_dqn
    # runs made before learners had names keep their stage 1
    assert cfg.fit_hash() == cfg.section_hash("env", "qnet", "dqn")
    ddqn = load_config("quick", ["learner.kind=double-dqn"])
    assert ddqn.double_dqn and ddqn.fit_hash() != cfg.fit_hash()
    # a run recorded with the older flag trained the same way: same stage-1 hash
    d = cfg.to_dict()
    d.pop("learner")
    d["dqn"]["double_dqn"] = True
    assert config_from_dict(d).fit_hash() == ddqn.fit_hash()


@pytest.mark.parametrize("overrides, both", [
    (["dqn.double_dqn=true"], ("'learner.kind' = 'dqn'", "'dqn.double_dqn' = true")),
    (["learner.kind=double-dqn", "dqn.double_dqn=false"],
     ("'learner.kind' = 'double-dqn'", "'dqn.double_dqn' = false")),
])
def test_contradicting_learner_keys_name_both(overrides, both):
    with pytest.raises(ConfigError) as e:
        load_config("quick", overrides)
    msg = str(e.value)
    assert "\n" not in msg and all(k in msg for k in both)


def test_contradiction_in_profile_file(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[learner]\nkind = "double-dqn"\n[dqn]\ndouble_dqn = false\n')
    with pytest.raises(ConfigError, match="contradicts") as e:
        load_config(str(p))
    assert str(p) in str(e.value)
    p.write_text('[learner]\nkind = "double-dqn"\n[dqn]\ndouble_dqn = true\n')
    assert load_config(str(p)).double_dqn


def test_unknown_learner_is_one_line_error():
    with pytest.raises(ConfigError, match=r"key 'learner.kind' must be one of"):
        load_config("quick", ["learner.kind=sarsa"])
    with pytest.raises(ConfigError, match="learner.kind"):
        learner("sarsa")


def test_manifest_before_learner_names_reads_as_double_dqn():
    d = load_config("quick").to_dict()
    d.pop("learner")
    d["dqn"]["double_dqn"] = True
    assert config_from_dict(d).learner.kind == "double-dqn"


def _loss_by_hand(agent, batch, double: bool) -> float:
    s, a, r, s2, done = batch
    q_next = agent.target.model(s2).numpy()
    if double:
        v = q_next[np.arange(len(a)), agent.online.model(s2).numpy().argmax(1)]
    else:
        v = q_next.max(1)
    y = r + agent.cfg.gamma * (1 - done) * v
    err = y - agent.online.model(s).numpy()[np.arange(len(a)), a]
    return float(np.mean(np.where(np.abs(err) <= 1, 0.5 * err ** 2, np.abs(err) - 0.5)))


def test_double_dqn_targets_are_the_online_nets_choice():
    import keras
    from rlpad.dqn import DQNAgent
    from rlpad.envs import env_spec

    rng = np.random.default_rng(0)
    losses = {}
    for kind in ("dqn", "double-dqn"):
        cfg = load_config("quick", [f"learner.kind={kind}"])
        spec = env_spec(cfg.env)
        keras.utils.set_random_seed(3)
        agent = DQNAgent(cfg, spec)
        # a target net unlike the online one, so the two targets differ
        agent.target.model.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                                        for w in agent.online.model.get_weights()])
        batch = (rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64).astype("int32"),
                 rng.normal(size=64).astype("float32"), rng.normal(size=(64, 4)).astype("float32"),
                 (rng.random(64) < 0.2).astype("float32"))
        expect = _loss_by_hand(agent, batch, double=kind == "double-dqn")
        other = _loss_by_hand(agent, batch, double=kind != "double-dqn")
        losses[kind] = agent.train(batch)
        assert losses[kind] == pytest.approx(expect, rel=1e-5)
        assert abs(losses[kind] - other) > 1e-4  # the targets really differ on this batch


def test_stage1_with_a_named_learner(tmp_path):
    store = str(tmp_path / "store")
    small = ["dqn.total_steps=600", "dqn.learning_starts=100", "dqn.eval_every=300",
             "dqn.eval_episodes=2", "dqn.final_eval_episodes=3", "dqn.checkpoint_every=300"]
    for run, kind in (("a", "dqn"), ("b", "double-dqn")):
        args = [a for s in small + [f"learner.kind={kind}"] for a in ("--set", s)]
        out = rlpad("fit", "--store", store, "--run", run, *args).stdout
        man = json.loads((tmp_path / "store" / run / "1-fit" / "manifest.json").read_text())
        assert man["metrics"]["learner"] == kind and man["config"]["learner"]["kind"] == kind
        assert "eval return" in out
    hashes = [json.loads((tmp_path / "store" / r / "1-fit" / "manifest.json").read_text())["config_hash"]
              for r in "ab"]
    assert hashes[0] != hashes[1]


def test_play_writes_gifs_a_decoder_opens_with_the_right_frames(quick_run):
    from PIL import Image

    from rlpad.artifacts import FitOutputs
    from rlpad.play import play
    from rlpad.stages.watch import SEED_OFFSET
    from rlpad.store import Store
    import tensorflow as tf

    store, run = quick_run
    out = rlpad("play", "--store", store, "--run", run, "--episodes", "2", "--max-steps", "40").stdout
    st = Store(store)
    man = st.manifest(run, "play")
    assert man is not None and len(man["metrics"]["episodes"]) == 2 and "episode 1" in out
    fit = FitOutputs.open(st, run)
    qnet = fit.qnet()
    ref = play(tf.function(lambda s: qnet.model(s, training=False)), fit.cfg.env, fit.spec(), 2,
               seed=fit.cfg.seed + SEED_OFFSET, n_envs=1, max_steps=40)
    for row, score, steps in zip(man["metrics"]["episodes"], ref.returns, ref.lengths):
        gif = Image.open(st.require(run, "play").local_path(row["file"]))
        assert gif.format == "GIF" and gif.n_frames == row["frames"] == row["steps"] + 1
        assert row["steps"] == steps and row["score"] == score  # the same greedy episode
    # a wrong agent is a one-line error before anything is written
    p = rlpad("play", "--store", store, "--run", run, "--agent", "99", check=False)
    assert p.returncode == 2 and "--agent 99" in p.stderr and len(p.stderr.strip().splitlines()) == 1
