"""Stage 3: fit a conditional GAN on stage 2's embeddings and measure how real its samples are."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Callable

from ..config import Config
from ..artifacts import Agent
from ..modes import gan_stage, kind_config, stage3_kinds
from ..store import Store
from .common import StoreCheckpointer, already_done

STAGE = "3-fit-gan"


def run(cfg: Config, store: Store, run_id: str, force: bool = False,
        log: Callable[[str], None] = print, agent: Agent | None = None) -> dict:
    """cfg: the agent's own config (its seed); agent: where its stages live (None: <run>/).
    Fits the profile's generator (`gan.variant`, at 3-fit-gan/) and every other kind a
    `simple:<kind>` mode of stage 4 asks for (at 3-fit-gan-<kind>/); returns the first's metrics."""
    primary = cfg.gan.variant
    out = {}
    for kind in stage3_kinds(cfg.eval.modes, primary):
        out[kind] = _fit_kind(cfg, kind_config(cfg.gan, kind), gan_stage(kind, primary), store,
                              run_id, force, log, agent)
    return out[primary]


def _fit_kind(cfg: Config, gcfg, name: str, store: Store, run_id: str, force: bool,
              log: Callable[[str], None], agent: Agent | None) -> dict:
    stage = agent.stage(name) if agent else name
    from ..embed import Embedded
    from ..generators import fit_gan, generator_rows, holdout_split
    from ..generators.quality import plot_histograms, plot_training, quality_report
    from ..progress import Progress

    tr = store.require(run_id, agent.stage("2-transform") if agent else "2-transform")
    # this kind's config is the agent's with its [gan]: the profile's own kind hashes as before
    kcfg = dataclasses.replace(cfg, gan=gcfg)
    config_hash = kcfg.section_hash("gan") + "-" + tr.manifest_sha256[:12]
    done = already_done(store, run_id, stage, config_hash, force, log)
    if done:
        return done["metrics"]
    emb = Embedded.load(tr.local_path("embeddings.h5"))
    x = generator_rows(emb.features, emb.rewards, gcfg.reward)
    n_classes = len(emb.class_table)
    train, hold = holdout_split(emb.labels, gcfg.holdout_fraction, cfg.seed)
    ckpt = StoreCheckpointer(store, run_id, stage, config_hash)
    writer = store.writer(run_id, stage)
    writer.begin()
    with tempfile.TemporaryDirectory(prefix="rlpad-fitgan-") as work:
        state_dir = os.path.join(work, "state")
        marker = ckpt.load(state_dir)  # restored flat into state_dir; fit_gan resumes from it
        if marker:
            log(f"[{stage}] resuming from checkpoint at step {marker['step']:,}")
        prog = Progress(gcfg.steps, stage)
        fitted = fit_gan(
            x[train], emb.labels[train], n_classes, gcfg, seed=cfg.seed,
            progress=lambda step, total, info: prog.update(step, **{k: v for k, v in info.items()
                                                                   if isinstance(v, float)}),
            state_dir=state_dir,
            on_checkpoint=lambda folder, step: ckpt.save(folder, step, {}))
        prog.close()
        fake_x, fake_l = fitted.sample(len(hold), labels=emb.labels[hold], seed=cfg.seed + 7)
        report = quality_report(x[hold], emb.labels[hold], fake_x, fake_l, n_classes,
                                seed=cfg.seed, train_x=x[train])
        out = os.path.join(work, "out")
        names = fitted.save(out)
        plot_training(fitted.history, os.path.join(out, "training.png"))
        plot_histograms(x[hold], fake_x, os.path.join(out, "histograms.png"))
        with open(os.path.join(out, "quality.json"), "w") as f:
            json.dump(report, f, indent=1)
        for name in names + ["training.png", "histograms.png", "quality.json"]:
            writer.put_file(os.path.join(out, name), name)
        metrics = {
            "variant": gcfg.variant,
            "c2st_accuracy": report["c2st_accuracy"],
            "fd_real_fake": report["fd_real_fake"],
            "fd_real_real": report["fd_real_real"],
            "fd_ratio": report["fd_ratio"],
            "memorisation_ratio": report["memorisation_ratio"],
            "restarts": int(fitted.restarts),
            "n_train": int(len(train)), "n_holdout": int(len(hold)),
            "per_class": report["per_class"],
            "steps": gcfg.steps,
            "train_steps_per_s": fitted.info["steps"] / max(fitted.info["wall_s"], 1e-9),
            "wall_s_fit": fitted.info["wall_s"],
        }
        writer.commit(config=kcfg.to_dict(), config_hash=config_hash, metrics=metrics,
                      upstream={tr.stage: tr.manifest_sha256})
    store.clear_checkpoints(run_id, stage)
    log(f"[{stage}] {gcfg.variant}: C2ST accuracy {report['c2st_accuracy']:.3f} (0.5 = indistinguishable); "
        f"Fréchet distance real-fake {report['fd_real_fake']:.3g} vs real-real {report['fd_real_real']:.3g}; "
        f"memorisation ratio {report['memorisation_ratio'] or float('nan'):.2f} (1 = as far from the training rows as new real rows); "
        f"{fitted.restarts} restarts; outputs at {store.url(run_id, stage)}")
    return metrics
