"""What every command needs to know from the command line before it runs: which database, and
the one way a command opens it (`with ctx.session() as s:`, the engine disposed at the end; a
command that only reads figures: `with ctx.reader() as rows:`).
Shared by the CLI commands and the TUI's launch command, which never import each other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from annotator.store.db import Store
    from annotator.store.summary import Rows
    from annotator.store.types import Session


@dataclass
class Context:
    """The root command's options, handed to every subcommand."""

    db: str | None

    def store(self, create: bool = True) -> Store:
        from annotator.store.db import open_store

        return open_store(self.db, create=create)

    @contextmanager
    def session(self, *, create: bool = False, readonly: bool = False) -> Iterator[Session]:
        """One unit of work on the database: opens the store (an absent database is created
        only with `create`), yields a session (`readonly`: it never waits for a writer and may
        not write) and disposes the engine at the end, whatever happens."""
        store = self.store(create=create)
        try:
            with store.session(readonly=readonly) as session:
                yield session
        finally:
            store.close()

    @contextmanager
    def reader(self) -> Iterator[Rows]:
        """A look at the database for commands that only read figures (`stats`, `datasets`):
        `Rows` over one read transaction, without loading SQLAlchemy on a SQLite file
        (`annotator.store.quick`); an absent database is refused."""
        from annotator.store.quick import open_reader

        with open_reader(self.db) as rows:
            yield rows


pass_ctx = click.make_pass_decorator(Context)
