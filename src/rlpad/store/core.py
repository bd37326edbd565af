"""Store: a root URL holding runs; bytes, files, manifests and checkpoints."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import fsspec
import fsspec.asyn
from fsspec.exceptions import FSTimeoutError

from .. import failpoints
from .common import (MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, ChecksumError,
                     MissingStageError, StoreError, script_for, sha256_file, validate_run_id)
from .remote import _GCS, _auth_hint, _emulator_url, _gcs_class, _is_remote_error, _storage_options

PROBE_TIMEOUT_S = 8.0  # Store.check(): a dead endpoint or missing bucket fails within this


class Store:
    """A root URL (local path or gs://bucket/prefix) holding runs."""

    def __init__(self, uri: str, storage_options: dict | None = None, *, probe: bool = True):
        """probe: for a gs:// store, run check() now so a missing bucket or a dead endpoint
        fails here, within PROBE_TIMEOUT_S, with a message naming the setting to fix."""
        if not uri:
            raise StoreError("store URI is empty (setting RLPAD_STORE)")
        if uri.startswith(_GCS) and not uri.split("://", 1)[1].strip("/"):
            raise StoreError(f"store {uri!r} names no bucket: use gs://BUCKET or "
                             "gs://BUCKET/prefix (setting RLPAD_STORE)")
        opts = _storage_options(uri) if storage_options is None else storage_options
        try:
            if uri.startswith(_GCS):
                os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
                cls = _gcs_class()
                self.fs, root = cls(**opts), cls._strip_protocol(uri)
            else:
                self.fs, root = fsspec.core.url_to_fs(uri, **opts)
        except (ImportError, ValueError) as e:
            raise StoreError(f"store {uri!r} cannot be opened: {e} (setting RLPAD_STORE)") from e
        except Exception as e:
            if not _is_remote_error(e):
                raise
            # e.g. google_default finds no Application Default Credentials
            raise StoreError(f"store {uri!r} cannot be opened: {type(e).__name__}: {e}"
                             f"{_auth_hint(e)} (setting RLPAD_STORE)") from None
        self.uri = uri
        self.root = root.rstrip("/")
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                   else (self.fs.protocol,))
        if self.is_local:
            self.root = str(Path(self.root).resolve())
            os.makedirs(self.root, exist_ok=True)
        elif probe and uri.startswith(_GCS):
            self.check()

    # ---- health -----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str | None:
        """The HTTP endpoint of a gs:// store (an emulator's or Google's); None otherwise."""
        return getattr(self.fs, "_location", None) if not self.is_local else None

    def _where(self) -> str:
        emulator = _emulator_url()
        via = f" via STORAGE_EMULATOR_HOST={emulator}" if emulator else ""
        return f"(setting RLPAD_STORE={self.uri}{via})"

    def check(self, timeout: float = PROBE_TIMEOUT_S) -> None:
        """Bounded-time probe: is the endpoint reachable and does the bucket exist and let us
        list it? Raises StoreError with a message a user can act on; never hangs past
        about `timeout` seconds (gcsfs alone retries a refused connection for ~35 s)."""
        if self.is_local or self.endpoint is None:
            return
        bucket, _, prefix = self.root.partition("/")
        endpoint = self.endpoint
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        deadline = time.monotonic() + timeout

        async def probe() -> None:
            # A plain TCP connect first: a refused or silent endpoint is told apart from a
            # missing bucket at once, without gcsfs's retry back-off.
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(host, port),
                                              min(timeout, 5.0))
            except asyncio.TimeoutError:
                raise StoreError(f"storage endpoint {endpoint} did not accept a connection "
                                 f"within {min(timeout, 5.0):.0f} s {self._where()}") from None
            except OSError as e:
                raise StoreError(f"storage endpoint {endpoint} is unreachable ({e.strerror or e})"
                                 f" {self._where()}") from None
            w.close()
            # Listing (storage.objects.list) rather than a bucket GET: object-level roles
            # may not grant storage.buckets.get, and the store needs listing anyway.
            left = max(deadline - time.monotonic(), 0.5)
            try:
                await asyncio.wait_for(
                    self.fs._call("GET", "b/{}/o", bucket, json_out=True,
                                  prefix=f"{prefix}/" if prefix else None, maxResults=1),
                    left)
            except asyncio.TimeoutError:
                raise StoreError(f"storage endpoint {endpoint} gave no answer about bucket "
                                 f"{bucket!r} within {timeout:.0f} s {self._where()}") from None

        try:
            fsspec.asyn.sync(self.fs.loop, probe, timeout=timeout + 2.0)
        except StoreError:
            raise
        except FileNotFoundError:
            raise StoreError(f"bucket {bucket!r} does not exist at {endpoint} {self._where()}: "
                             f"create it (`gcloud storage buckets create gs://{bucket}`) or "
                             "point RLPAD_STORE at an existing bucket") from None
        except FSTimeoutError:
            raise StoreError(f"storage endpoint {endpoint} gave no answer about bucket "
                             f"{bucket!r} within {timeout:.0f} s {self._where()}") from None
        except Exception as e:
            if not _is_remote_error(e):
                raise
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if msg.startswith("Forbidden"):
                msg = ("access denied: the credentials lack storage.objects.list/get/create on "
                       "this bucket")
            raise StoreError(f"bucket {bucket!r} at {endpoint} cannot be used: {msg}"
                             f"{_auth_hint(e)} {self._where()}") from None

    @contextmanager
    def _remote(self, what: str, path: str) -> Iterator[None]:
        """Turn a transport/auth/server error from a remote store into a StoreError that
        names the object and the setting; a plain missing file stays FileNotFoundError."""
        if self.is_local:
            yield
            return
        try:
            yield
        except StoreError:
            raise
        except Exception as e:
            if not _is_remote_error(e):
                raise
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise StoreError(f"store {what} of {self._url_of(path)} failed: "
                             f"{type(e).__name__}: {msg}{_auth_hint(e)} {self._where()}") from e

    def _url_of(self, path: str) -> str:
        return path if self.is_local else f"{self.uri.split('://')[0]}://{path}"

    def path(self, run: str, stage: str, name: str = "") -> str:
        validate_run_id(run)
        parts = [self.root, run, stage] + ([name] if name else [])
        return "/".join(parts)

    def url(self, run: str, stage: str, name: str = "") -> str:
        return self._url_of(self.path(run, stage, name))

    # ---- low-level ops -------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        with self._remote("lookup", path):
            return self.fs.exists(path)

    def read_bytes(self, path: str) -> bytes:
        with self._remote("read", path), self.fs.open(path, "rb") as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Atomic on both backends: local writes go to a temp name then rename; a GCS
        object becomes visible only when its upload completes."""
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            with self._remote("write", path), self.fs.open(path, "wb") as f:
                f.write(data)

    def put_file(self, local: str, path: str) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
            os.close(fd)
            shutil.copyfile(local, tmp)
            os.replace(tmp, path)
        else:
            with self._remote("upload", path):
                self.fs.put_file(local, path)

    def get_file(self, path: str, local: str) -> None:
        if self.is_local:
            shutil.copyfile(path, local)
        else:
            with self._remote("download", path):
                self.fs.get_file(path, local)

    def rm(self, path: str, recursive: bool = False) -> None:
        if self.exists(path):
            with self._remote("delete", path):
                self.fs.rm(path, recursive=recursive)

    # ---- stages ---------------------------------------------------------------------------
    def manifest(self, run: str, stage: str) -> dict | None:
        """The stage's manifest, or None when the stage is not complete."""
        p = self.path(run, stage, MANIFEST)
        if not self.exists(p):
            return None
        raw = self.read_bytes(p)
        try:
            m = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ChecksumError(f"{self.url(run, stage, MANIFEST)} is corrupt ({e}); "
                                f"rerun {script_for(stage)} with --force") from None
        if m.get("format") != MANIFEST_FORMAT or m.get("version") != MANIFEST_VERSION:
            raise StoreError(f"{self.url(run, stage, MANIFEST)} is not an rlpad manifest "
                             f"of version {MANIFEST_VERSION}")
        m["_sha256"] = hashlib.sha256(raw).hexdigest()
        return m

    def require(self, run: str, stage: str) -> "StageReader":
        m = self.manifest(run, stage)
        if m is None:
            script = script_for(stage)
            raise MissingStageError(
                f"stage {stage} has no complete output at {self.url(run, stage)}: "
                f"run `bash {script}` first (same RLPAD_STORE and RLPAD_RUN)")
        return StageReader(self, run, stage, m)

    def writer(self, run: str, stage: str) -> "StageWriter":
        return StageWriter(self, run, stage)

    # ---- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, run: str, stage: str, local_dir: str, step: int, info: dict) -> None:
        """Upload every file of local_dir as checkpoint <step>, COMPLETE.json last,
        then drop older checkpoints."""
        base = self.path(run, stage, f"_ckpt/{step:012d}")
        files = {}
        names = sorted(os.listdir(local_dir))
        for i, name in enumerate(names):
            if i == len(names) // 2:
                failpoints.hit("checkpoint.write")  # crash tests: a checkpoint half-written
            src = os.path.join(local_dir, name)
            files[name] = sha256_file(src)
            self.put_file(src, f"{base}/{name}")
        marker = {"step": step, "files": files, "info": info, "time": time.time()}
        self.write_bytes(f"{base}/COMPLETE.json", json.dumps(marker, indent=1).encode())
        for old in self._checkpoint_steps(run, stage):
            if old != step:
                self.rm(self.path(run, stage, f"_ckpt/{old:012d}"), recursive=True)

    def _checkpoint_steps(self, run: str, stage: str) -> list[int]:
        d = self.path(run, stage, "_ckpt")
        if not self.exists(d):
            return []
        steps = []
        with self._remote("listing", d):
            names = self.fs.ls(d, detail=False)
        for p in names:
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name.isdigit():
                steps.append(int(name))
        return sorted(steps)

    def load_checkpoint(self, run: str, stage: str, local_dir: str) -> dict | None:
        """Download the newest complete checkpoint into local_dir; its marker, or None."""
        for step in reversed(self._checkpoint_steps(run, stage)):
            base = self.path(run, stage, f"_ckpt/{step:012d}")
            if not self.exists(f"{base}/COMPLETE.json"):
                continue  # killed mid-write: not a checkpoint
            marker = json.loads(self.read_bytes(f"{base}/COMPLETE.json"))
            os.makedirs(local_dir, exist_ok=True)
            for name, digest in marker["files"].items():
                dst = os.path.join(local_dir, name)
                self.get_file(f"{base}/{name}", dst)
                if sha256_file(dst) != digest:
                    raise ChecksumError(f"checkpoint file {base}/{name} fails its checksum; "
                                        "rerun with --force to start over")
            return marker
        return None

    def clear_checkpoints(self, run: str, stage: str) -> None:
        self.rm(self.path(run, stage, "_ckpt"), recursive=True)


from .stage import StageReader, StageWriter  # noqa: E402  (they refer back to Store)
