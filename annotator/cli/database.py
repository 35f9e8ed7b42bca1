"""CLI commands for the database itself: `db upgrade`, `db current`."""

from __future__ import annotations

import click

from annotator.cli.common import Context, pass_ctx


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Bring the database to the current schema (creates it when absent)."""
    from annotator.store.db import current_revision, head_revision, maintenance
    from annotator.store.db import upgrade as run_upgrade

    with maintenance(ctx.db, create=True) as engine:
        before = current_revision(engine)
        run_upgrade(engine)
        after = current_revision(engine)
        head = head_revision(engine)
    if before == after:
        click.echo(f"database already at the current schema ({head})")
    else:
        click.echo(f"upgraded database from {before or 'empty'} to {after}")


@db.command()
@pass_ctx
def current(ctx: Context) -> None:
    """Print the database's schema revision and the one this annotator needs."""
    from annotator.store.db import current_revision, head_revision, maintenance

    with maintenance(ctx.db, create=False) as engine:
        current_rev, head = current_revision(engine), head_revision(engine)
    click.echo(f"database: {current_rev or 'empty'}; needed: {head}")
