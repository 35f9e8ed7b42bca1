"""The types the layers above the store name in their signatures: the session a use case runs
in (SQLAlchemy's, re-exported here so that nothing above the store imports SQLAlchemy) and the
progress callback long work reports to."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

__all__ = ["ProgressFn", "Session"]

ProgressFn = Callable[[int, int], None]
"""`progress(done, total)`: called as work advances (total may grow while it runs)."""
