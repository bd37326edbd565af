"""Stage 4's modes and the generator kind each pads with.

A mode is an access level, optionally with a generator kind: `none` (real rows only, the
control), `simple[:kind]` (a generator stage 3 fit on all the agent's data), `constrained[:kind]`
(a generator fit on the trial's own rows), `resample` (= `constrained:resample`: copies of the
trial's own rows). Without a kind, `simple` and `constrained` use the profile's `gan.variant`
(the tables keep the name as written, so old runs read the same). Trials that differ only by
mode share their real sample, so kinds compare head to head.
"""
from __future__ import annotations

import dataclasses

ACCESS = ("none", "simple", "constrained", "resample")
KINDS = ("cgan-seed", "wgan-gp", "cvae", "diffusion")

# A kind other than the profile's gan.variant takes the profile's [gan] with these changes:
# settings for the quick embeddings, chosen on quick agents 1-2 (README, "The generators").
KIND_SETTINGS = {
    "cgan-seed": {"lr": 2e-4, "beta1": 0.5},  # the seed's optimiser
    "wgan-gp": {},
    "cvae": {"batch_size": 256, "lr": 1e-3, "latent_dim": 16, "beta": 2.0},
    "diffusion": {"batch_size": 256, "lr": 1e-3},
}


def parse_mode(mode: str, default_kind: str) -> tuple[str, str | None]:
    """(access, kind): kind None for `none` and `resample`. ValueError for an unknown mode."""
    access, _, kind = mode.partition(":")
    if access == "constrained" and kind == "resample":
        return "resample", None
    if access not in ACCESS or (kind and access in ("none", "resample")):
        raise ValueError(f"unknown mode {mode!r} (choose from none, resample, simple[:kind], "
                         f"constrained[:kind]; kinds: {', '.join(KINDS)})")
    if access in ("none", "resample"):
        return access, None
    if kind and kind not in KINDS:
        raise ValueError(f"mode {mode!r}: unknown generator kind {kind!r} "
                         f"(choose from {', '.join(KINDS)})")
    return access, kind or default_kind


def kind_config(base, kind: str):
    """The GanConfig a kind fits with: the profile's [gan] itself for its own variant."""
    if kind == base.variant:
        return base
    return dataclasses.replace(base, variant=kind, **KIND_SETTINGS[kind])


def gan_stage(kind: str, primary: str) -> str:
    """Stage 3's folder for a kind: `3-fit-gan` for the profile's variant, else `3-fit-gan-<kind>`."""
    return "3-fit-gan" if kind == primary else f"3-fit-gan-{kind}"


def simple_kinds(modes: list[str], primary: str) -> list[str]:
    """The kinds the `simple` modes pad with, in order of first use."""
    out = []
    for m in modes:
        access, kind = parse_mode(m, primary)
        if access == "simple" and kind not in out:
            out.append(kind)
    return out


def stage3_kinds(modes: list[str], primary: str) -> list[str]:
    """What stage 3 fits: the profile's variant always (its quality report is stage 3's
    record), then every other kind a `simple` mode asks for."""
    return [primary] + [k for k in simple_kinds(modes, primary) if k != primary]
