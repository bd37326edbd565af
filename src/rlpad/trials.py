"""One stage-4 trial: sample real -> pad with generated -> refit the head -> play.

`run_trial(spec, ctx)` is a pure function of its spec (mode, n_real, n_fake, seed) and
the run's artifacts, so Spark may run, retry or re-run it anywhere with the same result.
Trials that share (n_real, rep) draw the same real sample: padding levels and modes are
compared on identical real data, and every trial plays the same evaluation episodes.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from .artifacts import FitOutputs, TrialContext, load_embeddings, load_fitted_gan
from .config import Config, config_from_dict
from .modes import gan_stage, kind_config, parse_mode, simple_kinds
from .seeding import derive_seed

TRIAL_FN = "rlpad.trials:run_trial"


def grid_specs(cfg: Config, n_available: int, agent: int | None = None,
               log=None) -> list[dict]:
    """One agent's trial grid: n_real x modes x n_fake x repetitions. Mode `none` runs only
    at n_fake = 0 (the control); padded modes only at n_fake > 0. n_real = 0 means all of the
    agent's data; a larger n_real than it has uses all of it (with a warning through `log`).
    `agent`: the agent's seed in a study of several (trial ids get its name); None for the
    single agent, whose seed is the profile's. Trials of one agent that share (n_real, rep)
    share their seed, hence their real sample, across modes: the paired design."""
    e = cfg.eval
    seed0 = cfg.seed if agent is None else agent
    tag = "" if agent is None else f"a{agent}-"
    specs = []
    cells: dict[int, int] = {}  # actual n_real -> the configured value (0 = all) it came from
    for n in e.n_real:
        actual = min(n or n_available, n_available)
        if n > n_available and log:
            log(f"warning: eval.n_real={n:,} is more than agent {seed0}'s {n_available:,} real "
                f"transitions; using all {n_available:,}")
        cells.setdefault(actual, n)
    for n_real, n_cfg in cells.items():
        for mode in e.modes:
            fakes = [0] if mode == "none" else [f for f in dict.fromkeys(e.n_fake) if f > 0]
            for n_fake in fakes:
                for rep in range(e.repetitions):
                    specs.append({
                        "trial_id": f"{tag}{mode.replace(':', '-')}-r{n_real}-f{n_fake}-{rep:03d}",
                        "agent": seed0, "mode": mode, "n_real": n_real,
                        "n_real_cfg": 0 if n_real == n_available else n_cfg,
                        "n_fake": n_fake, "rep": rep, "all_real": n_real == n_available,
                        "seed": derive_seed(seed0, n_real, rep),  # shared across modes: paired design
                        # relative run time, for scheduling: a constrained trial fits a GAN
                        "cost": (20.0 if mode.startswith("constrained") and n_fake else 1.0)
                                + n_real / 10_000,
                    })
    return specs


def study_specs(cfg: Config, n_available: dict[int, int], log=None) -> list[dict]:
    """Stage 4's whole grid: every agent's trials, then its reference task. n_available:
    agent seed -> its real transitions."""
    from .artifacts import study_agents

    agents = study_agents(cfg)
    specs: list[dict] = []
    for a in agents:
        specs += grid_specs(cfg, n_available[a.seed], None if len(agents) == 1 else a.seed, log)
        specs.append(reference_spec(cfg, a.seed))
    return specs


def reference_spec(cfg: Config, agent: int) -> dict:
    """The task that scores an agent's references: the stage-1 agent and a uniform-random
    policy on the cells' evaluation episodes (normalisation), and those two plus the refit
    on all real data on `study.sanity_episodes` separate episodes (sanity, exclusion)."""
    return {"trial_id": f"ref-a{agent}", "agent": agent, "mode": "reference",
            "seed": derive_seed(agent, "reference"),
            "cost": 2.0 + cfg.study.sanity_episodes / 10}


def cells_episode_seed(agent: int) -> int:
    """Every trial of an agent, and its references, play the episodes from this seed."""
    return agent + 20_000_000


def sanity_episode_seed(agent: int) -> int:
    return agent + 30_000_000


@dataclass
class TrialArtifacts:
    """What every trial of one agent reads; loaded once per Spark worker and agent."""

    cfg: Config  # stage 4's
    fit_cfg: Config  # the agent's stage 1
    real: "object"  # refit.Transitions
    features: np.ndarray
    labels: np.ndarray
    class_table: np.ndarray
    embed_dim: int
    gamma: float
    spec: "object"  # envs.EnvSpec
    encoder: "object"  # keras.Model, frozen
    head: "object"  # keras.Model: the stage-1 agent's own head
    gans: dict  # generator kind -> FittedGan from stage 3 (the kinds the `simple` modes use)


def load_artifacts(ctx: TrialContext, agent_seed: int) -> TrialArtifacts:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # each trial traces its own refit loop: not a retracing bug
    try:  # one Spark task per core: TF must not spread one trial over every core
        tf.config.threading.set_intra_op_parallelism_threads(ctx.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TF already initialised in this process (in-process use)
    from .qnet import split_at_cut
    from .refit import Transitions
    from .store import Store

    store = Store(ctx.store)
    cfg = config_from_dict(ctx.config, "stage-4 context")
    agent = ctx.agent(agent_seed)
    fit = FitOutputs.open(store, ctx.run, agent)
    emb = load_embeddings(store, ctx.run, agent)
    d = emb.embed_dim
    x = emb.features
    real = Transitions(x[:, :d], emb.actions, emb.rewards, x[:, :d] + x[:, d:],
                       emb.terminals.astype(np.float32))
    from .generators import GanError, generator_rows

    rows = generator_rows(x, emb.rewards, cfg.gan.reward)  # what generators fit and sample
    spec = fit.spec()
    cut = split_at_cut(fit.qnet(), fit.cfg.qnet, spec.obs_shape)
    primary = cfg.gan.variant
    gans = {k: load_fitted_gan(store, ctx.run, agent, gan_stage(k, primary))
            for k in simple_kinds(cfg.eval.modes, primary)}
    for k, g in gans.items():
        if g.feat_dim != rows.shape[1]:
            raise GanError(f"stage 3's {k} generator makes rows of {g.feat_dim} features, this "
                           f"grid's gan.reward = {cfg.gan.reward!r} needs {rows.shape[1]}: rerun "
                           "`bash 3-fit-gan.sh` with the same [gan] as stage 4")
    return TrialArtifacts(cfg, fit.cfg, real, rows, emb.labels, emb.class_table, d,
                          fit.cfg.dqn.gamma, spec, cut.encoder, cut.head, gans)


def _artifacts(ctx_dict: dict, agent_seed: int) -> TrialArtifacts:
    from .spark import ctx_key, worker_cache

    return worker_cache((ctx_key(ctx_dict), "artifacts", int(agent_seed)),
                        lambda: load_artifacts(TrialContext.from_dict(ctx_dict), agent_seed))


def _fake_transitions(art: TrialArtifacts, gan, n: int, real_sub, seed: int):
    from .generators import to_transitions
    from .refit import Transitions

    x, labels = gan.sample(n, seed=seed)
    t = to_transitions(x, labels, art.class_table, art.embed_dim)
    if "reward" in t:  # generated with the row (gan.reward = "feature")
        return Transitions(t["e_s"], t["action"], t["reward"], t["e_next"],
                           t["terminal"].astype(np.float32))
    # A class carries the reward's sign; its size is the mean |r| of that sign in the
    # trial's own real sample (CartPole: always 1).
    sign = t["reward_sign"]
    mag = np.ones_like(sign)
    for s in (-1.0, 1.0):
        m = np.sign(real_sub.reward) == s
        if m.any():
            mag[sign == s] = float(np.abs(real_sub.reward[m]).mean())
    return Transitions(t["e_s"], t["action"], sign * mag, t["e_next"],
                       t["terminal"].astype(np.float32))


def constrained_config(gan_cfg, e, n_real: int):
    """A per-trial generator's settings: the kind's stage-3 settings at the [eval]
    constrained_gan_* budget and widths."""
    return dataclasses.replace(gan_cfg, steps=e.constrained_gan_steps,
                               batch_size=min(e.constrained_gan_batch, n_real),
                               g_hidden=e.constrained_gan_hidden,
                               d_hidden=e.constrained_gan_hidden,
                               diffusion_width=max(e.constrained_gan_hidden,
                                                   default=gan_cfg.diffusion_width))


QUALITY_ROWS = 2_000  # per side: enough for the judge, a few seconds per trial


def padding_quality(art: TrialArtifacts, idx: np.ndarray, gan, seed: int) -> dict:
    """How real a trial's padding looks, judged against the agent's real rows outside the
    trial's sample (which the trial never uses): C2ST, Fréchet over its real-vs-real floor, and
    memorisation against the trial's own rows. gan None: the padding is resampled rows."""
    from .generators.quality import quality_report

    rng = np.random.default_rng(seed)
    rest = np.setdiff1d(np.arange(len(art.labels)), idx)
    held = np.sort(rng.choice(rest, min(QUALITY_ROWS, len(rest)), replace=False))
    if len(held) < 50:
        return {}
    if gan is None:
        pick = idx[rng.integers(0, len(idx), len(held))]
        fx, fl = art.features[pick], art.labels[pick]
    else:
        fx, fl = gan.sample(len(held), labels=art.labels[held], seed=seed)
    r = quality_report(art.features[held], art.labels[held], fx, fl, len(art.class_table),
                       seed=seed, train_x=art.features[idx])
    return {"pad_c2st": r["c2st_accuracy"], "pad_fd_ratio": r["fd_ratio"],
            "pad_memorisation": r["memorisation_ratio"]}


