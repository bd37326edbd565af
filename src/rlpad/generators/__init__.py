"""Generators of transition features x = [e(s), e(s') - e(s)] conditioned on a class label
(stage 3, and the `constrained` trials of stage 4). One module a job: `gan_models` (the
networks and train steps of each kind), `train` (fit_gan's loop), `checkpoint`, `fitted`
(normalisation, sampling, save/load), `data` (hold-out split, rows to transitions), `quality`
(C2ST, Fréchet distance, plots).

Two GAN kinds today, chosen by ``GanConfig.variant``:

* ``cgan-seed`` -- the seed's Keras-GAN cGAN, kept as the baseline: label embedding multiplied
  into the noise (G) and into the input (D), LeakyReLU + BatchNorm(0.8) generator, dropout
  discriminator, binary cross-entropy, two D updates (real, then fake) and one G update per
  step, G's labels uniform, trained on raw (unnormalised) features, restart when D's accuracy
  sits outside [restart_low, restart_high] or at exactly 50 % for restart_window steps.
* ``wgan-gp`` -- the stabilised one: per-dimension standardised features, one-hot label
  concatenated to the inputs of both nets, no BatchNorm in the critic (it would break the
  per-sample gradient penalty), WGAN-GP loss with n_critic critic steps per G step; generator
  outputs are clipped to the observed per-dimension range (``GanConfig.clip_to_range``), and
  samples come from an exponential moving average of G's weights (``GanConfig.g_ema``): on
  synthetic stage-2-like data the average cut the C2ST accuracy from 0.85 to 0.75 at equal cost.

Everything random in training comes from a seeded numpy Generator (minibatch indices, noise,
gradient-penalty mixing) or from explicitly seeded Keras layers (initialisers, dropout), so a
fit is deterministic on CPU and a checkpoint holds the whole state: weights (.weights.h5),
optimiser and dropout-seed variables (HDF5), step, numpy RNG state and history (JSON).
No pickle anywhere.
"""
from .checkpoint import find_checkpoint
from .common import CKPT_MARKER, CKPT_PREFIX, FORMAT, FORMAT_VERSION, GanError
from .data import holdout_split, to_transitions
from .fitted import FittedGan, NormStats, gan_config_from_dict
from .gan_models import build_discriminator, build_generator
from .train import fit_gan

__all__ = ["CKPT_MARKER", "CKPT_PREFIX", "FORMAT", "FORMAT_VERSION", "FittedGan", "GanError",
           "NormStats", "build_discriminator", "build_generator", "find_checkpoint", "fit_gan",
           "gan_config_from_dict", "holdout_split", "to_transitions"]
