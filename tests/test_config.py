"""rlpad.config: profiles load; every malformed value or unknown key is a ConfigError that
names the key and where it came from (the file, or the file + overrides)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlpad.config import (
    PROFILES_DIR, Config, ConfigError, config_from_dict, load_config, parse_override)

QUICK = PROFILES_DIR / "quick.toml"


def _profile(tmp_path: Path, line: str, base: Path = QUICK, name: str = "p.toml") -> Path:
    """A copy of a shipped profile with one `key = value` line set: 'dqn.lr = 1' replaces
    (or joins) the keys under the file's [dqn] header; a plain 'key = 1' goes on top."""
    text = base.read_text()
    key, _, value = line.partition("=")
    section, _, leaf = key.strip().rpartition(".")
    new = f"{leaf} ={value}"
    if section:
        header = f"[{section}]\n"
        assert header in text, f"{base} has no {header!r}"
        start = text.index(header) + len(header)
        end = text.find("\n[", start)
        end = len(text) if end < 0 else end + 1
        block, n = re.subn(rf"(?m)^{re.escape(leaf)}\s*=.*$", new, text[start:end])
        text = text[:start] + (block if n else new + "\n" + block) + text[end:]
    else:
        text = re.sub(rf"(?m)^{re.escape(leaf)}\s*=.*\n", "", text, count=1)
        text = new + "\n" + text
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- the shipped profiles -------------------------------------------------------------------
def test_quick_profile_loads():
    cfg = load_config("quick")
    assert isinstance(cfg, Config)
    assert cfg.env.id == "CartPole-v1" and cfg.env.kind == "classic"
    assert cfg.qnet.arch == "mlp" and cfg.qnet.hidden == [256, 64]
    assert cfg.dqn.total_steps == 50_000 and cfg.dqn.lr == pytest.approx(2.3e-3)
    assert cfg.dqn.final_eval_episodes == 20


def test_breakout_profile_loads():
    cfg = load_config("breakout")
    assert cfg.env.id == "ALE/Breakout-v5" and cfg.env.kind == "atari"
    assert cfg.env.frame_stack == 4 and cfg.env.actions == [1, 2, 3]
    assert cfg.qnet.arch == "nature-cnn" and cfg.qnet.embed_dim == 512
    # the seed's numbers (DESIGN.md)
    d = cfg.dqn
    assert (d.buffer_size, d.batch_size, d.learning_starts, d.target_update) == (
        400_000, 32, 50_000, 10_000)
    assert (d.optimizer, d.lr, d.opt_eps, d.loss, d.gamma) == ("rmsprop", 2.5e-4, 0.01, "huber", 0.99)
    assert (d.eps_start, d.eps_end, d.eps_decay_steps) == (1.0, 0.1, 1_000_000)


def test_profile_by_path_equals_by_name():
    assert load_config(str(QUICK)) == load_config("quick")


def test_every_profile_loads():
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    assert {"quick", "breakout"} <= set(names)
    for name in names:
        load_config(name)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*quick"):
        load_config("nope")


def test_missing_profile_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/dir/x.toml")


def test_section_hash_tracks_only_its_sections():
    a = load_config("quick")
    b = load_config("quick", ["gan.steps=7"])
    c = load_config("quick", ["dqn.lr=0.001"])
    assert a.section_hash("env", "qnet", "dqn") == b.section_hash("env", "qnet", "dqn")
    assert a.section_hash("env", "qnet", "dqn") != c.section_hash("env", "qnet", "dqn")
    assert a.section_hash("gan") != b.section_hash("gan")


def test_to_dict_round_trip():
    cfg = load_config("breakout")
    assert config_from_dict(cfg.to_dict()) == cfg


# ---- errors in a profile file: they name the key and the file ---------------------------------
def test_unknown_top_level_key(tmp_path):
    p = _profile(tmp_path, "learning_rate = 0.1")
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    assert "'learning_rate'" in str(e.value) and str(p) in str(e.value)


def test_unknown_key_in_a_section(tmp_path):
    p = _profile(tmp_path, "dqn.totl_steps = 10")
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert "unknown key 'dqn.totl_steps'" in msg and str(p) in msg
    assert "total_steps" in msg  # lists the known keys