def resampled(real_sub, n: int, seed: int):
    """n rows of the trial's own sample drawn uniformly with replacement."""
    return real_sub.subset(np.random.default_rng(seed).integers(0, len(real_sub), n))


def refit(data, n_actions: int, e, stage1_gamma: float, seed: int):
    """The profile's refit ([eval] refit_method and its settings) of a fresh head on `data`,
    with [eval] refit_gamma or else stage 1's gamma."""
    from .refit import (BcSettings, FqiSettings, IqlSettings, LspiSettings, RefitSettings,
                        SeedRefitSettings, bc_head, fqi_head, iql_head, lspi_head, refit_head,
                        seed_head)

    if e.refit_method == "seed":  # the seed's own rule: its gamma 0.95, whatever stage 1 used
        return seed_head(data, n_actions, SeedRefitSettings(e.refit_steps, seed,
                                                            gamma=e.refit_gamma or 0.95))
    if e.refit_method == "bc":
        return bc_head(data, n_actions, BcSettings(e.refit_ridge))
    gamma = e.refit_gamma or stage1_gamma
    if e.refit_method == "lspi":
        return lspi_head(data, n_actions, LspiSettings(gamma, e.refit_ridge, e.refit_lspi_iters))
    if e.refit_method == "fqi":
        return fqi_head(data, n_actions, FqiSettings(gamma, e.refit_ridge, e.refit_fqi_iters))
    if e.refit_method == "iql":
        return iql_head(data, n_actions, IqlSettings(gamma, e.refit_expectile, e.refit_ridge,
                                                     e.refit_fqi_iters, e.refit_extract,
                                                     e.refit_awr_beta))
    return refit_head(data, n_actions, RefitSettings(
        e.refit_steps, e.refit_batch, e.refit_lr, gamma, e.refit_target_update, seed,
        double_dqn=e.refit_double_dqn, cql_alpha=e.refit_cql_alpha,
        average_from=e.refit_average_from, ensemble=e.refit_ensemble))


