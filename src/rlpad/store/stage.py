"""A stage's files: read verified against its manifest, or written with the manifest last."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, ChecksumError, StoreError,
                     git_revision, package_versions, script_for, sha256_file, validate_run_id)
from .status import StageStatus

if TYPE_CHECKING:
    from .core import Store


@dataclass
class StageReader:
    """Read access to a complete stage; every file is checked against the manifest."""

    store: Store
    run: str
    stage: str
    manifest: dict

    @property
    def manifest_sha256(self) -> str:
        return self.manifest["_sha256"]

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})

    def local_path(self, name: str, cache_dir: str | None = None) -> str:
        """A verified local copy (or the file itself, for a local store)."""
        files = self.manifest["files"]
        if name not in files:
            raise StoreError(f"{self.store.url(self.run, self.stage)} has no file {name!r} in its "
                             f"manifest; rerun `bash {script_for(self.stage)}` --force")
        src = self.store.path(self.run, self.stage, name)
        want = files[name]["sha256"]
        if self.store.is_local:
            path = src
            if not os.path.exists(path):
                raise StoreError(f"{path} is listed in the manifest but missing; rerun "
                                 f"`bash {script_for(self.stage)}` with --force")
        else:
            cache = Path(cache_dir or tempfile.gettempdir()) / "rlpad-cache" / want
            cache.mkdir(parents=True, exist_ok=True)
            path = str(cache / name)
            if not (os.path.exists(path) and sha256_file(path) == want):
                # Several processes (Spark workers) may fetch the same file at once: each
                # downloads to its own temp name, then renames (atomic; the last one wins).
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, part = tempfile.mkstemp(dir=os.path.dirname(path),
                                            prefix=f".{os.path.basename(path)}.", suffix=".part")
                os.close(fd)
                try:
                    self.store.get_file(src, part)
                    os.replace(part, path)
                finally:
                    if os.path.exists(part):
                        os.remove(part)
        got = sha256_file(path)
        if got != want:
            raise ChecksumError(
                f"{self.store.url(self.run, self.stage, name)} fails its checksum "
                f"(sha256 {got[:12]}... != manifest {want[:12]}...): the file is corrupt or was "
                f"changed; rerun `bash {script_for(self.stage)}` with --force")
        return path

    def read_json(self, name: str) -> dict:
        with open(self.local_path(name)) as f:
            return json.load(f)


class StageWriter:
    """Collects a stage's files and publishes them; manifest.json goes last."""

    def __init__(self, store: Store, run: str, stage: str):
        self.store, self.run, self.stage = store, validate_run_id(run), stage
        self.files: dict[str, dict] = {}
        self.t0 = time.time()
        self.status: StageStatus | None = None

    def begin(self) -> None:
        """Invalidate any previous output first, so a crash can never leave an old
        manifest describing new files. From here until commit the stage has a status record
        (running, with a heartbeat: store/status.py)."""
        self.store.rm(self.store.path(self.run, self.stage, MANIFEST))
        self.status = StageStatus(self.store, self.run, self.stage).start()

    def put_file(self, local: str, name: str | None = None) -> None:
        name = name or os.path.basename(local)
        self.files[name] = {"sha256": sha256_file(local), "bytes": os.path.getsize(local)}
        self.store.put_file(local, self.store.path(self.run, self.stage, name))

    def put_bytes(self, name: str, data: bytes) -> None:
        self.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        self.store.write_bytes(self.store.path(self.run, self.stage, name), data)

    def put_json(self, name: str, obj) -> None:
        self.put_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode())

    def commit(self, *, config: dict, config_hash: str, metrics: dict,
               upstream: dict[str, str] | None = None, run_info: dict | None = None) -> dict:
        """metrics: the stage's results (what a rerun reproduces); run_info: how this run
        went (e.g. the step it resumed from), kept apart so resumed and uninterrupted runs
        have the same metrics."""
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "stage": self.stage,
            "run": self.run,
            "files": self.files,
            "config": config,
            "config_hash": config_hash,
            "upstream": upstream or {},
            "versions": package_versions(),
            "git_revision": git_revision(),
            "wall_time_s": round(time.time() - self.t0, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metrics": metrics,
            "run_info": run_info or {},
        }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        if self.status is not None:  # before the manifest, which stays the last write
            self.status.finish("done")
        self.store.write_bytes(self.store.path(self.run, self.stage, MANIFEST), data)
        manifest["_sha256"] = hashlib.sha256(data).hexdigest()
        return manifest
