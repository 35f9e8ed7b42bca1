"""`annotator label NAME`: the command that opens the labelling app. Imports only click, the
standard library and `annotator.context` at module level (so `annotator --help` loads no
textual); the app is imported when the command runs."""

from __future__ import annotations

import sys

import click

from annotator.context import Context, pass_ctx


@click.command()
@click.argument("name")
@click.option(
    "--render",
    type=click.Choice(["auto", "halfblock", "sixel", "kitty"]),
    default=None,
    help="How to draw images: Kitty graphics, Sixel, or coloured half blocks (works everywhere, "
    "tmux and SSH included). Default: the config file's, else auto (asks the terminal).",
)
@click.option(
    "--queue",
    "queue_",
    default=None,
    metavar="unlabeled|review|flagged|all|suspects|duplicates|class:NAME",
    help="Which images to go through: unlabeled (default), review (pending prelabels), "
    "flagged (labels refused on import), all, suspects (open suspect labels, worst first), "
    "duplicates (near-duplicate groups, one group after another), or those holding one class.",
)
@click.option(
    "--order",
    type=click.Choice(["path", "added", "uncertainty"]),
    default=None,
    help="Queue order: by file path (default), time added, or least confident prediction first.",
)
@click.option(
    "--user",
    default=None,
    help="Who is labelling: recorded on every change and on the images this session holds, "
    "so a team is served different images. Default: $ANNOTATOR_USER, else the OS user.",
)
@pass_ctx
def label(
    ctx: Context, name: str, render: str | None, queue_: str | None, order: str | None,
    user: str | None = None,
) -> None:  # fmt: skip
    """Label the images of dataset NAME in the terminal.

    Every change is saved the moment it is made; press ? in the app for every key. Keys can be
    remapped in ~/.config/annotator/config.toml (or $ANNOTATOR_CONFIG)."""
    _require_terminal()  # before asking the terminal anything
    from annotator.config import load_settings
    from annotator.tui.render import cell_pixels, detect_mode

    settings = load_settings()
    mode = detect_mode(render or settings.render)  # asks the terminal before textual starts
    cell_px = cell_pixels(mode)
    from annotator.tui.app import create_app

    store = ctx.store(create=False)
    try:
        app = create_app(store, name, mode=mode, cell_px=cell_px, queue=queue_, order=order,
                         settings=settings, author=user)  # fmt: skip
        app.run()
    finally:
        store.close()


def _require_terminal() -> None:
    """The app draws on a terminal and reads keys from it: without one it would wait forever."""
    from annotator.errors import InvalidInputError

    for stream, name in ((sys.stdin, "input"), (sys.stdout, "output")):
        if not stream.isatty():
            raise InvalidInputError(
                f"annotator label needs a terminal, and its {name} is not one (a pipe, a file "
                "or a script): run it in a terminal"
            )
