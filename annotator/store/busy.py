"""Waiting for a busy SQLite database: recognising "database is locked" and retrying the step
that hit it (taking the write lock, setting up a connection) with growing pauses, a bounded
number of times, before one clear `DatabaseBusyError`. Each try already waits up to SQLite's busy
timeout; the retries cover a writer that holds the lock longer than that, and the few places
where SQLite answers "busy" without waiting. Only steps that change nothing are retried: a
transaction's work is never replayed here."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from annotator.errors import DatabaseBusyError

T = TypeVar("T")

BUSY_TRIES = 3
FIRST_PAUSE_S = 0.05
LONGEST_PAUSE_S = 2.0
BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" (or busy), raw or wrapped by SQLAlchemy."""
    raw = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(raw, sqlite3.OperationalError):
        return False
    text = str(raw).lower()
    return any(words in text for words in BUSY_WORDS)


def pauses(
    tries: int, first: float = FIRST_PAUSE_S, longest: float = LONGEST_PAUSE_S
) -> list[float]:
    """The pauses between `tries` tries: doubling from `first` up to `longest`, each with up to
    half of it added at random so that waiting writers do not wake in step."""
    return [min(first * 2**n, longest) * (1 + random.random() / 2) for n in range(tries - 1)]


def retry_busy(step: Callable[[], T], what: str, tries: int | None = None) -> T:
    """`step()`, tried again after a pause while the database is busy; after `tries` tries
    (default BUSY_TRIES) a DatabaseBusyError saying `what` could not be done."""
    tries = BUSY_TRIES if tries is None else tries
    for pause in [*pauses(tries), None]:
        try:
            return step()
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not is_busy(exc):
                raise
            if pause is None:
                raise busy_error(what, tries) from exc
        time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


class WriteLocks:
    """The SQLite connections whose write transactions each thread has open. A thread that
    starts a second one on the same file while the first is open would wait for itself until
    the busy timeout ran out, three times: it is refused at once instead (a program error:
    a helper opened a session of its own inside another's; it should take the session, or
    read with `readonly=True`)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def check(self, database: str | None) -> None:
        held: list[tuple[str | None, sqlite3.Connection]] = getattr(self._local, "held", [])
        self._local.held = held = [(db, conn) for db, conn in held if _writing(conn)]
        if database not in (None, "", ":memory:") and any(db == database for db, _ in held):
            raise RuntimeError(
                f"this thread already writes to {database} in another session: a second write "
                "transaction would wait for the first forever (open it with readonly=True, or "
                "pass the open session)"
            )

    def opened(self, database: str | None, conn: sqlite3.Connection) -> None:
        self._local.held.append((database, conn))

    def reading(self, conn: sqlite3.Connection) -> None:
        """`conn` ended its write transaction (or, back from the pool, begins a read-only one):
        it writes no more. A connection stays listed only while its write is open, so a pooled
        connection that another thread takes later is never counted against this one."""
        held = getattr(self._local, "held", [])
        self._local.held = [(db, c) for db, c in held if c is not conn]


WRITE_LOCKS = WriteLocks()


def _writing(conn: sqlite3.Connection) -> bool:
    try:
        return conn.in_transaction
    except sqlite3.ProgrammingError:  # closed since (its engine was disposed)
        return False


def busy_error(what: str, tries: int = 1) -> DatabaseBusyError:
    """The one line a user reads when another program kept the database busy too long."""
    times = f" ({tries} tries)" if tries > 1 else ""
    return DatabaseBusyError(
        f"the database stayed busy while {what}{times}: another program is writing to it "
        "(a long import or prelabel run?); what was being written was rolled back, try again"
    )
