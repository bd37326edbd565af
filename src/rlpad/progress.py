"""A small progress line for long loops: done/total, rate, ETA, and a few live numbers."""
from __future__ import annotations

import sys
import time

from .store.status import report_progress


def fmt_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Prints at most every `every_s` seconds; redraws in place on a terminal,
    one line per update otherwise (CI logs stay readable)."""

    def __init__(self, total: int, label: str, unit: str = "steps", start: int = 0,
                 every_s: float = 2.0, stream=None):
        self.total, self.label, self.unit = total, label, unit
        self.start = self.done = start
        self.t0 = self.last = time.time()
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def rate(self) -> float:
        dt = time.time() - self.t0
        return (self.done - self.start) / dt if dt > 0 else 0.0

    def update(self, done: int, force: bool = False, **info) -> None:
        self.done = done
        now = time.time()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        rate = self.rate()
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        report_progress(self.label, done, self.total, self.unit, rate, eta, info)
        pct = 100.0 * done / max(self.total, 1)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in info.items())
        line = (f"[{self.label}] {done:,}/{self.total:,} {self.unit} ({pct:.0f}%) "
                f"{rate:,.1f} {self.unit}/s ETA {fmt_duration(eta)} {extra}")
        self.stream.write(("\r" + line.ljust(110)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self, **info) -> None:
        self.update(self.done, force=True, **info)
        if self.tty:
            self.stream.write("\n")
