"""Benchmark peers, each in its own pinned virtual environment, never beside TensorFlow.

`peer_python("sb3")` returns the interpreter of `.venv-peers/sb3`, made on first use from
`bench/peers/sb3.txt` (about 30 s with a warm pip cache; remade when that file changes).
`run_worker` runs a bench script's worker there and tells a missing or crashed peer apart
from a result. Ahead of time: `.venv/bin/python bench/peers.py sb3`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = {"sb3": ROOT / "bench" / "peers" / "sb3.txt"}
VENVS = ROOT / ".venv-peers"


class PeerUnavailable(RuntimeError):
    """The peer's environment could not be made (no network, no matching wheel...)."""


def _base_python() -> str:
    # The interpreter .venv was made from: the peer gets the same Python version.
    return getattr(sys, "_base_executable", "") or shutil.which("python3") or sys.executable


def peer_python(name: str, log=print) -> str:
    req = REQUIREMENTS[name]
    venv = VENVS / name
    py = venv / "bin" / "python"
    want = hashlib.sha256(req.read_bytes()).hexdigest()[:16]
    stamp = venv / ".rlpad-peer"
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return str(py)
    log(f"peers: making {venv.relative_to(ROOT)} from {req.relative_to(ROOT)} (one time)")
    if venv.exists():
        shutil.rmtree(venv)
    try:
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)], check=True,
                       capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(venv, ignore_errors=True)
        tail = (e.stderr or "").strip().splitlines()[-3:] if isinstance(e.stderr, str) else []
        raise PeerUnavailable(f"peer {name!r}: could not make {venv}: {' | '.join(tail)}") from None
    stamp.write_text(want)
    return str(py)


def step_clock(base_callback: type, start: int, stop: int):
    """A Stable-Baselines3 callback (pass its BaseCallback: SB3 is only importable in the peer's
    environment) that notes perf_counter() at agent steps `start` and `stop`: .t0, .t1."""
    import time

    class Clock(base_callback):
        def __init__(self):
            super().__init__()
            self.t0 = self.t1 = None

        def _on_step(self) -> bool:
            if self.num_timesteps == start:
                self.t0 = time.perf_counter()
            if self.num_timesteps == stop:
                self.t1 = time.perf_counter()
            return True

    return Clock()


def minatar_cnn(base_extractor: type, nn):
    """MinAtar's own DQN net below its output layer (examples/dqn.py: conv 16 3x3 stride 1,
    dense 128), as an SB3 features extractor (pass BaseFeaturesExtractor and torch.nn: they
    import only in the peer's environment)."""

    class MinAtarCNN(base_extractor):
        def __init__(self, space, features_dim: int = 128):
            super().__init__(space, features_dim)
            h, w, ch = space.shape
            self.net = nn.Sequential(nn.Conv2d(ch, 16, 3, 1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(16 * (h - 2) * (w - 2), features_dim), nn.ReLU())

        def forward(self, x):
            return self.net(x.permute(0, 3, 1, 2).float())

    return MinAtarCNN


def versions(name: str) -> dict[str, str]:
    """The peer environment's installed packages (name -> version)."""
    out = subprocess.run([peer_python(name), "-m", "pip", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


def run_worker(name: str, script: str, args: list[str], timeout: float | None = None) -> dict:
    """Run `script --worker ...` in peer `name`'s environment; its last stdout line is JSON.
    Returns that dict, or {"missing": why} / {"crashed": why} instead of raising."""
    try:
        py = peer_python(name)
    except PeerUnavailable as e:
        return {"missing": str(e)}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run([py, script, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if p.returncode != 0:
        how = (f"killed by {signal.Signals(-p.returncode).name}" if p.returncode < 0
               else f"exit {p.returncode}")
        tail = " | ".join(p.stderr.strip().splitlines()[-3:])
        return {"crashed": f"peer {name!r} worker {how}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    for peer in sys.argv[1:] or sorted(REQUIREMENTS):
        print(f"{peer}: {peer_python(peer)}")
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(versions(peer).items())
                               if k in ("stable-baselines3", "torch", "gymnasium", "ale-py", "numpy")))
