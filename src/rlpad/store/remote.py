"""gs:// stores: storage options (credentials by Application Default Credentials, or an
emulator), the gcsfs class, and telling remote errors from plain missing files."""
from __future__ import annotations

import asyncio
import os

_GCS = ("gs://", "gcs://")


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
