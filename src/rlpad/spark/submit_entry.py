"""The script spark-submit runs (see launch.spark_submit_command): hands over to rlpad.cli."""
from __future__ import annotations

import sys
from pathlib import Path


def _main() -> int:
    # spark-submit runs this file as a script, which puts src/rlpad/spark/ first on sys.path;
    # drop it so rlpad.spark's module names (settings, session...) can never shadow top-level ones.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != here]
    from rlpad.cli import main
    rc = main()
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(_main())
