"""The config's sections as frozen dataclasses: every field with its type, range and doc."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field



class ConfigError(ValueError):
    """A profile or override is malformed; the message names the key and the source."""


def _f(default, *, lo=None, hi=None, choices=None, doc="", only_if=None):
    """A config field with validation metadata (lo/hi inclusive). only_if=(key, value): the
    field matters only when the section's `key` is `value`; otherwise it is left out of the
    section's hash, so a field added for a new kind does not orphan outputs of the old ones."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc, "only_if": only_if}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EnvConfig:
    id: str = _f("CartPole-v1", doc="gymnasium id, e.g. CartPole-v1 or ALE/Breakout-v5")
    kind: str = _f("classic", choices=("classic", "atari", "minatar"),
                   doc="classic control (and Box2D), ALE, or MinAtar")
    frame_stack: int = _f(1, lo=1, hi=16, doc="frames per state (Atari: 4)")
    actions: list[int] = _f([], doc="subset of the env's action ids to use; [] = all")
    noop_max: int = _f(30, lo=0, hi=100, doc="Atari: up to this many no-ops at reset")
    life_loss_terminal: bool = _f(True, doc="Atari: a lost life is terminal for learning (not for play)")
    max_episode_steps: int = _f(0, lo=0, doc="agent steps per episode at most; 0 = the env's own limit")
    win_threshold: float = _f(500.0, doc="an episode scoring at least this is a win")


@dataclass(frozen=True)
class QNetConfig:
    arch: str = _f("mlp", choices=("mlp", "nature-cnn", "minatar-cnn"), doc="Q-net family")
    hidden: list[int] = _f([64, 64], doc="mlp: hidden widths; the last is the embedding (cut) layer")
    embed_dim: int = _f(512, lo=1, doc="nature-cnn / minatar-cnn: width of the cut Dense layer")


LEARNERS = ("dqn", "double-dqn", "split-q", "ppo")
Q_LEARNERS = ("dqn", "double-dqn", "split-q")  # those with a Q-net that stages 2-4 cut
# Split-Q's named presets (the authors' getBias, doerlbh/mentalRL IGT/utils/rlagents.py); their
# numbers live in rlpad.learners.split_q_rule.PRESETS (a test keeps the two lists equal).
SPLIT_Q_PRESETS = ("SQL", "ADD", "ADHD", "AD", "CP", "bvFTD", "PD", "M")
_SQ = ("kind", "split-q")


@dataclass(frozen=True)
class LearnerConfig:
    kind: str = _f("dqn", choices=LEARNERS,
                   doc="stage 1's learner: dqn (Mnih et al. 2015, as the seed), double-dqn (DQN "
                       "with Double-DQN targets, van Hasselt et al. 2016), split-q (two "
                       "streams for the reward's positive and negative parts, Lin et al. 2020) "
                       "or ppo ([ppo]; no Q-net, so stages 2-4 refuse it); all use [dqn]'s loop "
                       "settings")
    preset: str = _f("custom", choices=("custom",) + SPLIT_Q_PRESETS, only_if=_SQ,
                     doc="split-q: a named preset of the paper (its four parameters drawn around "
                         "the preset's means at every gradient step, as the authors' code), or "
                         "custom = the four values below, fixed")
    reward_weight: float = _f(1.0, lo=0.0, only_if=_SQ, doc="split-q custom: w+, the positive "
                                                             "stream's reward weight")
    punish_weight: float = _f(1.0, lo=0.0, only_if=_SQ, doc="split-q custom: w-, the negative "
                                                             "stream's reward weight")
    reward_memory: float = _f(1.0, lo=0.0, hi=1.0, only_if=_SQ,
                              doc="split-q custom: m+, how much of its value the positive stream "
                                  "keeps per update (1 = all, as Q-learning)")
    punish_memory: float = _f(1.0, lo=0.0, hi=1.0, only_if=_SQ,
                              doc="split-q custom: m-, the same for the negative stream")
    bootstrap: str = _f("stream", choices=("stream", "combined"), only_if=_SQ,
                        doc="split-q: each stream bootstraps on its own greedy action at s' "
                            "(stream, the authors') or both on the sum's (combined)")
    update: str = _f("sign", choices=("sign", "both"), only_if=_SQ,
                     doc="split-q: only the stream of the reward's sign learns from a transition, "
                         "both at r = 0 (sign, the authors'), or both always (both)")


