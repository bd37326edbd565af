"""What differs between generator kinds, in one place: their nets, the width of the noise a
sample is made from, how a sample is made from it, and the names of their training metrics.
The training loop, checkpoints, saving and sampling call these and are otherwise shared."""
from __future__ import annotations

from ..config import GanConfig
from . import diffusion_models, vae_models
from .gan_models import build_discriminator, build_generator

METRICS = {
    "cgan-seed": ("d_loss", "g_loss", "d_acc"),
    "wgan-gp": ("d_loss", "g_loss", "d_acc", "w_dist", "gp"),
    "cvae": ("loss", "nll", "kl", "log_scale"),
    "diffusion": ("loss",),
}


def standardises(cfg: GanConfig) -> bool:
    """The seed's cGAN trained on raw features; every other kind on standardised ones."""
    return cfg.variant != "cgan-seed"


def clips(cfg: GanConfig) -> bool:
    return cfg.variant != "cgan-seed" and cfg.clip_to_range


def has_ema(cfg: GanConfig) -> bool:
    return cfg.variant in ("wgan-gp", "diffusion") and cfg.g_ema > 0


def build_nets(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0):
    """(the net a sample comes from, the other one or None)."""
    if cfg.variant == "cvae":
        return (vae_models.build_decoder(cfg, feat_dim, n_classes, seed),
                vae_models.build_encoder(cfg, feat_dim, n_classes, seed))
    if cfg.variant == "diffusion":
        return diffusion_models.build_denoiser(cfg, feat_dim, n_classes, seed), None
    return (build_generator(cfg, feat_dim, n_classes, seed),
            build_discriminator(cfg, feat_dim, n_classes, seed))


def noise_width(cfg: GanConfig, feat_dim: int) -> int:
    if cfg.variant == "cvae":
        return vae_models.noise_width(cfg, feat_dim)
    if cfg.variant == "diffusion":
        return diffusion_models.noise_width(cfg, feat_dim)
    return cfg.latent_dim


def generate_fn(cfg: GanConfig, net, feat_dim: int):
    """(noise (B, noise_width), label (B,)) -> (B, feat_dim), before the output clip."""
    if cfg.variant == "diffusion":
        return diffusion_models.make_sampler(cfg, net, feat_dim)
    return lambda z, lab: net([z, lab], training=False)
