"""Which plotly.js the dashboard's graphs load: plotly.js's 1.2 MB "basic" build when installed.

A Dash graph loads the full plotly.js the plotly package ships (4.8 MB) the first time a page
draws one; parsing it made the first visit to a 1,000-trial study page take 4.2 s on a 2-core
AMD EPYC (bench/dashboard_render.py). The dashboard draws only scatter and bar traces, which
the basic build (npm `plotly.js-basic-dist-min`: scatter, bar, pie) holds: 1.7-2.0 s.
`scripts/plotly-bundle.sh` (run by build.sh) installs it where `default_path()` points, pinned
to the plotly.js version the locked plotly package ships; it is served only when its sha256 is
the pinned one, else the full build is, with one line saying why.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Callable

NPM_PACKAGE = "plotly.js-basic-dist-min"
VERSION = "4.1.1"  # = plotly.offline.get_plotlyjs_version() of the locked plotly
FILE = "plotly-basic.min.js"
SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"
TRACES = ("scatter", "bar")  # what figures.py draws; the basic build has both


def default_path() -> Path:
    """Beside the environment rlpad runs in (the .venv build.sh makes)."""
    return Path(sys.prefix) / "share" / "rlpad" / f"plotly-basic-{VERSION}.min.js"


def load(log: Callable[[str], None] = print) -> bytes | None:
    """The basic build's bytes if installed and checked, else None (the full build serves)."""
    path = Path(os.environ.get("RLPAD_PLOTLY_BUNDLE") or default_path())
    if not path.is_file():
        log(f"rlpad dashboard: plotly.js basic {VERSION} is not installed at {path} "
            "(bash build.sh installs it with npm); graphs load the full plotly.js")
        return None
    from plotly.offline import get_plotlyjs_version

    if get_plotlyjs_version() != VERSION:
        log(f"rlpad dashboard: the plotly package ships plotly.js {get_plotlyjs_version()}, the "
            f"basic build at {path} is {VERSION}; graphs load the full plotly.js")
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        log(f"rlpad dashboard: {path} is not plotly.js basic {VERSION} (sha256 differs): "
            "ignored; graphs load the full plotly.js")
        return None
    return data
