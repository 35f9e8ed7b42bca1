"""Shared CLI plumbing: the context object (which database), opening the store, progress bars
and tables on stderr/stdout. Imports only click and rich at module level; the core is imported
inside functions so `annotator --help` stays fast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from annotator.context import Context, pass_ctx

if TYPE_CHECKING:  # a type only: the store stays off the path of `--help`
    from annotator.store.types import ProgressFn

__all__ = ["Context", "err", "pass_ctx", "print_table", "progress_bar"]


def err(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def progress_bar(description: str, unit: str = "images") -> Iterator[ProgressFn]:
    """A progress bar on stderr with a rate column; yields `update(done, total)`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f} {unit}/s")

        yield update


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console().print(table)
