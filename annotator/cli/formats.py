"""CLI commands for formats: `import coco|yolo|imagefolder`, `export FORMAT`, `split`. Parses,
calls the core (imported inside each command), prints problems on stderr and a summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from annotator.cli.common import Context, err, pass_ctx, print_table, progress_bar

if TYPE_CHECKING:  # a type only: the store stays off the path of `--help`
    from annotator.store.types import ProgressFn

TASK_CHOICE = click.Choice(["classification", "multilabel", "detection"])
FORMAT_CHOICE = click.Choice(["coco", "yolo", "imagefolder"])
MEDIA_CHOICE = click.Choice(["copy", "hardlink", "symlink", "none"])
MAX_LISTED = 200


@contextmanager
def lazy_bar(description: str) -> Iterator[ProgressFn]:
    """A progress bar that appears with the first progress report, so an error found before
    the work starts prints alone."""
    with ExitStack() as stack:
        shown: list[ProgressFn] = []

        def update(done: int, total: int) -> None:
            if not shown:
                shown.append(stack.enter_context(progress_bar(description)))
            shown[0](done, total)

        yield update


def _import_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--quiet", "-q", is_flag=True, help="Print only the problem count.")(func)
    func = click.option(
        "--task", type=TASK_CHOICE, help="Task of a new dataset (default: inferred)."
    )(func)
    func = click.option(
        "--dataset", "-d", "dataset", required=True, help="Dataset to create or add to."
    )(func)
    return click.argument("source", type=click.Path(path_type=Path))(func)


@click.group(name="import")
def import_() -> None:
    """Import labelled images from COCO, YOLO or ImageFolder.

    Creates the dataset (task inferred: boxes make detection, several labels on one image
    multilabel, else classification) or adds to an existing one (classes matched by name).
    Bad records are listed by file and line or record id and skipped; the rest is imported.
    Safe to re-run after an interruption: images already stored are skipped with their labels.
    """


@import_.command("coco")
@_import_options
@click.option(
    "--images",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the file_names are relative to (default: found beside the JSON).",
)
@pass_ctx
def import_coco(ctx: Context, source: Path, dataset: str, task: str | None, quiet: bool,
                images: Path | None) -> None:  # fmt: skip
    """Import COCO (boxes, crowd regions, image-level labels).

    SOURCE: an instances JSON file, or a folder (annotations/ + images/<split>/, Roboflow's
    <split>/_annotations.coco.json, or labels.json + data/)."""
    _run_import(ctx, "coco", source, dataset, task, quiet, images)


@import_.command("yolo")
@_import_options
@pass_ctx
def import_yolo(ctx: Context, source: Path, dataset: str, task: str | None, quiet: bool) -> None:
    """Import YOLO (Ultralytics detection layout).

    SOURCE: a data.yaml, or a dataset folder (data.yaml or obj.names, with images/<split>/ and
    labels/<split>/). An empty .txt marks a negative; an image without one stays unlabeled."""
    _run_import(ctx, "yolo", source, dataset, task, quiet, None)


@import_.command("imagefolder")
@_import_options
@pass_ctx
def import_imagefolder(ctx: Context, source: Path, dataset: str, task: str | None,
                       quiet: bool) -> None:  # fmt: skip
    """Import class folders (torchvision ImageFolder layout).

    SOURCE: a folder of class folders, optionally under train/ val/ test/. Images directly in
    SOURCE belong to no class and are imported unlabeled."""
    _run_import(ctx, "imagefolder", source, dataset, task, quiet, None)


def _run_import(ctx: Context, fmt: str, source: Path, dataset: str, task: str | None,
                quiet: bool, images: Path | None) -> None:  # fmt: skip
    from annotator.formats.importing import import_source

    with ctx.session(create=True) as s, lazy_bar(f"importing {fmt}") as update:
        report = import_source(s, fmt, source, dataset, task=task, images=images, progress=update)
    for note in report.notes:
        err(f"note: {note}")
    if not quiet:
        for problem in report.problems[:MAX_LISTED]:
            err(f"problem: {problem}")
        if len(report.problems) > MAX_LISTED:
            err(f"... and {len(report.problems) - MAX_LISTED} more problems")
    if report.new_classes and not report.created:
        click.echo(f"new classes: {', '.join(report.new_classes)}")
    click.echo(report.summary())
    if report.images == 0 and report.existing == 0 and report.problems:
        raise SystemExit(1)


@click.command()
@click.argument("fmt", metavar="FORMAT", type=FORMAT_CHOICE)
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--media", type=MEDIA_CHOICE, default="copy", show_default=True,
    help="How images get into DEST (none: labels only).",
)  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace a non-empty DEST.")
@click.option("--at", "at", default=None, metavar="TAG", help="Export NAME as snapshot TAG was.")
@click.option(
    "--allow-leakage",
    is_flag=True,
    help="Export even when near-duplicates (annotator dupes) lie in two splits.",
)
@click.option(
    "--include-pending", is_flag=True,
    help="Also export predictions not yet reviewed (pending); rejected ones never go out.",
)  # fmt: skip
@pass_ctx
def export(ctx: Context, fmt: str, name: str, dest: Path, media: str, overwrite: bool,
           at: str | None, allow_leakage: bool, include_pending: bool) -> None:  # fmt: skip
    """Export dataset NAME to DEST as FORMAT (coco, yolo or imagefolder).

    Exports human and accepted labels of every image with a split; writes DEST/manifest.json.
    DEST is built beside itself and renamed into place at the end."""
    from annotator.formats.exporting import export_dataset

    with export_source(ctx, at) as s, lazy_bar(f"exporting {fmt}") as update:
        report = export_dataset(s, fmt, name, dest, media=media, overwrite=overwrite,
                                include_pending=include_pending, progress=update,
                                allow_leakage=allow_leakage, at=at)  # fmt: skip
    for warning in report.warnings:
        err(f"warning: {warning}")
    for reason, count in report.manifest.left_out.items():
        if count:
            err(f"left out: {count} images ({reason.replace('_', ' ')})")
    click.echo(report.summary())


@contextmanager
def export_source(ctx: Context, at: str | None) -> Iterator[Any]:
    """What an export reads: a SQLite file through the standard library's sqlite3 (no
    SQLAlchemy to load: `ctx.reader()`), a snapshot (`at`) or another database through a
    read-only session."""
    from annotator.store.quick import sqlite_file

    if at is None and sqlite_file(ctx.db) is not None:
        with ctx.reader() as rows:
            yield rows
        return
    with ctx.session(readonly=True) as session:
        yield session


@click.command()
@click.argument("name")
@click.option(
    "--ratios", default="train=0.8,val=0.1,test=0.1", show_default=True,
    help="Fractions per split, adding up to 1.",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed.")
@click.option("--reassign", is_flag=True, help="Re-split every image, not only new ones.")
@pass_ctx
def split(ctx: Context, name: str, ratios: str, seed: int, reassign: bool) -> None:
    """Assign train/val/test to the images of NAME that have no split (stratified by class,
    seeded). Images keep their split across exports; --reassign redoes all."""
    from annotator.store.datasets import get_dataset
    from annotator.store.splits import assign_splits, parse_ratios

    parsed = parse_ratios(ratios)
    with ctx.session() as s, lazy_bar("splitting") as update:
        report = assign_splits(s, get_dataset(s, name), parsed, seed=seed, reassign=reassign,
                               progress=update)  # fmt: skip
    assigned = ", ".join(f"{k} {v}" for k, v in report.assigned.items()) or "none"
    click.echo(f"assigned {sum(report.assigned.values())} images ({assigned}); "
               f"{report.kept} kept their split")  # fmt: skip
    print_table(f"images per split in {name}", ["split", "images"],
                [[k, v] for k, v in report.totals.items()])  # fmt: skip