@dataclass(frozen=True)
class ShapingConfig:
    """What the learner learns from; reported scores stay raw (rlpad/shaping.py)."""
    reward_fn: str = _f("raw", choices=("raw", "clip", "sign", "log"),
                        doc="a named function of the (multiplied) reward: raw, clip to [-1, 1], "
                            "sign, or sign(r) log(1 + |r|)")
    death_penalty: float = _f(0.0, lo=0.0, doc="subtracted from the reward of a step that loses a "
                                               "life (Atari), once per life")
    ghost_multiplier: float = _f(1.0, lo=0.0, doc="MsPacman: multiplies the points of eaten "
                                                  "ghosts (read from the emulator's RAM; fruit "
                                                  "is not multiplied)")


@dataclass(frozen=True)
class DQNConfig:
    total_steps: int = _f(50_000, lo=1, doc="agent (env) steps")
    learning_starts: int = _f(1_000, lo=0)
    buffer_size: int = _f(50_000, lo=1)
    batch_size: int = _f(64, lo=1)
    train_freq: int = _f(1, lo=1, doc="agent steps between training rounds")
    gradient_steps: int = _f(1, lo=1, doc="gradient steps per training round")
    target_update: int = _f(500, lo=1, doc="agent steps between target-net syncs")
    gamma: float = _f(0.99, lo=0.0, hi=1.0)
    optimizer: str = _f("adam", choices=("adam", "rmsprop"))
    lr: float = _f(1e-3, lo=0.0, hi=1.0)
    lr_final: float = _f(1.0, lo=0.0, hi=1.0,
                         doc="lr at total_steps as a fraction of lr, decayed linearly (1 = constant)")
    opt_eps: float = _f(1e-7, lo=0.0, doc="optimizer epsilon (RMSprop: 0.01 in the seed)")
    loss: str = _f("huber", choices=("huber", "mse"))
    max_grad_norm: float = _f(10.0, lo=0.0, doc="0 = no clipping")
    clip_reward: bool = _f(False, doc="clip rewards to [-1, 1] for learning (Atari)")
    double_dqn: bool = _f(False, doc="Double DQN targets (the seed used plain DQN); prefer "
                                     "learner.kind = \"double-dqn\"")
    eps_start: float = _f(1.0, lo=0.0, hi=1.0)
    eps_end: float = _f(0.05, lo=0.0, hi=1.0)
    eps_decay_steps: int = _f(10_000, lo=1)
    eval_every: int = _f(5_000, lo=1, doc="agent steps between greedy evaluations")
    eval_episodes: int = _f(5, lo=1)
    eval_epsilon: float = _f(0.0, lo=0.0, hi=1.0)
    final_eval_episodes: int = _f(20, lo=1)
    keep_best: bool = _f(True, doc="ship the weights of the best periodic evaluation")
    stop_at_eval_return: float = _f(0.0, doc="stop early once a periodic eval reaches this (0 = never)")
    checkpoint_every: int = _f(10_000, lo=1)


@dataclass(frozen=True)
class PPOConfig:
    """learner.kind = "ppo" (Schulman et al. 2017, as CleanRL's ppo.py); its gamma and evaluation
    schedule are [dqn]'s loop keys (eval_every, eval_episodes, final_eval_episodes,
    checkpoint_every)."""
    total_steps: int = _f(0, lo=0, doc="agent steps over all envs; 0 = dqn.total_steps")
    stop_at_eval_return: float = _f(0.0, doc="stop once a periodic eval reaches this (0 = never); "
                                             "a stochastic policy's lucky eval stops it too soon")
    keep_best: bool = _f(True, doc="ship the best periodic evaluation's weights, not the last "
                                   "(on quick's seeds 1-5 the last reached >= 475 for 2, the best "
                                   "periodic for 3; CleanRL and SB3 ship the last)")
    n_envs: int = _f(8, lo=1, hi=256, doc="envs stepped together")
    n_steps: int = _f(128, lo=1, doc="steps per env per rollout")
    epochs: int = _f(4, lo=1, doc="passes over each rollout")
    minibatches: int = _f(4, lo=1, doc="minibatches per pass")
    lr: float = _f(2.5e-4, lo=0.0, hi=1.0)
    anneal_lr: bool = _f(True, doc="lr decays linearly to 0 over total_steps")
    gamma: float = _f(0.99, lo=0.0, hi=1.0)
    gae_lambda: float = _f(0.95, lo=0.0, hi=1.0)
    clip: float = _f(0.2, lo=0.0, doc="the surrogate's ratio clip")
    clip_value: bool = _f(True, doc="clip the value loss around the rollout's values")
    ent_coef: float = _f(0.01, lo=0.0)
    vf_coef: float = _f(0.5, lo=0.0)
    max_grad_norm: float = _f(0.5, lo=0.0, doc="0 = no clipping")
    norm_adv: bool = _f(True, doc="normalise advantages per minibatch")
    head: str = _f("discrete", choices=("discrete", "joystick"),
                   doc="discrete: a softmax over the actions; joystick: a 2-D Gaussian (x, y) "
                       "mapped to the game's 9 directions (rl-dash-days' MsPacman PPO)")
    dead_zone: float = _f(0.5, lo=0.0, doc="joystick: |(x, y)| below this is NOOP")


