"""What every part of the store shares: stage names and their scripts, run ids, errors,
checksums and the provenance a manifest records."""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

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
    name = stage.rsplit("/", 1)[-1]
    if name.startswith("3-fit-gan-"):  # another generator kind's stage-3 folder
        name = "3-fit-gan"
    return STAGES.get(name, stage)


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHUNK = 1 << 22


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
