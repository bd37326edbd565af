"""What every stage does around its work: skip if done, refuse a changed config,
resume from checkpoints, publish with the manifest last."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import Config
from ..store import Store, StoreError, script_for


class ConfigChangedError(StoreError):
    pass


def already_done(store: Store, run: str, stage: str, config_hash: str, force: bool,
                 log: Callable[[str], None]) -> dict | None:
    """The finished stage's manifest when it can be reused, else None (after clearing
    what --force asks to redo). A finished stage made with another config is an error:
    silently mixing configs inside one run would make its numbers meaningless."""
    m = store.manifest(run, stage)
    if force:
        store.clear_checkpoints(run, stage)
        return None
    if m is None:
        return None
    if m["config_hash"] != config_hash:
        raise ConfigChangedError(
            f"stage {stage} of run {run!r} was made with another config "
            f"(hash {m['config_hash']} != {config_hash}); rerun `bash {script_for(stage)}` with "
            "--force (RLPAD_FORCE=1) to redo it, or choose another RLPAD_RUN")
    log(f"[{stage}] already complete for this config (manifest {m['_sha256'][:12]}); "
        "skipping. Use --force to redo.")
    return m


@dataclass
class StoreCheckpointer:
    """Checkpoints in the store, tagged with the config hash they were made under."""

    store: Store
    run: str
    stage: str
    config_hash: str

    def save(self, local_dir: str, step: int, info: dict) -> None:
        self.store.save_checkpoint(self.run, self.stage, local_dir, step,
                                   {**info, "config_hash": self.config_hash})

    def load(self, local_dir: str) -> dict | None:
        marker = self.store.load_checkpoint(self.run, self.stage, local_dir)
        if marker and marker["info"].get("config_hash") != self.config_hash:
            raise ConfigChangedError(
                f"stage {self.stage} of run {self.run!r} has a checkpoint made with another "
                f"config; rerun `bash {script_for(self.stage)}` with --force to start over")
        return marker


def stage_config(cfg: Config, *sections: str) -> tuple[dict, str]:
    d = cfg.to_dict()
    return {"seed": d["seed"], **{s: d[s] for s in sections}}, cfg.section_hash(*sections)
