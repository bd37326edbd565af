"""Generators of transition features x = [e(s), e(s') - e(s)] conditioned on a class label
(stage 3, and the `constrained` trials of stage 4). One module a job: `kinds` (what differs
between kinds, in one place), `gan_models`, `vae_models`, `diffusion_models` (each kind's nets
and train step), `trainer` (nets, optimisers and the compiled chunk of steps), `train`
(fit_gan's loop: restarts, progress, checkpoints, resume), `checkpoint`, `fitted`
(normalisation, sampling, save/load), `data` (hold-out split, rows to transitions), `quality`
(C2ST, Fréchet distance, memorisation, plots).

Four kinds, chosen by ``GanConfig.variant`` (the `resample` control lives in stage 4's modes):

* ``cgan-seed`` -- the seed's Keras-GAN cGAN, kept as the baseline: label embedding multiplied
  into the noise (G) and into the input (D), LeakyReLU + BatchNorm(0.8) generator, dropout
  discriminator, binary cross-entropy, two D updates (real, then fake) and one G update per
  step, G's labels uniform, trained on raw (unnormalised) features, restart when D's accuracy
  sits outside [restart_low, restart_high] or at exactly 50 % for restart_window steps.
* ``wgan-gp`` -- the stabilised GAN: per-dimension standardised features, one-hot label
  concatenated to the inputs of both nets, no BatchNorm in the critic (it would break the
  per-sample gradient penalty), WGAN-GP loss with n_critic critic steps per G step; generator
  outputs are clipped to the observed per-dimension range (``GanConfig.clip_to_range``), and
  samples come from an exponential moving average of G's weights (``GanConfig.g_ema``).
* ``cvae`` -- a conditional VAE with a learned per-dimension decoder scale (``vae_models``).
* ``diffusion`` -- EDM with SynthER's choices, sized for a CPU (``diffusion_models``).

Training runs as compiled chunks of steps (``trainer``) whose randomness is stateless, drawn
from (attempt seed, step); initialisers and dropout are explicitly seeded Keras layers. So a
fit is deterministic on CPU, and a checkpoint at a chunk boundary holds the whole state:
weights (.weights.h5), optimiser and dropout-seed variables (HDF5), step and history (JSON).
No pickle anywhere.
"""
from .checkpoint import find_checkpoint
from .common import CKPT_MARKER, CKPT_PREFIX, FORMAT, FORMAT_VERSION, GanError
from .data import generator_rows, holdout_split, to_transitions
from .fitted import FittedGan, NormStats, gan_config_from_dict
from .gan_models import build_discriminator, build_generator
from .train import fit_gan

__all__ = ["CKPT_MARKER", "CKPT_PREFIX", "FORMAT", "FORMAT_VERSION", "FittedGan", "GanError",
           "NormStats", "build_discriminator", "build_generator", "find_checkpoint", "fit_gan",
           "gan_config_from_dict", "generator_rows", "holdout_split", "to_transitions"]
