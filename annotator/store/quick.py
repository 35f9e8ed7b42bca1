"""Reading a database for the commands that only look (`stats`, `datasets`) without loading
SQLAlchemy: a SQLite file is opened with the standard library's sqlite3 (never created, never
written: `mode=rw` so the last one out still removes the write-ahead log, plus `query_only`),
its schema revision read from `alembic_version` and compared with `annotator.store.revisions`,
and every query runs in one read transaction (a snapshot; it never waits for a writer). Any
other database, and a file sqlite3 cannot open as expected, goes through the usual store
(`annotator.store.db`), so its errors read as they always did. The queries themselves live in
`annotator.store.summary`. Imports only the standard library and `annotator.errors`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annotator.errors import InvalidInputError, NotFoundError, SchemaOutdatedError, StorageError
from annotator.store import revisions
from annotator.store.summary import Rows, session_rows

DEFAULT_DB = "annotator.db"  # as annotator.store.db.DEFAULT_DB
BUSY_TIMEOUT_S = 30.0  # as annotator.store.db.BUSY_TIMEOUT_MS
USER_TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite~_%' ESCAPE '~'"
)


def sqlite_file(db: str | None) -> Path | None:
    """The file `--db` names when it is a plain SQLite file (a path, or a `sqlite:///` URL
    with nothing to decode), as messages name it; None for any other database."""
    db = db or os.environ.get("ANNOTATOR_DB") or DEFAULT_DB
    if not db.startswith("sqlite:///"):
        return None if "://" in db else Path(db).expanduser().resolve()
    name = db.removeprefix("sqlite:///")  # as the store names it: not resolved
    if not name or any(ch in name for ch in "?%") or name.startswith("file:") or name == ":memory:":
        return None
    return Path(name)


def check_revision(current: str | None, where: str) -> None:
    """Refuse a database whose schema revision (`current`, None: none recorded) is not the one
    this annotator writes, saying what fixes it."""
    head = revisions.HEAD
    if current == head:
        return
    if current is None:
        raise InvalidInputError(f"{where} is not an annotator database")
    if current not in revisions.KNOWN:
        raise SchemaOutdatedError(
            f"database schema {current} was written by a newer annotator (this one knows up "
            f"to {head}): upgrade annotator"
        )
    raise SchemaOutdatedError(
        f"database schema is at revision {current}, this annotator needs {head}: "
        "run: annotator db upgrade"
    )


@contextmanager
def open_reader(db: str | None) -> Iterator[Rows]:
    """`Rows` over database `db` (`--db`; absent: $ANNOTATOR_DB or ./annotator.db), in one
    read transaction; the database is closed at the end. An absent SQLite file is refused."""
    path = sqlite_file(db)
    if path is not None and not path.exists():
        raise NotFoundError(
            f"no database at {path}: create one with annotator init (or name it with --db)"
        )
    conn = _connect(path) if path is not None else None
    if conn is None:
        with _store_reader(db) as rows:
            yield rows
        return
    assert path is not None
    try:
        yield _sqlite_rows(conn, path)
    finally:
        conn.close()


@contextmanager
def _store_reader(db: str | None) -> Iterator[Rows]:
    """`Rows` over a read-only session of the usual store (SQLAlchemy)."""
    from annotator.store.db import open_store

    store = open_store(db, create=False)
    try:
        with store.session(readonly=True) as session:
            yield session_rows(session)
    finally:
        store.close()


def _connect(path: Path) -> sqlite3.Connection | None:
    """A connection on `path` in a read transaction, its schema checked; None when sqlite3
    cannot read it (the usual store then says why)."""
    try:
        conn = sqlite3.connect(
            path.resolve().as_uri() + "?mode=rw",
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")
        check_revision(_revision(conn, path), str(path))
    except sqlite3.Error:
        conn.close()
        return None
    except BaseException:
        conn.close()
        raise
    return conn


def _revision(conn: sqlite3.Connection, path: Path) -> str | None:
    """The schema revision recorded in the database (None: no `alembic_version` table, or not
    exactly one row in it); a database without tables is refused."""
    tables = {name for (name,) in conn.execute(USER_TABLES)}
    if not tables:
        raise InvalidInputError(f"no annotator database at {path}: run annotator init")
    if "alembic_version" not in tables:
        return None
    found = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return str(found[0][0]) if len(found) == 1 else None


def _sqlite_rows(conn: sqlite3.Connection, path: Path) -> Rows:
    def run(sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if not _the_databases(exc):
                raise  # a wrong query is a bug: its traceback is what a report needs
            raise StorageError(f"cannot use database {path}: {exc}") from exc

    return run


def _the_databases(exc: sqlite3.DatabaseError) -> bool:
    """The database's fault (a damaged file, a failing disk), not the query's: as the store
    tells them apart (`annotator.store.db.database_error`)."""
    return type(exc) is sqlite3.DatabaseError or isinstance(exc, sqlite3.OperationalError)
