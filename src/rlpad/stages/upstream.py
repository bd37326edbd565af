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
        # Only what stage 1 depends on: later additions to other sections must not make
        # finished runs unreadable.
        recorded = reader.manifest["config"]
        own = {k: recorded[k] for k in ("seed", "env", "qnet", "dqn") if k in recorded}
        return cls(reader, config_from_dict(own, f"{store.url(run, reader.stage, 'manifest.json')}"))

    def spec(self):
        from ..envs import env_spec

        return env_spec(self.cfg.env)

    def qnet(self):
        from ..qnet import load_qnet

        spec = self.spec()
        return load_qnet(self.cfg.qnet, spec.obs_shape, spec.n_actions,
                         self.reader.local_path("qnet.weights.h5"))
