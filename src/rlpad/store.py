"""The artifact store: every byte a stage reads or writes goes through here.

Layout: <store>/<run>/<stage>/<files...> + manifest.json, written last.
A stage is done iff its manifest exists and every file matches its sha256.
Checkpoints live in <store>/<run>/<stage>/_ckpt/<step>/ with COMPLETE.json last,
so a killed stage resumes from the newest complete checkpoint.
Works on any fsspec URL: a local folder by default, gs://bucket/prefix for GCS.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import fsspec
import fsspec.asyn
from fsspec.exceptions import FSTimeoutError

from . import failpoints

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "rlpad-manifest"
MANIFEST_VERSION = 1
STAGES = {  # stage folder -> the script that makes it
    "1-fit": "1-initial-fit.sh",
    "2-transform": "2-transform.sh",
    "3-fit-gan": "3-fit-gan.sh",
    "4-eval": "4-scaled-simple-eval.sh",
}
def script_for(stage: str) -> str:
    """The script that makes a stage folder ("1-fit" or an agent's "agents/3/1-fit")."""
    return STAGES.get(stage.rsplit("/", 1)[-1], stage)


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHUNK = 1 << 22
PROBE_TIMEOUT_S = 8.0  # Store.check(): a dead endpoint or missing bucket fails within this
_GCS = ("gs://", "gcs://")


class StoreError(RuntimeError):
    """A store problem a user can act on (missing stage, bad checksum, bad run id)."""


class ChecksumError(StoreError):
    pass


class MissingStageError(StoreError):
    pass


def validate_run_id(run: str) -> str:
    if not isinstance(run, str) or ".." in run or "/" in run or not _RUN_ID.match(run):
        raise StoreError(
            f"run id {run!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..' and no '/' (setting RLPAD_RUN)")
    return run


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("rlpad", "tensorflow-cpu", "tensorflow", "keras", "numpy", "gymnasium", "ale-py",
                "h5py", "pyspark", "fsspec", "gcsfs", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _emulator_url() -> str | None:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if host in ("", "default"):
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def _storage_options(uri: str) -> dict:
    if uri.startswith(_GCS):
        import aiohttp  # a gcsfs dependency; only needed for gs:// stores

        opts: dict = {
            # A store is shared by several processes (Spark workers, a resumed stage): a cached
            # listing could hide a manifest another process just wrote, so always ask.
            "use_listings_cache": False,
            # aiohttp's default caps a whole request at 5 min (too short for a big replay
            # file) and waits 30 s for a connect; bound the connect and the silences instead.
            "requests_timeout": aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                      sock_read=300),
        }
        # An emulator (STORAGE_EMULATOR_HOST) takes anonymous access; a real bucket uses
        # Application Default Credentials, asked for explicitly so gcsfs never silently
        # falls back to anonymous. Nothing here logs or stores a credential.
        emulator = _emulator_url()
        if emulator:
            # Explicit endpoint: filesystems for different emulators are cached apart.
            return {**opts, "token": "anon", "endpoint_url": emulator}
        return {**opts, "token": "google_default"}
    return {}


def _gcs_class() -> type:
    """The plain gcsfs filesystem unless the experimental one is asked for explicitly.
    gcsfs picks its default class at import time from GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT (the
    experimental one stalls 20-60 s per call on an emulator), so when gcsfs was imported
    before Store set that variable, choosing the class here still gets it right."""
    import gcsfs
    import gcsfs.core

    if os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false").lower() in ("true", "1"):
        return gcsfs.GCSFileSystem
    return gcsfs.core.GCSFileSystem


def _is_remote_error(e: BaseException) -> bool:
    """Transport, auth and server errors from gcsfs/aiohttp/google-auth (not a plain 404)."""
    if isinstance(e, FileNotFoundError):
        return False
    if isinstance(e, (OSError, asyncio.TimeoutError, TimeoutError)):
        return True
    mod = type(e).__module__ or ""
    return mod.startswith(("aiohttp", "gcsfs", "google.auth", "google.api_core", "requests",
                           "fsspec"))


def _auth_hint(e: BaseException) -> str:
    if (type(e).__module__ or "").startswith("google.auth"):
        return ("; no usable Google credentials: run `gcloud auth application-default login` "
                "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file")
    return ""


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

    def begin(self) -> None:
        """Invalidate any previous output first, so a crash can never leave an old
        manifest describing new files."""
        self.store.rm(self.store.path(self.run, self.stage, MANIFEST))

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
        self.store.write_bytes(self.store.path(self.run, self.stage, MANIFEST), data)
        manifest["_sha256"] = hashlib.sha256(data).hexdigest()
        return manifest