def test_unknown_section(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(QUICK.read_text() + "\n[optim]\nlr = 1.0\n")
    with pytest.raises(ConfigError, match=r"unknown key 'optim'"):
        load_config(str(p))


def test_section_given_as_a_value(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('dqn = 3\n')
    with pytest.raises(ConfigError, match=r"key 'dqn' must be a table") as e:
        load_config(str(p))
    assert str(p) in str(e.value)


@pytest.mark.parametrize("line, key, what", [
    ('dqn.total_steps = "many"', "dqn.total_steps", "must be an integer"),
    ("dqn.total_steps = 1000.0", "dqn.total_steps", "must be an integer"),
    ("dqn.total_steps = true", "dqn.total_steps", "must be an integer"),
    ('dqn.lr = "fast"', "dqn.lr", "must be a number"),
    ("dqn.lr = false", "dqn.lr", "must be a number"),
    ("dqn.double_dqn = 1", "dqn.double_dqn", "must be true or false"),
    ("env.id = 3", "env.id", "must be a string"),
    ('qnet.hidden = 64', "qnet.hidden", "must be a list"),
    ('qnet.hidden = [64, "x"]', "qnet.hidden[1]", "must be an integer"),
])
def test_wrong_type(tmp_path, line, key, what):
    p = _profile(tmp_path, line)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert f"key '{key}'" in msg and what in msg and str(p) in msg


@pytest.mark.parametrize("line, key, bound", [
    ("dqn.gamma = 1.5", "dqn.gamma", "<= 1.0"),
    ("dqn.gamma = -0.1", "dqn.gamma", ">= 0.0"),
    ("dqn.total_steps = 0", "dqn.total_steps", ">= 1"),
    ("dqn.batch_size = -4", "dqn.batch_size", ">= 1"),
    ("env.frame_stack = 17", "env.frame_stack", "<= 16"),
    ("seed = -1", "seed", ">= 0"),
    ("dqn.eps_end = 2.0", "dqn.eps_end", "<= 1.0"),
    ("dqn.lr_final = 1.5", "dqn.lr_final", "<= 1.0"),
    ("eval.refit_ridge = 0.0", "eval.refit_ridge", ">= 1e-12"),
])
def test_out_of_range(tmp_path, line, key, bound):
    p = _profile(tmp_path, line)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert f"key '{key}'" in msg and bound in msg and str(p) in msg


@pytest.mark.parametrize("line, key", [
    ('dqn.optimizer = "sgd"', "dqn.optimizer"),
    ('qnet.arch = "resnet"', "qnet.arch"),
    ('env.kind = "mujoco"', "env.kind"),
    ('gan.variant = "vanilla"', "gan.variant"),
    ('eval.refit_method = "sgd"', "eval.refit_method"),
])
def test_bad_choice(tmp_path, line, key):
    p = _profile(tmp_path, line)
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert f"key '{key}'" in msg and "must be one of" in msg and str(p) in msg


def test_invalid_toml_names_the_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[dqn\nlr = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_config(str(p))
    assert str(p) in str(e.value)


# ---- overrides ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, key, value", [
    ("dqn.total_steps=1000", "dqn.total_steps", 1000),
    ("dqn.total_steps = 1_000", "dqn.total_steps", 1000),
    ("dqn.lr=2.5e-4", "dqn.lr", 2.5e-4),
    ("dqn.double_dqn=true", "dqn.double_dqn", True),
    ("qnet.hidden=[32, 16]", "qnet.hidden", [32, 16]),
    ('env.id="ALE/Pong-v5"', "env.id", "ALE/Pong-v5"),
    ("env.id=ALE/Pong-v5", "env.id", "ALE/Pong-v5"),  # a bare word is a string
    ("eval.modes=['none']", "eval.modes", ["none"]),
])
def test_parse_override(text, key, value):
    k, v = parse_override(text)
    assert k == key and v == value and type(v) is type(value)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("dqn.total_steps")


def test_overrides_apply_typed():
    cfg = load_config("quick", ["dqn.total_steps=1234", "dqn.lr=0.01", "qnet.hidden=[32, 8]",
                                "learner.kind=double-dqn", "seed=7"])
    assert cfg.dqn.total_steps == 1234 and cfg.dqn.lr == 0.01
    assert cfg.qnet.hidden == [32, 8] and cfg.double_dqn is True and cfg.seed == 7
    # untouched values stay the profile's
    assert cfg.dqn.batch_size == 64 and cfg.env.id == "CartPole-v1"


def test_override_int_given_to_float_field_becomes_float():
    cfg = load_config("quick", ["dqn.gamma=1"])
    assert cfg.dqn.gamma == 1.0 and isinstance(cfg.dqn.gamma, float)


@pytest.mark.parametrize("ov, key, what", [
    ("dqn.totl_steps=5", "dqn.totl_steps", "unknown key"),
    ("dqn.total_steps=lots", "dqn.total_steps", "must be an integer"),
    ("dqn.gamma=2", "dqn.gamma", "<= 1.0"),
    ("dqn.optimizer=sgd", "dqn.optimizer", "must be one of"),
])
def test_bad_override_names_key_and_overrides(ov, key, what):
    with pytest.raises(ConfigError) as e:
        load_config("quick", [ov])
    msg = str(e.value)
    assert f"'{key}'" in msg and what in msg
    assert "overrides" in msg and ov in msg and "quick.toml" in msg


def test_override_into_a_scalar():
    with pytest.raises(ConfigError, match="seed.x"):
        load_config("quick", ["seed.x=1"])


# ---- cross checks ---------------------------------------------------------------------------
def test_atari_needs_nature_cnn():
    with pytest.raises(ConfigError, match=r"'qnet.arch' must be 'nature-cnn'"):
        load_config("quick", ["env.kind=atari"])
    with pytest.raises(ConfigError, match=r"'qnet.arch' must be 'mlp'"):
        load_config("breakout", ["env.kind=classic"])
    # both changed together is fine
    cfg = load_config("quick", ["env.kind=atari", "qnet.arch=nature-cnn"])
    assert cfg.qnet.arch == "nature-cnn"


def test_cross_check_in_a_file_names_the_file(tmp_path):
    p = _profile(tmp_path, 'qnet.arch = "mlp"', base=PROFILES_DIR / "breakout.toml")
    with pytest.raises(ConfigError, match="qnet.arch") as e:
        load_config(str(p))
    assert str(p) in str(e.value)


def test_eps_end_above_start():
    with pytest.raises(ConfigError, match="dqn.eps_end"):
        load_config("quick", ["dqn.eps_start=0.1", "dqn.eps_end=0.5"])


def test_mlp_needs_a_cut_layer():
    with pytest.raises(ConfigError, match="qnet.hidden"):
        load_config("quick", ["qnet.hidden=[]"])


def test_unknown_eval_mode():
    with pytest.raises(ConfigError, match="eval.modes"):
        load_config("quick", ["eval.modes=['none', 'magic']"])
    with pytest.raises(ConfigError, match="unknown generator kind 'vae'"):
        load_config("quick", ["eval.modes=['none', 'simple:vae']"])
    with pytest.raises(ConfigError, match="none:cvae"):
        load_config("quick", ["eval.modes=['none:cvae']"])


def test_modes_name_their_generator_kind():
    from rlpad.modes import gan_stage, kind_config, parse_mode, stage3_kinds

    assert parse_mode("simple", "wgan-gp") == ("simple", "wgan-gp")
    assert parse_mode("constrained:cvae", "wgan-gp") == ("constrained", "cvae")
    assert parse_mode("constrained:resample", "wgan-gp") == parse_mode("resample", "x") == ("resample", None)
    assert stage3_kinds(["none", "simple", "simple:diffusion", "constrained:cvae"], "wgan-gp") == \
        ["wgan-gp", "diffusion"]
    assert gan_stage("wgan-gp", "wgan-gp") == "3-fit-gan" and gan_stage("cvae", "wgan-gp") == "3-fit-gan-cvae"
    base = load_config("quick").gan
    assert kind_config(base, "wgan-gp") is base
    cv = kind_config(base, "cvae")
    assert cv.variant == "cvae" and cv.steps == base.steps and cv.beta == 2.0


def test_negative_eval_counts():
    with pytest.raises(ConfigError, match="eval.n_real"):
        load_config("quick", ["eval.n_real=[-1]"])


def test_fields_of_another_kind_do_not_enter_the_hash():
    """policy_* settings matter only to the policy dataset kind: a replay stage 2 keeps its hash
    (and old replay runs stay valid) whatever they are; for the policy kind they count."""
    def h(*sets):
        return load_config("quick", list(sets)).section_hash("transform")

    replay = 'transform.dataset="replay"'
    assert h(replay, "transform.policy_steps=5") == h(replay, "transform.policy_steps=50")
    assert h(replay) != h('transform.dataset="policy"')
    assert h("transform.policy_steps=5") != h("transform.policy_steps=50")  # quick: policy
