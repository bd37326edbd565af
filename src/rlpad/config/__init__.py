"""Typed experiment configuration: TOML profiles -> frozen dataclasses.

One config object is both what the CLI runs and what the manifest records. Every field declares
its type and range (`sections`); an unknown key, a wrong type or an out-of-range value is a
ConfigError that names the key and the file (`load`).
"""
from .load import (PROFILES_DIR, config_from_dict, load_config, parse_override, primary_cell,
                   primary_missing, resolve_profile)
from .sections import (Config, ConfigError, DQNConfig, EnvConfig, EvalConfig, GanConfig,
                       LearnerConfig, PPOConfig, QNetConfig, ShapingConfig, StudyConfig,
                       TransformConfig)

__all__ = ["PROFILES_DIR", "Config", "ConfigError", "DQNConfig", "EnvConfig", "EvalConfig",
           "GanConfig", "LearnerConfig", "PPOConfig", "QNetConfig", "ShapingConfig", "StudyConfig", "TransformConfig",
           "config_from_dict", "load_config", "parse_override", "primary_cell", "primary_missing", "resolve_profile"]