@dataclass(frozen=True)
class TransformConfig:
    dataset: str = _f("replay", choices=("replay", "policy"),
                      doc="what stage 2 embeds: replay = the stage-1 agent's own replay memory "
                          "(the seed's kind of data: its whole learning history); policy = the "
                          "shipped agent's own epsilon-greedy play after training (D4RL's and "
                          "Minari's expert kind; policy_steps, policy_epsilon). Recorded in the "
                          "manifest and the table's title")
    window: int = _f(0, lo=0, doc="embed only the newest this many transitions of the replay "
                                  "(a recency window, as the seed's FIFO replay); 0 = all")
    policy_steps: int = _f(20_000, lo=1, doc="policy: transitions to record",
                           only_if=("dataset", "policy"))
    policy_epsilon: float = _f(0.1, lo=0.0, hi=1.0, doc="policy: chance of a uniform-random "
                                                        "action each step",
                               only_if=("dataset", "policy"))
    clip_embedding: float = _f(400.0, lo=0.0, doc="clip e(s) to +-this (0 = off); the seed used 400")
    clip_delta: float = _f(150.0, lo=0.0, doc="clip e(s')-e(s) to +-this (0 = off); the seed used 150")
    batch_size: int = _f(1024, lo=1)
    cut_check_samples: int = _f(1000, lo=1)
    cut_check_tol: float = _f(1e-4, lo=0.0)


@dataclass(frozen=True)
class GanConfig:
    variant: str = _f("wgan-gp", choices=("cgan-seed", "wgan-gp", "cvae", "diffusion"),
                      doc="the generator's kind: the seed's cGAN, WGAN-GP, a conditional VAE, "
                          "or an EDM diffusion model")
    reward: str = _f("class", choices=("class", "feature"), only_if=("reward", "feature"),
                     doc="class: a generated row's class fixes the reward's sign and its size is "
                         "the mean |r| of that sign in the trial's real sample (rewards of a few "
                         "values); feature: the generator also generates the reward, one more "
                         "column beside e(s) and e(s')-e(s) (shaped rewards), with its class's sign")
    latent_dim: int = _f(100, lo=1)
    steps: int = _f(5_000, lo=1)
    batch_size: int = _f(100, lo=1)
    lr: float = _f(1e-4, lo=0.0, hi=1.0)
    beta1: float = _f(0.5, lo=0.0, hi=1.0)
    beta2: float = _f(0.9, lo=0.0, hi=1.0)
    g_hidden: list[int] = _f([128, 256, 512, 512])
    d_hidden: list[int] = _f([256, 512, 512, 512, 128])
    dropout: float = _f(0.4, lo=0.0, hi=1.0)
    n_critic: int = _f(5, lo=1, doc="wgan-gp: critic steps per generator step")
    gp_weight: float = _f(10.0, lo=0.0)
    restart_low: float = _f(0.10, lo=0.0, hi=1.0, doc="cgan-seed: restart if D accuracy stays below")
    restart_high: float = _f(0.90, lo=0.0, hi=1.0, doc="cgan-seed: restart if D accuracy stays above")
    restart_window: int = _f(2_000, lo=1, doc="steps a failure condition must last")
    max_restarts: int = _f(3, lo=0)
    holdout_fraction: float = _f(0.2, lo=0.0, hi=0.9)
    log_every: int = _f(100, lo=1)
    checkpoint_every: int = _f(1_000, lo=1)
    critic_layer_norm: bool = _f(False, doc="wgan-gp: LayerNorm after each critic hidden layer")
    clip_to_range: bool = _f(True, doc="wgan-gp: clip generated features to the data's per-dim range")
    beta: float = _f(1.0, lo=0.0, doc="cvae: weight of the KL term", only_if=("variant", "cvae"))
    cvae_noise: bool = _f(True, doc="cvae: a sample adds the decoder's learned noise to its mean "
                                    "(false: the mean alone)", only_if=("variant", "cvae"))
    diffusion_width: int = _f(256, lo=8, doc="diffusion: the denoiser's width",
                              only_if=("variant", "diffusion"))
    diffusion_depth: int = _f(3, lo=1, doc="diffusion: residual blocks",
                              only_if=("variant", "diffusion"))
    diffusion_sample_steps: int = _f(32, lo=2, doc="diffusion: sampler steps",
                                     only_if=("variant", "diffusion"))
    diffusion_sigma_min: float = _f(0.002, lo=1e-6, only_if=("variant", "diffusion"))
    diffusion_sigma_max: float = _f(80.0, lo=1e-3, only_if=("variant", "diffusion"))
    diffusion_rho: float = _f(7.0, lo=1.0, only_if=("variant", "diffusion"))
    diffusion_p_mean: float = _f(-1.2, only_if=("variant", "diffusion"))
    diffusion_p_std: float = _f(1.2, lo=1e-3, only_if=("variant", "diffusion"))
    diffusion_sigma_data: float = _f(1.0, lo=1e-3, only_if=("variant", "diffusion"))
    diffusion_s_churn: float = _f(80.0, lo=0.0, doc="diffusion: the sampler's churn (0 = ODE)",
                                  only_if=("variant", "diffusion"))
    diffusion_s_tmin: float = _f(0.05, lo=0.0, only_if=("variant", "diffusion"))
    diffusion_s_tmax: float = _f(50.0, lo=0.0, only_if=("variant", "diffusion"))
    g_ema: float = _f(0.999, lo=0.0, hi=0.99999,
                      doc="wgan-gp: sample from an exponential moving average of G's weights; the "
                          "decay is min(this, (1+t)/(10+t)) at step t, so short runs average over "
                          "roughly their last 10 % of steps (0 = off)")


