"""Opening a store: turning `--db` into an engine (SQLite pragmas: WAL, foreign keys, busy
timeout), running Alembic migrations, refusing a database whose schema is behind, and handing out
one session per unit of work. No engine exists at import time."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import (
    AnnotatorError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    StorageError,
)
from annotator.store.busy import WRITE_LOCKS, busy_error, is_busy, retry_busy

DEFAULT_DB = "annotator.db"
BUSY_TIMEOUT_MS = 30_000
READONLY = "annotator_readonly"  # execution option: a transaction that will not write


def resolve_url(db: str | None) -> str:
    """A file path or any SQLAlchemy URL; default `$ANNOTATOR_DB` or ./annotator.db. A URL
    that does not parse, names an unknown kind of database or a port out of range is refused."""
    db = db or os.environ.get("ANNOTATOR_DB") or DEFAULT_DB
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    try:
        url = make_url(db)
        url.get_dialect()
    except ArgumentError as exc:  # NoSuchModuleError included: an unknown dialect or driver
        kind = db.split("://", 1)[0]
        raise InvalidInputError(f"--db {_redacted(db)}: unknown kind of database {kind!r}") from exc
    except ValueError as exc:  # a port that is not a number
        raise InvalidInputError(f"--db {_redacted(db)}: the port is not a number") from exc
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidInputError(f"--db {_redacted(db)}: port {url.port} is out of range (1-65535)")
    return db


def _redacted(db: str) -> str:
    """A URL as typed, its password (user:PASSWORD@) replaced by ***."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", db)


def shown_url(url: str) -> str:
    """How a user sees the database in messages: a SQLite file's path; other URLs without the
    password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):  # a URI filename: left to SQLite
        return None
    return Path(parsed.database)


def require_database(url: str) -> None:
    """Refuse a SQLite path that does not exist, before connecting would create the file."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise NotFoundError(
            f"no database at {path}: create one with annotator init (or name it with --db)"
        )


def database_error(url: str, exc: BaseException) -> AnnotatorError | None:
    """SQLAlchemy's error on `url` as one line for the user: a file that is not a database, a
    full disk, a server that refuses; None for anything else (a constraint or an SQL error is
    a bug, and keeps its traceback)."""
    plain = type(exc) is DatabaseError  # sqlite3's "file is not a database"
    if not (plain or isinstance(exc, OperationalError | InterfaceError)):
        return None
    assert isinstance(exc, DBAPIError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    where = shown_url(url)
    if "full" in reason and "disk" in reason:
        return StorageError(
            f"database {where}: {reason}: the last change was rolled back; free some space "
            "and run the command again"
        )
    return StorageError(f"cannot use database {where}: {reason}")


def escaped_database_error(exc: BaseException, db: str | None) -> AnnotatorError | None:
    """`database_error` for an error that escaped a command run on `--db` `db`; None for an
    error that is not the database's."""
    return database_error(resolve_url(db), exc) if isinstance(exc, DBAPIError) else None


@contextmanager
def user_errors(url: str) -> Iterator[None]:
    """Within the block, SQLAlchemy's errors on `url` become one-line `StorageError`s."""
    try:
        yield
    except DBAPIError as exc:
        error = database_error(url, exc)
        if error is None:
            raise
        raise error from exc


@contextmanager
def maintenance(db: str | None, *, create: bool) -> Iterator[Engine]:
    """An engine on `db` for `db upgrade`/`db current` (no schema check); an absent SQLite file
    is refused unless `create`; database errors are one line; disposed at the end."""
    url = resolve_url(db)
    if not create:
        require_database(url)
    engine = make_engine(url)
    try:
        with user_errors(url):
            yield engine
    finally:
        engine.dispose()


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    def setup() -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")  # a new file's first connections race for this
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    retry_busy(setup, "connecting")


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite tuned for many readers and one writer at a time."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        _begin_immediate_writes(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ImportError as exc:
        raise MissingDependencyError(
            f"--db {shown_url(url)}: its driver is not installed ({exc.name or exc})"
        ) from exc


def _begin_immediate_writes(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, issue BEGIN, so transactions are real and savepoints work.

    A transaction takes the write lock at its start (BEGIN IMMEDIATE), so a writer waits its
    turn under the busy timeout: a deferred transaction that read first cannot wait for the
    lock (SQLite refuses it at once with "database is locked" once another writer committed
    since its read). Read-only sessions (`Store.session(readonly=True)`) stay deferred and
    never wait for writers. Taking the lock is retried while it stays busy (`retry_busy`)."""

    @event.listens_for(engine, "connect")
    def _no_autobegin(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(conn: Connection) -> None:
        WRITE_LOCKS.reading(conn.connection.dbapi_connection)  # type: ignore[arg-type]

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READONLY, False):
            WRITE_LOCKS.reading(conn.connection.dbapi_connection)  # type: ignore[arg-type]
            conn.exec_driver_sql("BEGIN")
            return
        WRITE_LOCKS.check(engine.url.database)
        retry_busy(lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"), "waiting to write")
        WRITE_LOCKS.opened(engine.url.database, conn.connection.dbapi_connection)  # type: ignore[arg-type]


def migrations_dir() -> Path:
    """The Alembic environment: inside the wheel, or the repository's `migrations/`."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise AnnotatorError("the migrations folder is missing from this installation")


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: no `alembic_version` table), read with one query."""
    with engine.connect() as conn:
        conn.execution_options(**{READONLY: True})  # a look: no write lock, no wait
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return found[0] if len(found) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (creates every table on an empty database)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def _has_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        conn.execution_options(**{READONLY: True})
        return bool(inspect(conn).get_table_names())


@dataclass
class Store:
    """An opened database: an engine plus a session factory."""

    engine: Engine
    factory: sessionmaker[Session]

    @cached_property
    def _reader(self) -> Engine:
        return self.engine.execution_options(**{READONLY: True})

    @contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """One session per unit of work; use-case functions commit, errors roll back.

        On SQLite every transaction of a session takes the write lock when it starts (writers
        wait their turn), so keep them short: commit before slow work that is not the
        database's. A session that only reads says `readonly=True`: it never waits for a
        writer, and may not write. A database still busy after the retries is one
        DatabaseBusyError."""
        session = self.factory(bind=self._reader) if readonly else self.factory()
        if readonly:
            event.listen(session, "before_flush", _refuse_writes)
        try:
            yield session
        except BaseException as exc:
            session.rollback()
            if is_busy(exc):
                raise busy_error("writing") from exc
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def reading(session: Session) -> None:
    """From here to its next commit, `session` only reads: the transaction (begun now; an open
    one is committed first) takes no write lock on SQLite, so slow work done meanwhile (FiftyOne,
    files) keeps no writer waiting. Commit before writing again."""
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={READONLY: True})


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    raise AnnotatorError("a read-only session cannot write (open it without readonly=True)")


def open_store(db: str | None = None, *, create: bool = True, check: bool = True) -> Store:
    """Open `db`; an empty or absent database gets the current schema when `create`.

    A database behind the code's schema is refused with the command that fixes it."""
    url = resolve_url(db)
    if not create:
        require_database(url)
    engine = make_engine(url)
    try:
        with user_errors(url):
            if not _has_tables(engine):
                if not create:
                    raise InvalidInputError(
                        f"no annotator database at {shown_url(url)}: run annotator init"
                    )
                upgrade(engine)
            elif check:
                _check_revision(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, sessionmaker(engine, expire_on_commit=False))


def _check_revision(engine: Engine) -> None:
    from annotator.store.quick import check_revision

    where = shown_url(engine.url.render_as_string(hide_password=False))
    check_revision(current_revision(engine), where)
