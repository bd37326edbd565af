"""Loading what upstream stages published, from verified manifests only."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, config_from_dict
from ..store import StageReader, Store


@dataclass
class FitOutputs:
    """Stage 1's Q-net, rebuilt from the config its manifest recorded."""

    reader: StageReader
    cfg: Config  # stage 1's own config (its env, net and gamma rule downstream)

    @classmethod
    def open(cls, store: Store, run: str) -> "FitOutputs":
        reader = store.require(run, "1-fit")
        return cls(reader, config_from_dict(reader.manifest["config"], f"{reader.stage} manifest"))

    def spec(self):
        from ..envs import env_spec

        return env_spec(self.cfg.env)

    def qnet(self):
        from ..qnet import load_qnet

        spec = self.spec()
        return load_qnet(self.cfg.qnet, spec.obs_shape, spec.n_actions,
                         self.reader.local_path("qnet.weights.h5"))
