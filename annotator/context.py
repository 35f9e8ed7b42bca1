"""What every command needs to know from the command line before it runs: which database.
Shared by the CLI commands and the TUI's launch command, which never import each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from annotator.store.db import Store


@dataclass
class Context:
    """The root command's options, handed to every subcommand."""

    db: str | None

    def store(self, create: bool = True) -> Store:
        from annotator.store.db import open_store

        return open_store(self.db, create=create)


pass_ctx = click.make_pass_decorator(Context)
