"""What the benchmarks that time whole CLI processes do first: compile the checkout's package to
bytecode, as Python does on the first run of an install (and pip at install time), so each timed
process starts as a user's does. Without it, an environment that sets PYTHONDONTWRITEBYTECODE
(or a read-only checkout) compiles every module of the package again in every timed process:
about 0.25 s of an `export coco` at 10,000 images on the 2-core test machine."""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_package(checkout: Path) -> None:
    """Write the bytecode of `checkout`'s `annotator` package (its `__pycache__` folders)."""
    if not compileall.compile_dir(checkout / "annotator", quiet=1):
        raise SystemExit(f"cannot compile {checkout / 'annotator'}")
