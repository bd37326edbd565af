"""Deep Split-Q (learners/split_q.py): its targets against DQN's, the shipped one-head Q-net,
the sign-masked update, presets in the profile, and stage 1 killed and resumed exactly."""
from __future__ import annotations

import numpy as np
import pytest

from rlpad.config import ConfigError, load_config
from rlpad.config.sections import SPLIT_Q_PRESETS
from rlpad.learners.split_q_rule import PRESETS

from test_fit import (QUICK_KILL, STAGE, _complete_ckpts, _manifest, _ok, _outputs,
                      kill_beside_reference, rlpad_fit)

SQ = ["learner.kind=split-q"]


def _agent(overrides, seed=3):
    import keras
    from rlpad.envs import env_spec
    from rlpad.learners.split_q import SplitQAgent

    cfg = load_config("quick", SQ + overrides)
    keras.utils.set_random_seed(seed)
    return SplitQAgent(cfg, env_spec(cfg.env))


def _batch(rng, n=64, reward=None):
    r = rng.normal(size=n).astype("float32") if reward is None else np.full(n, reward, "float32")
    return (rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 2, n).astype("int32"), r,
            rng.normal(size=(n, 4)).astype("float32"), (rng.random(n) < 0.2).astype("float32"))


def _perturb_target(agent, rng):
    agent.streams_target.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                                      for w in agent.streams_online.get_weights()])


def _targets(agent, batch, p):
    import tensorflow as tf
    _, _, r, s2, done = batch
    return agent.targets(tf.constant(r), tf.constant(s2), tf.constant(done),
                         tf.constant(p, tf.float32)).numpy()


def test_combined_bootstrap_at_unit_parameters_is_dqns_target():
    """The deep form of the tabular equivalence: Q⁺ + Q⁻'s targets sum to DQN's on Q⁺ + Q⁻."""
    rng = np.random.default_rng(0)
    ag = _agent(["learner.bootstrap=combined", "learner.update=both"])
    _perturb_target(ag, rng)
    batch = _batch(rng)
    y = _targets(ag, batch, [1, 1, 1, 1])
    q_next = ag.target.model(batch[3]).numpy()
    dqn = batch[2] + 0.99 * (1 - batch[4]) * q_next.max(1)
    np.testing.assert_allclose(y.sum(1), dqn, rtol=1e-5, atol=1e-5)
    # each stream's share of the reward is its sign's part
    np.testing.assert_allclose(y[:, 0] - 0.99 * (1 - batch[4]) * ag.streams_target(batch[3]).numpy()[
        np.arange(64), 0, q_next.argmax(1)], np.maximum(batch[2], 0), atol=1e-5)
    # the authors' own-greedy bootstrap is at least the combined one, stream by stream
    own = _agent(["learner.bootstrap=stream"])
    own.streams_target.set_weights(ag.streams_target.get_weights())
    assert (_targets(own, batch, [1, 1, 1, 1]) >= y - 1e-5).all()
    assert (_targets(own, batch, [1, 1, 1, 1]).sum(1) > y.sum(1) + 1e-3).any()


def test_memory_and_weight_enter_the_target_as_the_alpha_1_fixed_point():
    rng = np.random.default_rng(1)
    ag = _agent(["learner.bootstrap=combined", "learner.update=both"])
    _perturb_target(ag, rng)
    batch = _batch(rng)
    base = _targets(ag, batch, [1, 1, 1, 1])
    v = base - np.stack([np.maximum(batch[2], 0), np.minimum(batch[2], 0)], 1)  # gamma Q̄(s', a*)
    m_p, w_p, m_n, w_n = 0.5, 2.0, 0.2, 3.0
    got = _targets(ag, batch, [m_p, w_p, m_n, w_n])
    np.testing.assert_allclose(got[:, 0], (w_p * np.maximum(batch[2], 0) + v[:, 0]) / (2 - m_p), atol=1e-4)
    np.testing.assert_allclose(got[:, 1], (w_n * np.minimum(batch[2], 0) + v[:, 1]) / (2 - m_n), atol=1e-4)
    # a drawn memory above 1 is clipped to 1 (DQN's target), never amplified
    np.testing.assert_allclose(_targets(ag, batch, [1.3, 1, 1.3, 1]), base, atol=1e-5)


def test_shipped_qnet_is_the_sum_of_the_streams(tmp_path):
    from rlpad.qnet import load_qnet

    rng = np.random.default_rng(2)
    ag = _agent([])
    for _ in range(3):
        ag.train(_batch(rng))
    x = rng.normal(size=(32, 4)).astype("float32")
    streams = ag.streams_online(x).numpy()
    q = ag.online.model(x).numpy()
    np.testing.assert_allclose(streams.sum(1), q, atol=1e-6)
    path = str(tmp_path / "qnet.weights.h5")
    ag.export_qnet().model.save_weights(path)
    shipped = load_qnet(ag.qnet_cfg, ag.spec.obs_shape, ag.spec.n_actions, path)  # stage 2's loader
    np.testing.assert_allclose(shipped.model(x).numpy(), q, atol=1e-5)
    np.testing.assert_allclose(shipped.encoder(x).numpy(), ag.online.encoder(x).numpy(), atol=1e-6)


