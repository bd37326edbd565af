"""The artifact store: every byte a stage reads or writes goes through here.

Layout: <store>/<run>/<stage>/<files...> + manifest.json, written last.
A stage is done iff its manifest exists and every file matches its sha256.
Checkpoints live in <store>/<run>/<stage>/_ckpt/<step>/ with COMPLETE.json last,
so a killed stage resumes from the newest complete checkpoint.
Works on any fsspec URL: a local folder by default, gs://bucket/prefix for GCS.
"""
from __future__ import annotations

from .common import (MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, STAGES, ChecksumError,
                     MissingStageError, StoreError, git_revision, package_versions, script_for,
                     sha256_file, validate_run_id)
from .core import PROBE_TIMEOUT_S, Store
from .stage import StageReader, StageWriter

__all__ = ["MANIFEST", "MANIFEST_FORMAT", "MANIFEST_VERSION", "PROBE_TIMEOUT_S", "STAGES",
           "ChecksumError", "MissingStageError", "StageReader", "StageWriter", "Store",
           "StoreError", "git_revision", "package_versions", "script_for", "sha256_file",
           "validate_run_id"]