def _q_fn(head, encoder):
    import tensorflow as tf

    return tf.function(lambda s: head(encoder(s, training=False), training=False),
                       reduce_retracing=True)


def _agent_seed(spec: dict, ctx: dict) -> int:
    return int(spec.get("agent", ctx["config"]["seed"]))


def run_trial(spec: dict, ctx: dict) -> dict:
    """One grid task (ctx: TrialContext.to_dict()): a padded-refit trial, or an agent's
    references (mode `reference`)."""
    if spec["mode"] == "reference":
        return run_reference(spec, ctx)
    from .play import play
    from .refit import Transitions

    t0 = time.time()
    agent = _agent_seed(spec, ctx)
    art = _artifacts(ctx, agent)
    e = art.cfg.eval
    mode, n_fake, seed = spec["mode"], int(spec["n_fake"]), int(spec["seed"])
    access, kind = parse_mode(mode, art.cfg.gan.variant)
    rng = np.random.default_rng(seed)
    n_real = min(int(spec["n_real"]) or len(art.real), len(art.real))
    idx = np.sort(rng.choice(len(art.real), size=n_real, replace=False))
    real_sub = art.real.subset(idx)

    gan_s, gan_info = 0.0, {}
    parts = [real_sub]
    if access != "none" and n_fake > 0:
        tg = time.time()
        if access == "simple":
            if kind not in art.gans:
                raise RuntimeError(f"mode {mode!r} needs stage 3's {kind} generator: run "
                                   "`bash 3-fit-gan.sh`")
            gan = art.gans[kind]
            # the stage-3 generator's training-set size (all of stage 3's train split)
            gan_info = {"gan_n_train": int(gan.info.get("n_train", -1))}
        elif access == "resample":  # copies of the trial's own rows: constrained's control
            gan = None
        else:  # constrained: a generator that has seen this trial's real sample only
            from .generators import fit_gan

            gcfg = constrained_config(kind_config(art.cfg.gan, kind), e, n_real)
            gan = fit_gan(art.features[idx], art.labels[idx], len(art.class_table), gcfg,
                          seed=derive_seed(seed, "gan"))
            # gan_n_train: the rows this generator saw; equals n_real (the trial's own sample)
            gan_info = {"gan_restarts": int(gan.restarts), "gan_n_train": int(gan.info["n_train"])}
        fake_seed = derive_seed(seed, "fake", n_fake)
        parts.append(resampled(real_sub, n_fake, fake_seed) if access == "resample"
                     else _fake_transitions(art, gan, n_fake, real_sub, fake_seed))
        gan_s = time.time() - tg
        if access in ("constrained", "resample") and int(spec["rep"]) < e.quality_reps:
            gan_info.update(padding_quality(art, idx, gan, derive_seed(seed, "quality")))

    tr = time.time()
    res = refit(Transitions.concat(parts), art.spec.n_actions, e, art.gamma,
                derive_seed(seed, "refit", mode, n_fake))
    refit_s = time.time() - tr

    tp = time.time()
    pr = play(_q_fn(res.head, art.encoder), art.fit_cfg.env, art.spec, e.episodes,
              seed=cells_episode_seed(agent), n_envs=e.n_envs)
    return {
        "trial_id": spec["trial_id"], "agent": agent, "mode": mode, "n_real": n_real,
        "n_real_cfg": int(spec.get("n_real_cfg", n_real)), "n_fake": n_fake,
        "rep": int(spec["rep"]), "seed": seed, "all_real": bool(spec.get("all_real", False)),
        "scores": [float(v) for v in pr.returns], "lengths": [int(v) for v in pr.lengths],
        "td_loss": [float(v) for v in res.td_loss], "q_mean": res.q_mean,
        "refit_converged": bool(res.converged),
        "gan_s": round(gan_s, 3), "refit_s": round(refit_s, 3), "play_s": round(time.time() - tp, 3),
        "wall_s": round(time.time() - t0, 3), **gan_info,
    }


