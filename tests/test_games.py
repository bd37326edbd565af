"""The other games, stages 1-4 at a tiny budget through the CLI: MinAtar Breakout (boolean
channels, MinAtar's CNN) and LunarLander (Box2D, shaped rewards of both signs)."""
from __future__ import annotations

import json
import re

import pytest

from conftest import rlpad

TINY = {
    "minatar-breakout": ["dqn.total_steps=600", "dqn.learning_starts=200", "dqn.buffer_size=2000",
                         "dqn.eval_every=300", "dqn.eval_episodes=2", "dqn.checkpoint_every=300",
                         "dqn.final_eval_episodes=3", "env.max_episode_steps=200"],
    "lunarlander": ["dqn.total_steps=600", "dqn.learning_starts=200", "dqn.eval_every=300",
                    "dqn.eval_episodes=2", "dqn.checkpoint_every=300", "dqn.final_eval_episodes=3",
                    "env.max_episode_steps=200",
                    "transform.policy_steps=600"],  # the profile's own-play data, 600 steps
}
LATER = ["gan.steps=60", "gan.checkpoint_every=30", "eval.n_real=[100,0]", "eval.n_fake=[0,200]",
         "eval.repetitions=1", "eval.episodes=2", "eval.n_envs=2", "study.sanity_episodes=2",
         'eval.modes=["none","simple","constrained"]', "eval.constrained_gan_steps=20"]


@pytest.mark.parametrize("profile", sorted(TINY))
def test_game_stages_1_to_4_at_a_tiny_budget(tmp_path, profile):
    store = str(tmp_path / "store")
    sets = [a for s in TINY[profile] + LATER for a in ("--set", s)]
    common = ["--store", store, "--run", "g", "--profile", profile, *sets]
    for cmd in ("fit", "transform", "fit-gan"):
        rlpad(cmd, *common)
    p = rlpad("eval", *common, "--master", "local[2]")
    m = json.loads((tmp_path / "store" / "g" / "4-eval" / "manifest.json").read_text())
    assert m["metrics"]["n_trials"] == 2 * 3
    assert "a single agent, not a study" in p.stdout
    # rep 0's per-trial generators are judged against the agent's other real rows
    assert re.search(r"padding quality constrained n_real=\d+: C2ST [01]\.\d\d", p.stdout + p.stderr)
    trials = (tmp_path / "store" / "g" / "4-eval" / "trials.csv").read_text().splitlines()
    assert "pad_c2st" in trials[0]
    fit = json.loads((tmp_path / "store" / "g" / "1-fit" / "manifest.json").read_text())["metrics"]
    assert fit["agent_steps"] == 600 and len(fit["random_returns"]) == 3
    emb = json.loads((tmp_path / "store" / "g" / "2-transform" / "manifest.json").read_text())
    assert emb["metrics"]["n_transitions"] == 600
    if profile == "minatar-breakout":
        assert fit["n_actions"] == 3 and fit["embed_dim"] == 128
    else:  # LunarLander: 4 actions, rewards of both signs reach the class table
        assert fit["n_actions"] == 4
        signs = {int(k) for k in emb["metrics"]["class_counts"]}
        assert len(signs) > 4
        # its shaped rewards are generated as a column beside the features (gan.reward)
        gan = json.loads((tmp_path / "store" / "g" / "3-fit-gan" / "manifest.json").read_text())
        assert gan["config"]["gan"]["reward"] == "feature"
        meta = json.loads((tmp_path / "store" / "g" / "3-fit-gan" / "gan.json").read_text())
        assert meta["feat_dim"] == 2 * emb["metrics"]["embed_dim"] + 1, meta["feat_dim"]
