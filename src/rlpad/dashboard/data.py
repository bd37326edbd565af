"""What the dashboard knows about a store, read-only: runs, agents, stages, their state.

A finished stage's numbers come from its manifest, and every file a page shows is checked
against the manifest's sha256 before it is parsed; parsed manifests and files are cached by
the sha256 of their bytes, so a big store is parsed once and a changed file is seen at once.
A damaged or missing file becomes a `Damaged` value with the reason, never an exception.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..store import MANIFEST, Store, StoreError
from ..store.status import effective_state, read_status

STAGE_ORDER = ("1-fit", "2-transform", "3-fit-gan", "4-eval")
AGENT_STAGES = ("1-fit", "2-transform", "3-fit-gan")


@dataclass(frozen=True)
class Damaged:
    """A file or record that could not be used, and why (shown on the page as such)."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass
class StageView:
    path: str                     # the stage's folder under the run, e.g. agents/2/1-fit
    state: str                    # done | running | stalled | failed | damaged | absent
    manifest: dict | None = None
    status: dict | None = None
    checkpoint_step: int | None = None
    problem: str | None = None    # why it is damaged or failed

    @property
    def metrics(self) -> dict:
        return (self.manifest or {}).get("metrics", {})

    @property
    def wall_s(self) -> float | None:
        if self.manifest:
            return self.manifest.get("wall_time_s")
        if self.status and self.status.get("started"):
            return float(self.status.get("heartbeat", 0)) - float(self.status["started"])
        return None

    @property
    def progress(self) -> dict | None:
        return (self.status or {}).get("progress") if self.state != "done" else None


@dataclass
class RunView:
    name: str
    agents: list[int | None]                       # None: a single agent at the run's top
    stages: dict[tuple[int | None, str], StageView] = field(default_factory=dict)
    eval: StageView | None = None

    def prefix(self, agent: int | None) -> str:
        return "" if agent is None else f"agents/{agent}/"

    def agent_stages(self, agent: int | None) -> list[StageView]:
        return [v for (a, _), v in sorted(self.stages.items(), key=lambda kv: _stage_key(kv[0][1]))
                if a == agent]

    def stage(self, agent: int | None, name: str) -> StageView | None:
        return self.stages.get((agent, name))

    def first_config(self) -> dict:
        for a in self.agents:
            v = self.stage(a, "1-fit")
            if v and v.manifest:
                return v.manifest.get("config", {})
        return {}

    @property
    def game(self) -> str:
        cfg = self.first_config()
        return cfg.get("env", {}).get("id") or "?"

    @property
    def learner(self) -> str:
        return self.first_config().get("learner", {}).get("kind", "dqn") if self.first_config() else "?"

    def states(self) -> list[str]:
        out = [v.state for v in self.stages.values()]
        return out + ([self.eval.state] if self.eval else [])

    def signature(self) -> str:
        """Changes when any stage's state, manifest, heartbeat or checkpoint changes: what
        a page polls to know it must redraw."""
        parts = []
        for v in [*self.stages.values(), *([self.eval] if self.eval else [])]:
            parts.append((v.path, v.state, (v.manifest or {}).get("_sha256"), v.checkpoint_step,
                          (v.status or {}).get("heartbeat")))
        return hashlib.sha256(json.dumps(sorted(parts, key=str)).encode()).hexdigest()[:16]


def _stage_key(name: str) -> tuple:
    return (name.split("-", 1)[0].isdigit() is False, name)


def _is_stage(name: str) -> bool:
    head = name.split("-", 1)[0]
    return (head.isdigit() and "-" in name) or name == "play"