@dataclass(frozen=True)
class EvalConfig:
    n_real: list[int] = _f([500, 0], doc="real transitions per trial; 0 = all real data")
    n_fake: list[int] = _f([0, 5_000])
    modes: list[str] = _f(["none", "simple", "constrained"],
                          doc="none: real rows only (the control); simple[:kind]: padded by "
                              "stage 3's generator (fit on all the agent's data); "
                              "constrained[:kind]: by a generator fit on the trial's own rows; "
                              "resample (= constrained:resample): by copies of the trial's own "
                              "rows drawn with replacement (constrained's control: what padding "
                              "adds with no generator at all). kind: cgan-seed, wgan-gp, cvae, "
                              "diffusion (default gan.variant)")
    repetitions: int = _f(3, lo=1)
    refit_method: str = _f("dqn", choices=("dqn", "lspi", "fqi", "iql", "seed", "bc"),
                           doc="dqn: offline DQN by SGD (the refit_* settings below); lspi: "
                               "least-squares policy iteration, exact (refit_ridge, "
                               "refit_lspi_iters); fqi: exact fitted Q iteration (refit_ridge, "
                               "refit_fqi_iters); seed: the seed's own refit (MSE, RMSprop "
                               "2.5e-4, gamma 0.95, no target net, minibatch 50, refit_steps); "
                               "bc: behaviour cloning, a softmax policy over the data's actions "
                               "by L2-penalised logistic regression (refit_ridge)")
    refit_ridge: float = _f(1e-3, lo=1e-12, doc="lspi, fqi, iql: L2 penalty per transition "
                                                   "(> 0: keeps an action the sample lacks "
                                                   "solvable); bc: on the standardised weights")
    refit_lspi_iters: int = _f(20, lo=1, doc="lspi: most policy iterations")
    refit_fqi_iters: int = _f(200, lo=1, doc="fqi / iql: iterations from a zero head")
    refit_expectile: float = _f(0.7, lo=0.5, hi=0.999, doc="iql: tau of V's expectile over the "
                                                              "data's actions")
    refit_extract: str = _f("greedy", choices=("greedy", "awr"),
                            doc="iql: act greedily on Q, or an advantage-weighted policy")
    refit_awr_beta: float = _f(3.0, lo=0.0, doc="iql with awr: inverse temperature")
    refit_steps: int = _f(12_000, lo=1)
    refit_batch: int = _f(128, lo=1)
    refit_lr: float = _f(3e-3, lo=0.0, hi=1.0)
    refit_target_update: int = _f(100, lo=1)
    refit_gamma: float = _f(0.0, lo=0.0, hi=1.0, doc="0 = stage 1's gamma")
    refit_double_dqn: bool = _f(True, doc="Double DQN targets in the refit")
    refit_cql_alpha: float = _f(0.0, lo=0.0, doc="CQL(H) penalty weight (0 = plain offline DQN)")
    refit_average_from: float = _f(0.5, lo=0.0, hi=1.0,
                                   doc="average each head's weights over the steps after this "
                                       "fraction of the refit (1 = off)")
    refit_ensemble: int = _f(3, lo=1, doc="heads refit side by side; the result is their average")
    constrained_gan_steps: int = _f(1_000, lo=1)
    constrained_gan_hidden: list[int] = _f([128, 128], doc="G and D widths of a per-trial GAN")
    constrained_gan_batch: int = _f(100, lo=1)
    quality_reps: int = _f(1, lo=0, doc="repetitions (the first ones) whose constrained and "
                                        "resample padding is judged against the agent's other "
                                        "real rows (C2ST, Fréchet / floor, memorisation; in "
                                        "trials.csv); 0 = none")
    episodes: int = _f(10, lo=1, doc="evaluation episodes per trial")
    n_envs: int = _f(10, lo=1, doc="vectorised envs for play")


