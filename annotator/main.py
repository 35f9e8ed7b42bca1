"""The `annotator` entry point: the root command group that gathers the CLI commands
(`annotator.cli.*`) and the TUI's launch command (`annotator.tui.command`), imported on demand so
`annotator --help` loads neither torch, fiftyone nor textual. User errors (AnnotatorError) become
one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, TextIO

import click

from annotator import __version__
from annotator.context import Context

if TYPE_CHECKING:
    from annotator.errors import AnnotatorError

# command name -> "module:attribute", imported when the command is used or listed
COMMANDS = {
    "init": "annotator.cli.datasets:init",
    "add": "annotator.cli.datasets:add",
    "stats": "annotator.cli.datasets:stats",
    "classes": "annotator.cli.datasets:classes",
    "datasets": "annotator.cli.datasets:datasets",
    "db": "annotator.cli.database:db",
    "demo": "annotator.cli.demo:demo",
    "label": "annotator.tui.command:label",
    "import": "annotator.cli.formats:import_",
    "export": "annotator.cli.formats:export",
    "split": "annotator.cli.formats:split",
    "prelabel": "annotator.cli.prelabel:prelabel",
    "runs": "annotator.cli.prelabel:runs",
    "evaluate": "annotator.cli.prelabel:evaluate",
    "who": "annotator.cli.team:who",
    "overlap": "annotator.cli.team:overlap",
    "agreement": "annotator.cli.team:agreement",
    "consensus": "annotator.cli.team:consensus",
    "embed": "annotator.cli.learn:embed",
    "train": "annotator.cli.learn:train",
    "suspects": "annotator.cli.quality:suspects",
    "dupes": "annotator.cli.quality:dupes",
    "review": "annotator.cli.review:review",
    "snapshot": "annotator.cli.versions:snapshot",
    "snapshots": "annotator.cli.versions:snapshots",
    "diff": "annotator.cli.versions:diff",
    "restore": "annotator.cli.versions:restore",
    "merge": "annotator.cli.versions:merge",
    "rm": "annotator.cli.versions:rm",
    "mv": "annotator.cli.versions:mv",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on demand; errors become one-line messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):
                return None  # a command not built into this version
            raise
        command: click.Command = getattr(module, attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        from annotator.errors import AnnotatorError

        try:
            return super().invoke(ctx)
        except AnnotatorError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            error = user_error(exc, ctx.obj.db if isinstance(ctx.obj, Context) else None)
            if error is None:
                raise  # a bug: its traceback is what a report needs
            click.echo(f"error: {error.message}", err=True)
            ctx.exit(error.exit_code)


# errors of the machine, not of the program: full disk, no permission, read-only file system
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG, errno.EIO}
)


def user_error(exc: BaseException, db: str | None) -> AnnotatorError | None:
    """An error a user can cause or fix that escaped the commands' own checks, as one line: a
    full disk or a refused write anywhere, the database failing (disk full, locked, gone).
    None for anything else."""
    from annotator.errors import StorageError, os_error_reason

    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
        return StorageError(f"{where}{os_error_reason(exc)}")
    if isinstance(exc, click.exceptions.Exit | click.ClickException):
        return None  # click's own way out (help, a usage error): no store to ask
    from annotator.store.db import escaped_database_error

    return escaped_database_error(exc, db)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="ANNOTATOR_DB",
    default=None,
    metavar="PATH|URL",
    help="Database file or SQLAlchemy URL (postgresql+psycopg://...). "
    "Default: $ANNOTATOR_DB or ./annotator.db.",
)
@click.version_option(__version__, prog_name="annotator")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Build image datasets: label in the terminal, review in FiftyOne, export training sets.

    \b
    annotator init pets --task classification --classes cat,dog,bird
    annotator add pets ~/photos/pets
    annotator label pets
    annotator export yolo pets out/
    """
    ctx.obj = Context(db=db)


def main(argv: list[str] | None = None) -> None:
    warnings.showwarning = _one_line_warning
    cli.main(args=argv, prog_name="annotator")


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:  # fmt: skip
    """A warning as the user reads it, `warning: <message>`, without the source line."""
    text = " ".join(str(message).split())
    with contextlib.suppress(OSError):  # stderr gone: nowhere to tell
        print(f"warning: {text}", file=file or sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
