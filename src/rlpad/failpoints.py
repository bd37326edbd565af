"""Named kill points for crash tests (after the failpoints of etcd and TiKV).

`RLPAD_FAILPOINTS="1-fit.eval=3,checkpoint.write=2"` makes this process SIGKILL itself the
3rd time it reaches `hit("1-fit.eval")`, or the 2nd time it reaches `hit("checkpoint.write")`.
A test can so kill a stage inside an evaluation or halfway through a checkpoint, where a
timed kill lands only by luck. Unset (always, outside tests), `hit` is one truth test.
"""
from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("RLPAD_FAILPOINTS", "")
_AT: dict[str, int] = {}
for _part in filter(None, (p.strip() for p in _SPEC.split(","))):
    _name, _, _n = _part.partition("=")
    _AT[_name.strip()] = int(_n or 1)
_SEEN: dict[str, int] = {}


def hit(name: str) -> None:
    if not _AT or name not in _AT:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == _AT[name]:
        os.kill(os.getpid(), signal.SIGKILL)