class StoreView:
    """The dashboard's read-only view of one store."""

    def __init__(self, uri: str, stall_after_s: float | None = None):
        if "://" not in uri and not os.path.isdir(uri):
            raise StoreError(f"store folder {uri!r} does not exist (option --store / "
                             "RLPAD_STORE): the dashboard only reads stores")
        self.store = Store(uri)
        self.uri = uri
        self.stall_after_s = stall_after_s
        self._parsed: dict[tuple[str, str], object] = {}  # (kind, sha256) -> parsed value
        self._local = threading.local()

    # ---- listing ------------------------------------------------------------------------
    def _ls(self, path: str) -> list[str]:
        try:
            if self.store.is_local:
                with os.scandir(path) as it:
                    return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
            return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1]
                          for e in self.store.fs.ls(path, detail=True, refresh=True)
                          if e.get("type") == "directory")
        except (FileNotFoundError, NotADirectoryError):
            return []

    def refresh(self) -> None:
        """Forget a remote store's cached listings (a page must see what changed since)."""
        if not self.store.is_local:
            self.store.fs.invalidate_cache()

    def runs(self) -> list[str]:
        memo = getattr(self._local, "memo", None)
        if memo is not None and "\0runs" in memo:
            return memo["\0runs"]
        self.refresh()
        out = []
        for name in self._ls(self.store.root):
            kids = self._ls(f"{self.store.root}/{name}")
            if "agents" in kids or any(_is_stage(k) for k in kids):
                out.append(name)
        if memo is not None:
            memo["\0runs"] = out
        return out

    # ---- reading, cached by content hash --------------------------------------------------
    def _bytes(self, path: str) -> bytes | None:
        try:
            return self.store.read_bytes(path)
        except FileNotFoundError:
            return None

    def _parse(self, kind: str, data: bytes, fn):
        key = (kind, hashlib.sha256(data).hexdigest())
        if key not in self._parsed:
            if len(self._parsed) > 20_000:
                self._parsed.clear()
            self._parsed[key] = fn(data)
        return self._parsed[key]

    def manifest(self, run: str, stage: str) -> dict | Damaged | None:
        raw = self._bytes(self.store.path(run, stage, MANIFEST))
        if raw is None:
            return None

        def parse(data: bytes):
            try:
                m = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return Damaged(f"{stage}/{MANIFEST} is corrupt ({type(e).__name__})")
            if not isinstance(m, dict) or m.get("format") != "rlpad-manifest":
                return Damaged(f"{stage}/{MANIFEST} is not an rlpad manifest")
            m["_sha256"] = hashlib.sha256(data).hexdigest()
            return m

        return self._parse("manifest", raw, parse)

    def file(self, run: str, view: StageView, name: str, kind: str = "bytes"):
        """A file of a finished stage, verified against its manifest, parsed as `kind`
        (bytes | json | csv | text); a Damaged value when it is missing, altered or bad."""
        m = view.manifest
        if not m:
            return Damaged(f"{view.path} has no manifest")
        entry = m.get("files", {}).get(name)
        if entry is None:
            return Damaged(f"{view.path}/{name} is not in its manifest")
        raw = self._bytes(self.store.path(run, view.path, name))
        if raw is None:
            return Damaged(f"{view.path}/{name} is missing")
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            return Damaged(f"{view.path}/{name} fails its checksum (changed or corrupt)")
        return self._parse(kind, raw, PARSERS[kind])

    def live_curve(self, run: str, view: StageView) -> list[dict]:
        """A running stage 1's learning curve so far, from its newest complete checkpoint
        (loop.json, checked against the checkpoint's own marker)."""
        if view.checkpoint_step is None:
            return []
        base = self.store.path(run, view.path, f"_ckpt/{view.checkpoint_step:012d}")
        marker, loop = self._bytes(f"{base}/COMPLETE.json"), self._bytes(f"{base}/loop.json")
        try:
            want = json.loads(marker)["files"]["loop.json"]
        except Exception:
            return []
        if loop is None or hashlib.sha256(loop).hexdigest() != want:
            return []
        curve = self._parse("json", loop, PARSERS["json"])
        return curve.get("curve", []) if isinstance(curve, dict) else []

    # ---- stages and runs -------------------------------------------------------------------
    def _checkpoint_step(self, run: str, stage: str) -> int | None:
        steps = [int(n) for n in self._ls(self.store.path(run, stage, "_ckpt")) if n.isdigit()]
        for s in sorted(steps, reverse=True):
            if self.store.exists(self.store.path(run, stage, f"_ckpt/{s:012d}/COMPLETE.json")):
                return s
        return None

    def stage_view(self, run: str, stage: str) -> StageView:
        try:
            m = self.manifest(run, stage)
            # a manifest is the one mark of done: its status record need not be read
            status = None if isinstance(m, dict) else read_status(self.store, run, stage)
        except StoreError as e:
            return StageView(stage, "damaged", problem=str(e).splitlines()[0])
        if isinstance(m, Damaged):
            return StageView(stage, "damaged", status=status if isinstance(status, dict) else None,
                             problem=m.reason)
        state = effective_state(status, m is not None, time.time(), self.stall_after_s)
        view = StageView(stage, state, manifest=m, status=status)
        if state == "failed":
            view.problem = (status or {}).get("error")
        elif state == "damaged":
            view.problem = (status or {}).get("error") or "finished without its manifest"
        if state != "done":
            view.checkpoint_step = self._checkpoint_step(run, stage)
        return view

    @contextmanager
    def snapshot(self):
        """Within it, this thread sees each run once: one page (its poll, its layout, its
        tables) reads the store once, however many parts ask."""
        self._local.memo = {}
        try:
            yield self
        finally:
            self._local.memo = None

    def run_view(self, run: str, refresh: bool = True) -> RunView:
        memo = getattr(self._local, "memo", None)
        if memo is not None and run in memo:
            return memo[run]
        rv = self._run_view(run, refresh)
        if memo is not None:
            memo[run] = rv
        return rv

    def _run_view(self, run: str, refresh: bool) -> RunView:
        if refresh:
            self.refresh()
        kids = self._ls(f"{self.store.root}/{run}")
        if "agents" in kids:
            seeds = sorted(int(s) for s in self._ls(f"{self.store.root}/{run}/agents") if s.isdigit())
            agents: list[int | None] = list(seeds)
        else:
            agents = [None]
        rv = RunView(run, agents)
        for a in agents:
            prefix = rv.prefix(a)
            names = kids if a is None else self._ls(f"{self.store.root}/{run}/agents/{a}")
            for name in names:
                if _is_stage(name) and name != "4-eval":
                    rv.stages[(a, name)] = self.stage_view(run, prefix + name)
        if "4-eval" in kids:
            rv.eval = self.stage_view(run, "4-eval")
        return rv


def _csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _json(data: bytes):
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return Damaged(f"not JSON ({type(e).__name__})")


PARSERS = {"bytes": lambda d: d, "json": _json, "csv": _csv, "text": lambda d: d.decode()}


def summarize_states(states: list[str]) -> str:
    """'done 2/2', 'running 1 · done 1/2', 'failed 1 · done 1/2', '—'."""
    if not states:
        return "—"
    n = len(states)
    parts = [f"{s} {states.count(s)}" for s in ("failed", "stalled", "damaged", "running")
             if s in states]
    return " · ".join(parts + [f"done {states.count('done')}/{n}"])


def fnum(x, fmt: str = ".1f") -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if x != x else format(x, fmt)