def run_reference(spec: dict, ctx: dict) -> dict:
    """An agent's reference scores (see reference_spec). The refit here is the trials' own,
    on all the agent's real data, judged on episodes no cell plays."""
    from .play import play

    t0 = time.time()
    agent = _agent_seed(spec, ctx)
    art = _artifacts(ctx, agent)
    e, n_sanity = art.cfg.eval, art.cfg.study.sanity_episodes
    q_agent = _q_fn(art.head, art.encoder)
    env, sp = art.fit_cfg.env, art.spec

    def scores(q_fn, seed: int, episodes: int, epsilon: float = 0.0) -> list[float]:
        r = play(q_fn, env, sp, episodes, seed=seed, n_envs=e.n_envs, epsilon=epsilon)
        return [float(v) for v in r.returns]

    cells, sanity = cells_episode_seed(agent), sanity_episode_seed(agent)
    res = refit(art.real, sp.n_actions, e, art.gamma, derive_seed(spec["seed"], "refit"))
    q_refit = _q_fn(res.head, art.encoder)
    return {
        "trial_id": spec["trial_id"], "agent": agent, "mode": "reference",
        "game": env.id, "n_real": len(art.real),
        "agent_scores": scores(q_agent, cells, e.episodes),
        "random_scores": scores(q_agent, cells, e.episodes, epsilon=1.0),
        "sanity_agent_scores": scores(q_agent, sanity, n_sanity),
        "sanity_random_scores": scores(q_agent, sanity, n_sanity, epsilon=1.0),
        "sanity_refit_scores": scores(q_refit, sanity, n_sanity),
        "sanity_refit_converged": bool(res.converged),
        "wall_s": round(time.time() - t0, 3),
    }
