"""CLI commands for versions: `snapshot`, `snapshots`, `diff`, `restore`, `merge`, `rm`, `mv`.
Parses, calls the store (imported inside each command), prints a table or JSON."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import click

from annotator.cli.common import Context, err, pass_ctx, print_table
from annotator.cli.formats import lazy_bar

CONFLICT_CHOICE = click.Choice(["keep", "theirs", "both", "review"])


@click.command()
@click.argument("name")
@click.argument("tag")
@click.option("--message", "-m", default=None, help="What this version is (free text).")
@pass_ctx
def snapshot(ctx: Context, name: str, tag: str, message: str | None) -> None:
    """Name the current state of dataset NAME as TAG (labels, classes and splits as they are)."""
    from annotator.store.datasets import current_user, get_dataset
    from annotator.store.versions import create_snapshot

    with ctx.session() as s:
        snap = create_snapshot(s, get_dataset(s, name), tag, current_user(), message)
        click.echo(
            f"snapshot {snap.tag} of {name!r} at history position {snap.position}: "
            f"{snap.counts['images']} images, {snap.counts['annotations']} labels"
        )


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def snapshots(ctx: Context, name: str, as_json: bool) -> None:
    """List the snapshots of dataset NAME: tag, when, who, message, counts."""
    from annotator.store.datasets import get_dataset
    from annotator.store.versions import list_snapshots

    with ctx.session() as s:
        rows = [_snapshot_record(x) for x in list_snapshots(s, get_dataset(s, name))]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(
        f"snapshots of {name}",
        ["tag", "position", "when", "who", "images", "labels", "message"],
        [[r["tag"], r["position"], r["created_at"][:19], r["author"], r["counts"]["images"],
          r["counts"]["annotations"], r["message"] or ""] for r in rows],
    )  # fmt: skip


def _snapshot_record(snap: Any) -> dict[str, Any]:
    return {
        "tag": snap.tag, "position": snap.position, "created_at": snap.created_at.isoformat(),
        "author": snap.author, "message": snap.message, "counts": snap.counts,
    }  # fmt: skip


@click.command()
@click.argument("name")
@click.argument("source", metavar="[FROM", required=False)
@click.argument("target", metavar="[TO]]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print every change as JSON.")
@pass_ctx
def diff(ctx: Context, name: str, source: str | None, target: str | None, as_json: bool) -> None:
    """What changed in dataset NAME between two points, per class.

    FROM and TO are a snapshot tag, a history position or "now" (default: the last snapshot
    .. now). Boxes count as moved when their IoU drops below 0.95, else as resized."""
    from annotator.store.datasets import get_dataset
    from annotator.store.versions import default_points, diff, resolve_point

    with ctx.session() as s:
        ds = get_dataset(s, name)
        start, end = default_points(s, ds)
        start = resolve_point(s, ds, source) if source else start
        end = resolve_point(s, ds, target) if target else end
        out = diff(s, ds, start, end).as_dict()
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    kinds = sorted({k for counts in out["classes"].values() for k in counts})
    rows = [[cls, *(counts.get(k, 0) for k in kinds)] for cls, counts in out["classes"].items()]
    print_table(f"{name}: {out['from']} .. {out['to']}", ["class", *kinds], rows)
    images = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in out["images"].items())
    click.echo(f"images: {images or 'no change'}")


@click.command()
@click.argument("name")
@click.option("--to", "tag", required=True, help="The snapshot tag to go back to.")
@pass_ctx
def restore(ctx: Context, name: str, tag: str) -> None:
    """Bring the labels, classes and splits of NAME back to snapshot TAG, as new history (the
    label app's undo reverses it)."""
    from annotator.store.datasets import current_user, get_dataset
    from annotator.store.restore import restore as run

    with ctx.session() as s:
        click.echo(run(s, get_dataset(s, name), tag, current_user()).summary())


@click.command()
@click.argument("src")
@click.argument("dest")
@click.option("--from-db", default=None, metavar="PATH|URL", help="Database SRC lives in.")
@click.option("--map", "mapping", default=None, help="Rename SRC classes: a=b,c=d.")
@click.option(
    "--on-conflict", type=CONFLICT_CHOICE, default="keep", show_default=True,
    help="An image in both, labelled differently: keep DEST's, take SRC's (theirs), keep both "
    "as pending (both), or add SRC's as pending and flag the image (review).",
)  # fmt: skip
@pass_ctx
def merge(ctx: Context, src: str, dest: str, from_db: str | None, mapping: str | None,
          on_conflict: str) -> None:  # fmt: skip
    """Copy the images (matched by SHA-256) and labels of dataset SRC into dataset DEST.

    Safe to re-run after an interruption: what is merged already is skipped."""
    from annotator.store.datasets import get_dataset
    from annotator.store.merge import merge as run
    from annotator.store.merge import parse_map

    parsed = parse_map(mapping)
    with ExitStack() as stack, lazy_bar("merging") as update:
        s = stack.enter_context(ctx.session())
        o = stack.enter_context(Context(from_db).session()) if from_db else s  # one database
        report = run(o, get_dataset(o, src), s, get_dataset(s, dest), mapping=parsed,
                     on_conflict=on_conflict, progress=update)  # fmt: skip
    if report.classes_added:
        err(f"note: classes added to {dest}: {', '.join(report.classes_added)}")
    click.echo(report.summary(on_conflict))


@click.command()
@click.argument("name")
@click.argument("images", nargs=-1)
@click.option("--where", default=None, help="Remove the images matching status=VALUE.")
@pass_ctx
def rm(ctx: Context, name: str, images: tuple[str, ...], where: str | None) -> None:
    """Remove IMAGES (stored paths or ids) from dataset NAME, with their labels; the files stay.
    Snapshots taken before still hold them (restore brings them back)."""
    from annotator.errors import InvalidInputError
    from annotator.store.datasets import current_user, get_dataset
    from annotator.store.removing import images_to_remove, remove_images

    if bool(images) == bool(where):
        raise InvalidInputError("name IMAGES or give --where status=VALUE (not both)")
    with ctx.session() as s:
        ds = get_dataset(s, name)
        count = remove_images(s, ds, images_to_remove(s, ds, list(images), where), current_user())
    click.echo(f"removed {count} images from {name!r}")


@click.command()
@click.argument("name")
@click.argument("new")
@pass_ctx
def mv(ctx: Context, name: str, new: str) -> None:
    """Rename dataset NAME to NEW (its history and snapshots go with it)."""
    from annotator.store.datasets import get_dataset
    from annotator.store.removing import rename_dataset

    with ctx.session() as s:
        rename_dataset(s, get_dataset(s, name), new)
    click.echo(f"renamed {name!r} to {new!r}")
