"""CLI commands for review in FiftyOne: `review push`, `review open`, `review pull`. Parses,
calls annotator.review, prints; the core (and FiftyOne) is imported inside the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from annotator.cli.common import Context, err, pass_ctx, progress_bar

if TYPE_CHECKING:
    from annotator.review.push import PushReport

FO_DATASET = click.option(
    "--fo-dataset", metavar="NAME", help="The FiftyOne dataset (default: annotator-NAME)."
)


@click.group()
def review() -> None:
    """Review a dataset in the FiftyOne App: push it, open the App, pull decisions back.

    \b
    annotator review push pets
    annotator review open pets          # then tag labels accept / reject / fix,
    annotator review pull pets          # samples skip / relabel, and pull
    """


def _push(ctx: Context, name: str, fo_dataset: str | None, full: bool,
          threshold: float) -> PushReport:  # fmt: skip
    from annotator.review.backend import require_fiftyone

    require_fiftyone()
    from annotator.review.push import push as run_push
    from annotator.store.datasets import get_dataset

    with ctx.session() as s, progress_bar("pushing", "samples") as update:
        report = run_push(s, get_dataset(s, name), fo_name=fo_dataset, full=full,
                          threshold=threshold, progress=update)  # fmt: skip
    how = "rebuilt" if report.rebuilt else "updated"
    click.echo(
        f"{how} FiftyOne dataset {report.fo_dataset!r}: {report.added} added, "
        f"{report.updated} updated, {report.deleted} deleted; {report.samples} samples "
        f"(history position {report.position})"
    )
    return report


@review.command()
@click.argument("name")
@click.option("--full", is_flag=True, help="Rewrite every sample instead of what changed.")
@FO_DATASET
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Prelabels under this confidence make the low_confidence view.")  # fmt: skip
@pass_ctx
def push(ctx: Context, name: str, full: bool, fo_dataset: str | None, threshold: float) -> None:
    """Mirror dataset NAME into FiftyOne (only what changed since the last push).

    Refused while labels edited or deleted in the App are not pulled yet: run annotator
    review pull NAME first, so that no decision made there is overwritten."""
    _push(ctx, name, fo_dataset, full, threshold)


@review.command("open")
@click.argument("name")
@click.option("--port", type=click.IntRange(1, 65535), default=5151, show_default=True,
              help="Port of the App.")  # fmt: skip
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on; 0.0.0.0 exposes the App to the network.")  # fmt: skip
@FO_DATASET
@pass_ctx
def open_(ctx: Context, name: str, port: int, address: str, fo_dataset: str | None) -> None:
    """Push dataset NAME, then serve the FiftyOne App on it until Ctrl-C."""
    import atexit
    import gc

    from annotator.review.backend import require_fiftyone

    require_fiftyone()
    from annotator.review import app

    app.check_port(address, port)
    report = _push(ctx, name, fo_dataset, False, 0.5)
    with app.stopping():  # Ctrl-C or SIGTERM, whenever it comes, stops the App at once
        session = app.serve(report.fo_dataset, port=port, address=address)
        click.echo(f"App: {app.app_url(report.fo_dataset, port, address)}")
        click.echo(f"from another machine: {app.ssh_hint(port)}  (then open the URL there)")
        if not app.is_loopback(address):
            err(f"warning: the App is reachable by anyone who can reach {address}:{port}")
        click.echo(f"Ctrl-C stops it; then: annotator review pull {name}")
        app.wait(session)
    # the process ends next: its exit need not sweep FiftyOne's objects (seconds on a busy box)
    atexit.register(gc.freeze)


@review.command()
@click.argument("name")
@FO_DATASET
@pass_ctx
def pull(ctx: Context, name: str, fo_dataset: str | None) -> None:
    """Bring the decisions made in FiftyOne back into dataset NAME.

    Label tags: accept, reject, fix (back to pending). Sample tags: skip, relabel. Labels
    edited or added to ground_truth become new revisions by author 'fiftyone'; labels deleted
    there are deleted. A decision on something changed in the store since the push is
    reported and tagged 'conflict'."""
    from annotator.review.backend import require_fiftyone

    require_fiftyone()
    from annotator.review.pull import pull as run_pull
    from annotator.store.datasets import get_dataset

    with ctx.session() as s, progress_bar("updating FiftyOne", "samples") as update:
        report = run_pull(s, get_dataset(s, name), fo_name=fo_dataset, progress=update)
    for line in report.ignored:
        err(f"ignored: {line}")
    for conflict in report.conflicts:
        err(f"conflict: {conflict}")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report.applied.items())) or "no changes"
    click.echo(f"pulled from {report.fo_dataset!r}: {counts}; {len(report.conflicts)} conflicts")
    if report.conflicts:
        err("conflicting decisions were not applied; they are tagged 'conflict' in FiftyOne")
