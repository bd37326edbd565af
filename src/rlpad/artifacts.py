"""Typed readers of published stages, and where each agent's stages live in a run.

Below both `stages/` and `trials.py`: a stage reads its upstream, and a stage-4 worker reads
a run's artifacts, through these, from verified manifests only. A study's agent k (1-based)
trains with seed = profile seed + k - 1; with one agent its stages sit at
<run>/<stage>/ (the layout of runs made before studies), with several at
<run>/agents/<seed>/<stage>/.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass

from .config import Config, ConfigError, config_from_dict
from .config.sections import Q_LEARNERS
from .modes import gan_stage, simple_kinds
from .store import StageReader, Store

GAN_FILES = ("generator.weights.h5", "discriminator.weights.h5", "gan.json")


@dataclass(frozen=True)
class Agent:
    """One agent of a study: its seed and the folder prefix of its stages 1-3."""

    seed: int
    prefix: str  # "" (a single agent) or "agents/<seed>/"

    def stage(self, name: str) -> str:
        return self.prefix + name

    def config(self, cfg: Config) -> Config:
        """The agent's config: the profile's with the agent's seed."""
        return dataclasses.replace(cfg, seed=self.seed)


def study_agents(cfg: Config) -> list[Agent]:
    k = cfg.study.agents
    if k == 1:
        return [Agent(cfg.seed, "")]
    return [Agent(cfg.seed + i, f"agents/{cfg.seed + i}/") for i in range(k)]


def select_agents(cfg: Config, seed: int | None) -> list[Agent]:
    """Every agent of the run, or the one named by its seed (a CLI's --agent)."""
    agents = study_agents(cfg)
    if seed is None:
        return agents
    chosen = [a for a in agents if a.seed == seed]
    if not chosen:
        raise ValueError(f"--agent {seed} is not an agent of this run (study.agents = "
                         f"{cfg.study.agents}, seeds from {cfg.seed})")
    return chosen


def agent_by_seed(cfg: Config, seed: int) -> Agent:
    for a in study_agents(cfg):
        if a.seed == seed:
            return a
    raise ValueError(f"seed {seed} is not an agent of this study (study.agents = "
                     f"{cfg.study.agents}, seeds from {cfg.seed})")


@dataclass
class FitOutputs:
    """Stage 1's Q-net, rebuilt from the config its manifest recorded."""

    reader: StageReader
    cfg: Config  # stage 1's own config (its env, net and gamma rule downstream)

    @classmethod
    def open(cls, store: Store, run: str, agent: Agent | None = None,
             need_q: bool = True) -> "FitOutputs":
        """need_q: the caller cuts a Q-net (stages 2-4, export), which a PPO agent has not."""
        reader = store.require(run, (agent.prefix if agent else "") + "1-fit")
        # Only what stage 1 depends on: later additions to other sections must not make
        # finished runs unreadable.
        recorded = reader.manifest["config"]
        own = {k: recorded[k] for k in ("seed", "env", "learner", "shaping", "qnet", "dqn", "ppo")
               if k in recorded}
        fit = cls(reader, config_from_dict(own, f"{store.url(run, reader.stage, 'manifest.json')}"))
        if need_q and fit.cfg.learner.kind not in Q_LEARNERS:
            raise ConfigError(f"run {run!r}: its stage 1 learner is {fit.cfg.learner.kind!r} (key "
                              f"'learner.kind'), which has no Q-net to cut; stages 2-4 need one of "
                              f"{', '.join(Q_LEARNERS)}: fit another run with one of them")
        return fit

    def spec(self):
        from .envs import env_spec

        return env_spec(self.cfg.env)

    def greedy_fn(self):
        """Batch of states -> scores whose argmax is the agent's greedy action, any learner."""
        import tensorflow as tf

        if self.cfg.learner.kind == "ppo":
            from .learners.ppo import PPOAgent

            agent = PPOAgent(self.cfg, self.spec())
            agent.net.load_weights(self.reader.local_path("policy.weights.h5"))
            return agent.greedy_scores
        qnet = self.qnet()
        return tf.function(lambda s: qnet.model(s, training=False), reduce_retracing=True)

    def qnet(self):
        from .qnet import load_qnet

        spec = self.spec()
        return load_qnet(self.cfg.qnet, spec.obs_shape, spec.n_actions,
                         self.reader.local_path("qnet.weights.h5"))


def load_embeddings(store: Store, run: str, agent: Agent | None = None):
    """Stage 2's embedded transitions (rlpad.embed.Embedded)."""
    from .embed import Embedded

    reader = store.require(run, (agent.prefix if agent else "") + "2-transform")
    return Embedded.load(reader.local_path("embeddings.h5"))


def load_fitted_gan(store: Store, run: str, agent: Agent | None = None,
                    stage: str = "3-fit-gan"):
    """Stage 3's generator (`stage`: its folder, one per kind), from checksummed files only."""
    from .generators import FittedGan

    reader = store.require(run, (agent.prefix if agent else "") + stage)
    with tempfile.TemporaryDirectory(prefix="rlpad-gan-") as d:
        for name in GAN_FILES:
            if name in reader.manifest["files"]:
                shutil.copyfile(reader.local_path(name), os.path.join(d, name))
        return FittedGan.load(d)


@dataclass(frozen=True)
class TrialContext:
    """What every stage-4 task receives: where the run is, the stage-4 config, the study's
    agents and the manifest hash of every upstream stage it reads. JSON-able (`to_dict`),
    so it crosses to Spark workers as text and keys their artifact caches."""

    store: str
    run: str
    config: dict  # the stage-4 Config, to_dict()
    agents: dict[int, str]  # agent seed -> its stage prefix
    upstream: dict[str, str]  # stage folder -> manifest sha256
    tf_threads: int = 1

    @staticmethod
    def _needs(cfg: Config) -> dict[str, tuple[str, ...]]:
        """Upstream stages stage 4 reads, and the files its workers load from each."""
        needs = {"1-fit": ("qnet.weights.h5",), "2-transform": ("embeddings.h5",)}
        for kind in simple_kinds(cfg.eval.modes, cfg.gan.variant):
            needs[gan_stage(kind, cfg.gan.variant)] = GAN_FILES
        return needs

    @classmethod
    def for_run(cls, store: Store, run: str, cfg: Config) -> "TrialContext":
        """Open every upstream manifest stage 4 needs (each must exist); `verify_files` checks
        the files themselves."""
        agents = study_agents(cfg)
        upstream = {a.stage(stage): store.require(run, a.stage(stage)).manifest_sha256
                    for a in agents for stage in cls._needs(cfg)}
        return cls(store.uri, run, cfg.to_dict(), {a.seed: a.prefix for a in agents}, upstream)

    def verify_files(self, store: Store) -> None:
        """Check every file the workers read against its manifest, before Spark starts: a
        corrupt file is named here, not inside a Spark task."""
        cfg = config_from_dict(self.config, "stage-4 context")
        for a in study_agents(cfg):
            for stage, files in self._needs(cfg).items():
                reader = store.require(self.run, a.stage(stage))
                for name in files:
                    if name in reader.manifest["files"]:
                        reader.local_path(name)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["agents"] = {str(k): v for k, v in self.agents.items()}  # JSON keys are strings
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrialContext":
        return cls(**{**d, "agents": {int(k): v for k, v in d["agents"].items()}})

    def agent(self, seed: int) -> Agent:
        return Agent(int(seed), self.agents[int(seed)])
