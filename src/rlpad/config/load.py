"""Profiles and overrides -> a validated Config: types, ranges, unknown keys, cross-checks."""
from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from pathlib import Path

from ..modes import parse_mode
from .sections import Config, ConfigError

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"  # package data: works installed too

_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _check_value(key: str, value, ftype, meta, source: str):
    origin = typing.get_origin(ftype)
    where = f"{source}: key '{key}'"
    if origin is list:
        (item_t,) = typing.get_args(ftype)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list of {item_t.__name__}, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item_t, meta, source) for i, v in enumerate(value)]
    if ftype is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif ftype is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif ftype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
    elif ftype is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where} must be one of {list(meta['choices'])}, got {value!r}")
    if meta.get("lo") is not None and value < meta["lo"]:
        raise ConfigError(f"{where} must be >= {meta['lo']}, got {value!r}")
    if meta.get("hi") is not None and value > meta["hi"]:
        raise ConfigError(f"{where} must be <= {meta['hi']}, got {value!r}")
    return value


def _build(cls, data: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{full}' (known: {', '.join(sorted(fields))})")
        ftype = hints[key]
        if dataclasses.is_dataclass(ftype):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{full}' must be a table [{full}]")
            kwargs[key] = _build(ftype, value, f"{full}.", source)
        else:
            kwargs[key] = _check_value(full, value, ftype, fields[key].metadata, source)
    return cls(**kwargs)


def _check_learner(cfg: Config, source: str, double_flag_set: bool) -> None:
    """double_flag_set: dqn.double_dqn was written in the profile or an override (its
    default false says nothing about the learner)."""
    kind, flag = cfg.learner.kind, cfg.dqn.double_dqn
    if kind == "dqn" and flag:
        raise ConfigError(f"{source}: key 'learner.kind' = 'dqn' contradicts 'dqn.double_dqn' = "
                          "true: set learner.kind = \"double-dqn\" and drop dqn.double_dqn")
    if kind == "double-dqn" and double_flag_set and not flag:
        raise ConfigError(f"{source}: key 'learner.kind' = 'double-dqn' contradicts "
                          "'dqn.double_dqn' = false: drop dqn.double_dqn (the kind sets it)")


def _cross_check(cfg: Config, source: str) -> None:
    for m in cfg.eval.modes:
        try:
            parse_mode(m, cfg.gan.variant)
        except ValueError as e:
            raise ConfigError(f"{source}: key 'eval.modes': {e}") from None
    if any(n < 0 for n in cfg.eval.n_real + cfg.eval.n_fake):
        raise ConfigError(f"{source}: keys 'eval.n_real'/'eval.n_fake' must be >= 0")
    if cfg.env.kind == "atari" and cfg.qnet.arch != "nature-cnn":
        raise ConfigError(f"{source}: key 'qnet.arch' must be 'nature-cnn' for env.kind = 'atari'")
    if cfg.env.kind == "classic" and cfg.qnet.arch != "mlp":
        raise ConfigError(f"{source}: key 'qnet.arch' must be 'mlp' for env.kind = 'classic'")
    if cfg.env.kind == "minatar" and cfg.qnet.arch != "minatar-cnn":
        raise ConfigError(f"{source}: key 'qnet.arch' must be 'minatar-cnn' for env.kind = "
                          "'minatar'")
    if cfg.qnet.arch == "mlp" and not cfg.qnet.hidden:
        raise ConfigError(f"{source}: key 'qnet.hidden' needs at least one layer (the cut)")
    if cfg.dqn.eps_end > cfg.dqn.eps_start:
        raise ConfigError(f"{source}: key 'dqn.eps_end' must be <= dqn.eps_start")
    _check_primary(cfg, source)
    _check_split_q(cfg, source)
    if cfg.shaping.ghost_multiplier != 1.0 and "mspacman" not in cfg.env.id.lower().replace("_", ""):
        raise ConfigError(f"{source}: key 'shaping.ghost_multiplier' is for MsPacman (env.id "
                          f"{cfg.env.id!r} has no ghosts): leave it at 1")


def _check_split_q(cfg: Config, source: str) -> None:
    ln = cfg.learner
    if ln.kind != "split-q" or ln.preset == "custom":
        return
    for key in ("reward_weight", "punish_weight", "reward_memory", "punish_memory"):
        if getattr(ln, key) != 1.0:
            raise ConfigError(f"{source}: key 'learner.{key}' is set but 'learner.preset' = "
                              f"{ln.preset!r} draws all four stream parameters: drop one of them "
                              "(preset = \"custom\" uses the values as written)")


def _check_primary(cfg: Config, source: str) -> None:
    st = cfg.study
    if not st.primary:
        return
    for key, modes in (("study.primary", [st.primary]), ("study.primary_controls", st.primary_controls)):
        for m in modes:
            try:
                parse_mode(m, cfg.gan.variant)
            except ValueError as e:
                raise ConfigError(f"{source}: key '{key}': {e}") from None
    if st.primary == "none":
        raise ConfigError(f"{source}: key 'study.primary': 'none' is the control, not a padded mode")
    if not st.primary_controls or st.primary in st.primary_controls:
        raise ConfigError(f"{source}: key 'study.primary_controls' must name modes other than "
                          f"study.primary ({st.primary!r})")


def primary_missing(cfg: Config) -> str:
    """Why the grid cannot test the primary comparison ("" when it can): a grid overridden
    without its modes or cells skips it, and says so, rather than refusing to run."""
    st, ev = cfg.study, cfg.eval
    missing = [m for m in [st.primary, *st.primary_controls] if m not in ev.modes]
    if missing:
        return f"eval.modes {ev.modes} lacks {', '.join(missing)}"
    if st.primary_n_real and st.primary_n_real not in ev.n_real:
        return f"study.primary_n_real {st.primary_n_real} is not in eval.n_real {ev.n_real}"
    if not any(n > 0 for n in ev.n_real):
        return f"eval.n_real {ev.n_real} has no n_real above 0"
    if st.primary_n_fake and st.primary_n_fake not in ev.n_fake:
        return f"study.primary_n_fake {st.primary_n_fake} is not in eval.n_fake {ev.n_fake}"
    if not any(n > 0 for n in ev.n_fake):
        return f"eval.n_fake {ev.n_fake} has no n_fake above 0"
    return ""


def primary_cell(cfg: Config) -> tuple[int, int]:
    """(n_real, n_fake) of the primary comparison."""
    st, ev = cfg.study, cfg.eval
    return (st.primary_n_real or min(n for n in ev.n_real if n > 0),
            st.primary_n_fake or max(ev.n_fake))


def _set_dotted(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override: key '{dotted}' is not inside a table")
    d[parts[-1]] = value


def parse_override(text: str) -> tuple[str, object]:
    """'dqn.total_steps=1000' -> ('dqn.total_steps', 1000); the value is TOML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. dqn.total_steps=1000")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words are strings: env.id=ALE/Pong-v5
    return key, value


def resolve_profile(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError(f"profile file {p} does not exist")
        return p
    cand = PROFILES_DIR / f"{name_or_path}.toml"
    if not cand.exists():
        known = sorted(q.stem for q in PROFILES_DIR.glob("*.toml"))
        raise ConfigError(f"unknown profile {name_or_path!r} (known: {', '.join(known)})")
    return cand


def load_config(profile: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a profile by name (profiles/<name>.toml) or path, then apply key=value overrides."""
    path = resolve_profile(profile)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if not data:
        raise ConfigError(f"{path}: the profile is empty: a profile names its game and settings "
                          "(start from profiles/quick.toml)")
    cfg = _build(Config, data, "", str(path))
    _cross_check(cfg, str(path))
    flag_set = "double_dqn" in data.get("dqn", {})
    _check_learner(cfg, str(path), flag_set)
    if overrides:
        merged = cfg.to_dict()
        for ov in overrides:
            key, value = parse_override(ov)
            _set_dotted(merged, key, value)
        source = f"{path} + overrides {list(overrides)}"
        cfg = _build(Config, merged, "", source)
        _cross_check(cfg, source)
        flag_set = flag_set or any(parse_override(ov)[0] == "dqn.double_dqn" for ov in overrides)
        _check_learner(cfg, source, flag_set)
    return cfg


def config_from_dict(data: dict, source: str = "manifest") -> Config:
    if "learner" not in data and data.get("dqn", {}).get("double_dqn"):
        data = {**data, "learner": {"kind": "double-dqn"}}  # recorded before learners had names
    cfg = _build(Config, data, "", source)
    _cross_check(cfg, source)
    return cfg
