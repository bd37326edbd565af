"""A throwaway in-memory GCS emulator (gcp-storage-emulator) for tests.

Import this module before anything imports gcsfs: gcsfs picks its filesystem class at import
time from GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT, and its experimental class stalls 20-60 s per
call against an emulator. If gcsfs was imported earlier anyway, ensure_plain_gcsfs() points
fsspec's gs:// back at the plain class (rlpad.store.Store picks the plain class itself).

    with GcsEmulator(bucket="rlpad-test") as emu:
        os.environ.update(emu.env())
        Store(f"gs://{emu.bucket}/runs")

or, in a test module, the fixtures below:

    from gcs_emulator import gcs_emulator, gcs_uri  # noqa: F401  (pytest finds them by name)
    def test_x(gcs_uri): Store(gcs_uri) ...
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ZB_HNS = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"
os.environ[ZB_HNS] = "false"  # at import, i.e. at test collection, before gcsfs loads

REPO = Path(__file__).resolve().parents[1]


def emulator_executable() -> str | None:
    """The venv's emulator if there is one (what `pip install -e .[test]` made), else PATH's."""
    venv = REPO / ".venv" / "bin" / "gcp-storage-emulator"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which("gcp-storage-emulator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_plain_gcsfs() -> bool:
    """Make fsspec's gs:// use gcsfs's plain class even if gcsfs was imported before
    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set. True when a fix was needed."""
    if "gcsfs" not in sys.modules:
        return False
    import fsspec
    import gcsfs
    import gcsfs.core

    if gcsfs.GCSFileSystem is gcsfs.core.GCSFileSystem:
        return False  # imported after the setting: nothing to fix
    if fsspec.get_filesystem_class("gs") is gcsfs.core.GCSFileSystem:
        return False  # fixed already
    for proto in ("gs", "gcs"):
        fsspec.register_implementation(proto, gcsfs.core.GCSFileSystem, clobber=True)
    return True


class GcsEmulator:
    """One emulator process on 127.0.0.1:<free port>, in memory, with one bucket."""

    def __init__(self, bucket: str = "rlpad-test", port: int | None = None,
                 start_timeout: float = 20.0):
        self.bucket = bucket
        self.port = port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url, ZB_HNS: "false"}

    def start(self) -> "GcsEmulator":
        exe = emulator_executable()
        if exe is None:
            raise RuntimeError("gcp-storage-emulator not found (pip install -e '.[test]')")
        fixed = self.port is not None
        for attempt in range(3):  # a free port can be taken between probe and bind
            if not fixed:
                self.port = free_port()
            self._log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                [exe, "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory",
                 "-q"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True)  # a Ctrl-C on pytest must not hit it mid-test
            if self._wait_ready():
                self.create_bucket(self.bucket)
                return self
            log = self.log_text()
            self.stop()
            if fixed or attempt == 2:
                raise RuntimeError(f"gcp-storage-emulator did not start on {self.url}:\n{log}")
        raise AssertionError("unreachable")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        return False

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test", method="POST",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()

    def log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would; the in-memory data is gone with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "GcsEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One emulator per test module; STORAGE_EMULATOR_HOST points at it while it lives."""
    if emulator_executable() is None:
        pytest.skip("gcp-storage-emulator is not installed")
    ensure_plain_gcsfs()
    with GcsEmulator(bucket="rlpad-test") as emu, pytest.MonkeyPatch.context() as mp:
        for k, v in emu.env().items():
            mp.setenv(k, v)
        yield emu


@pytest.fixture
def gcs_uri(gcs_emulator: GcsEmulator, request: pytest.FixtureRequest) -> str:
    """A fresh gs:// prefix per test: tests share the emulator but not their objects."""
    return f"gs://{gcs_emulator.bucket}/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