@dataclass(frozen=True)
class StudyConfig:
    agents: int = _f(1, lo=1, hi=1000, doc="independent agents; agent k (1-based) trains with "
                                           "seed + k - 1 (RLPAD_AGENTS in config.sh)")
    sanity_episodes: int = _f(30, lo=2, doc="separate evaluation episodes that judge each "
                                            "agent's sanity refit and its margin over random")
    # The pre-registered question: one padded mode against its controls in one cell, tested
    # as its own small family, so the many exploratory cells' correction does not drown it.
    primary: str = _f("", doc="the primary comparison's padded mode (one of eval.modes, e.g. "
                              "constrained:cvae); \"\" = none")
    primary_controls: list[str] = _f(["none"], doc="modes the primary mode is compared with "
                                                   "(each in eval.modes); Holm across them")
    primary_n_real: int = _f(0, lo=0, doc="its n_real (in eval.n_real); 0 = the grid's "
                                          "smallest n_real above 0")
    primary_n_fake: int = _f(0, lo=0, doc="its n_fake (in eval.n_fake); 0 = the grid's largest")


@dataclass(frozen=True)
class Config:
    seed: int = _f(1, lo=0)
    description: str = _f("")
    source: str = _f("", doc="where the numbers come from")
    env: EnvConfig = field(default_factory=EnvConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    qnet: QNetConfig = field(default_factory=QNetConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def section_hash(self, *names: str) -> str:
        """Hash of the named sections (plus the seed): what a stage's outputs depend on."""
        d = self.to_dict()
        sub = {"seed": d["seed"]}
        for n in names:
            sec = dict(d[n])
            for f in dataclasses.fields(getattr(self, n)):
                cond = f.metadata.get("only_if")
                if cond and sec.get(cond[0]) != cond[1]:
                    sec.pop(f.name)
            sub[n] = sec
        return hashlib.sha256(json.dumps(sub, sort_keys=True).encode()).hexdigest()[:16]

    def fit_hash(self) -> str:
        """Stage 1's hash. DQN and Double DQN hash what their training depends on, the [dqn]
        section with the effective Double-DQN flag, so runs made before learners had names
        (with or without the flag) keep their stage 1; other learners add their section, and
        reward shaping its own when it is on."""
        shaping = ("shaping",) if self.shaping != ShapingConfig() else ()
        if self.learner.kind in ("dqn", "double-dqn"):
            eff = dataclasses.replace(self, dqn=dataclasses.replace(self.dqn,
                                                                    double_dqn=self.double_dqn))
            return eff.section_hash("env", "qnet", "dqn", *shaping)
        ppo = ("ppo",) if self.learner.kind == "ppo" else ()
        return self.section_hash("env", "learner", "qnet", "dqn", *ppo, *shaping)

    @property
    def double_dqn(self) -> bool:
        return self.learner.kind == "double-dqn" or self.dqn.double_dqn
