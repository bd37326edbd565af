"""A running stage's status record, `<stage>/status.json`, beside the manifest that marks it done.

States: `running` (with a heartbeat and the latest progress line's numbers), `failed` (with the
one-line error) and `done`. A process killed outright writes nothing more, so a reader tells
it apart by the heartbeat: `running` whose heartbeat is older than a few intervals is
**stalled**. The manifest stays the one mark of a finished stage: `done` here only says the
writer got that far.

The record starts when a stage begins to write (`StageWriter.begin`), after its checks, so a
stage refused for bad input leaves the store as it was. A daemon thread rewrites it every
`RLPAD_HEARTBEAT_S` seconds (default 10); `Progress` lines report into the innermost record of
the process (`report_progress`).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import Store

STATUS = "status.json"
STATUS_FORMAT = "rlpad-status"
DEFAULT_HEARTBEAT_S = 10.0
FAILED_WRITE_S = 5.0  # the most a failed stage waits to record its failure
_ACTIVE: list["StageStatus"] = []  # this process's running stages, innermost last
_LOCK = threading.Lock()


def heartbeat_s() -> float:
    try:
        return max(0.1, float(os.environ.get("RLPAD_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)))
    except ValueError:
        return DEFAULT_HEARTBEAT_S


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StageStatus:
    """The status record of one stage while this process runs it."""

    def __init__(self, store: "Store", run: str, stage: str):
        self.store, self.run, self.stage = store, run, stage
        self.interval = heartbeat_s()
        self.record = {"format": STATUS_FORMAT, "run": run, "stage": stage, "state": "running",
                       "started_at": _now(), "started": time.time(), "heartbeat": time.time(),
                       "heartbeat_s": self.interval, "host": socket.gethostname(),
                       "pid": os.getpid(), "progress": None, "error": None}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "StageStatus":
        self._write()
        self._thread = threading.Thread(target=self._beat, name=f"rlpad-status-{self.stage}",
                                        daemon=True)
        self._thread.start()
        with _LOCK:
            _ACTIVE.append(self)
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._try_write()

    def _write(self) -> None:
        with _LOCK:
            self.record["heartbeat"] = time.time()
            data = json.dumps(self.record, indent=1).encode()
        self.store.write_bytes(self.store.path(self.run, self.stage, STATUS), data)

    def progress(self, info: dict) -> None:
        with _LOCK:
            self.record["progress"] = info

    def finish(self, state: str, error: str | None = None) -> None:
        """state: done or failed; writes the record once more and stops the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with _LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            self.record.update(state=state, error=error, finished_at=_now())
        if state == "done":
            self._write()
            return
        # A failure's record gets FAILED_WRITE_S: when the store is what failed, its client
        # would retry for ~35 s (gcsfs) before giving up on a record that cannot land, holding
        # the exit; a record that does not land reads as stalled once its heartbeat ages.
        t = threading.Thread(target=self._try_write, name=f"rlpad-status-{self.stage}-failed",
                             daemon=True)
        t.start()
        t.join(timeout=FAILED_WRITE_S)

    def _try_write(self) -> None:
        try:
            self._write()
        except Exception:  # a record that does not land reads as stalled; it must not kill the stage
            pass


def report_progress(label: str, done: int, total: int, unit: str, rate: float, eta_s: float,
                    info: dict) -> None:
    """What a progress line shows, into this process's innermost running stage (if any)."""
    if not _ACTIVE:
        return
    eta = eta_s if eta_s == eta_s and eta_s != float("inf") else None
    _ACTIVE[-1].progress({"label": label, "done": int(done), "total": int(total), "unit": unit,
                          "rate": float(rate), "eta_s": eta,
                          "info": {k: v for k, v in info.items()
                                   if isinstance(v, (int, float, str)) and v == v}})


def fail_running(error: BaseException | str) -> None:
    """Mark every stage this process is running as failed with the error's first line (what
    the CLI prints); an error of an unexpected type keeps its type's name in front."""
    if isinstance(error, BaseException):
        expected = isinstance(error, (ValueError, OSError)) or \
            type(error).__module__.startswith("rlpad.")
        text = str(error).strip()
        error = text if expected and text else f"{type(error).__name__}: {text}".rstrip(": ")
    line = error.strip().splitlines()[0] if error.strip() else "failed"
    for s in list(_ACTIVE)[::-1]:
        s.finish("failed", line)


def read_status(store: "Store", run: str, stage: str) -> dict | None:
    """The stage's status record; None when it has none; {"state": "damaged", ...} when it
    cannot be read."""
    p = store.path(run, stage, STATUS)
    try:
        if not store.exists(p):
            return None
        rec = json.loads(store.read_bytes(p))
    except Exception as e:
        return {"state": "damaged", "error": f"{STATUS} unreadable: {type(e).__name__}"}
    if not isinstance(rec, dict) or rec.get("format") != STATUS_FORMAT:
        return {"state": "damaged", "error": f"{STATUS} is not an rlpad status record"}
    return rec


def effective_state(rec: dict | None, has_manifest: bool, now: float | None = None,
                    stall_after_s: float | None = None) -> str:
    """done | running | stalled | failed | damaged | absent, from the manifest (first) and the
    status record. Stalled: running with a heartbeat older than `stall_after_s` (default three
    heartbeat intervals, at least 30 s)."""
    if has_manifest:
        return "done"
    if rec is None:
        return "absent"
    state = rec.get("state")
    if state == "running":
        now = time.time() if now is None else now
        limit = stall_after_s if stall_after_s is not None else \
            max(30.0, 3 * float(rec.get("heartbeat_s", DEFAULT_HEARTBEAT_S)))
        return "stalled" if now - float(rec.get("heartbeat", 0)) > limit else "running"
    if state == "done":  # the writer finished but the manifest is gone: not a result
        return "damaged"
    return state if state in ("failed", "damaged") else "damaged"