def test_sign_update_trains_only_the_rewards_stream():
    rng = np.random.default_rng(3)
    ag = _agent(["learner.update=sign"])
    n_a = ag.spec.n_actions
    for _ in range(4):
        ag.train(_batch(rng, reward=1.0))  # CartPole's rewards: all positive
    kernel, bias = ag.online.head.get_layer("streams").get_weights()
    assert np.abs(kernel[:, :n_a]).max() > 0 and np.abs(bias[:n_a]).max() > 0
    assert not kernel[:, n_a:].any() and not bias[n_a:].any()  # Q⁻ is still exactly zero
    # under update = both, Q⁻ learns from the same batch (towards its bootstrapped value)
    both = _agent(["learner.update=both"])
    _perturb_target(both, rng)
    both.train(_batch(rng, reward=1.0))
    assert both.online.head.get_layer("streams").get_weights()[0][:, n_a:].any()


def test_presets_in_the_profile():
    assert set(SPLIT_Q_PRESETS) == set(PRESETS)
    cfg = load_config("quick", SQ + ["learner.preset=ADD"])
    assert cfg.learner.preset == "ADD"
    with pytest.raises(ConfigError) as e:
        load_config("quick", SQ + ["learner.preset=PD", "learner.punish_weight=5"])
    msg = str(e.value)
    assert "learner.punish_weight" in msg and "learner.preset" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="learner.reward_memory"):
        load_config("quick", SQ + ["learner.reward_memory=1.5"])
    # drawn per gradient step around the preset, from the agent's own RNG
    ag = _agent(["learner.preset=bvFTD"])
    draws = [ag.params() for _ in range(200)]
    w = np.array([d.reward_weight for d in draws])
    assert abs(w.mean() - 100) < 3 and 7 < w.std() < 13
    # the split-q keys are in stage 1's hash for split-q only
    dqn = load_config("quick")
    assert dqn.fit_hash() == load_config("quick", ["learner.preset=ADD"]).fit_hash()
    assert cfg.fit_hash() != load_config("quick", SQ).fit_hash() != dqn.fit_hash()


def test_split_q_stage1_killed_mid_run_resumes_exactly(tmp_path):
    """A preset's draws come from an RNG the checkpoint keeps: resumed == never killed."""
    over = QUICK_KILL + SQ + ["learner.preset=M", "dqn.total_steps=1600"]
    ref = tmp_path / "ref"
    store = tmp_path / "killed"
    kill_beside_reference(ref, store, "r", over, tmp_path / "first.log", failpoints="1-fit.step=1111")
    man = _manifest(ref, "r")
    assert man["metrics"]["learner"] == "split-q"
    assert (ref / "r" / STAGE / "streams.weights.h5").exists()
    n = _complete_ckpts(store / "r" / STAGE)[-1]
    assert 0 < n < 1600
    p = _ok(rlpad_fit(store, "r", over, fresh=True))
    assert f"resuming from checkpoint at step {n:,}" in p.stdout
    got, want = _outputs(store, "r"), _outputs(ref, "r")
    for key in ("curve", "metrics", "replay", "qnet"):
        assert got[key] == want[key], key


def test_split_q_agent_goes_through_stage_2(tmp_path):
    """Stage 2 cuts the shipped sum head like any DQN's: the cut check holds and the embedded
    rewards keep both signs' transitions (LunarLander: mixed-sign rewards)."""
    store = tmp_path / "store"
    small = SQ + ["dqn.total_steps=1500", "dqn.learning_starts=200", "dqn.eval_every=750",
                  "dqn.eval_episodes=1", "dqn.final_eval_episodes=2", "dqn.checkpoint_every=750",
                  "transform.dataset=replay"]
    args = [a for s in small for a in ("--set", s)]
    _ok(rlpad_fit(store, "s", small, profile="lunarlander"))
    from conftest import rlpad
    out = rlpad("transform", "--store", str(store), "--run", "s", "--profile", "lunarlander", *args).stdout
    assert "cut check" in out
    import json
    man = json.loads((store / "s" / "2-transform" / "manifest.json").read_text())
    m = man["metrics"]
    assert m["n_transitions"] > 1000 and m["cut_check_max_abs_diff"] <= 1e-4
    from rlpad.artifacts import load_embeddings
    from rlpad.store import Store
    r = load_embeddings(Store(str(store)), "s").rewards
    assert (r > 0).any() and (r < 0).any()  # both streams' transitions
