"""CLI commands for datasets: init, add, stats, classes, datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from annotator.cli.common import Context, err, pass_ctx, print_table, progress_bar

TASK_CHOICE = click.Choice(["classification", "multilabel", "detection"])


def _split_names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@click.command()
@click.argument("name", required=False)
@click.option("--task", type=TASK_CHOICE, help="What is labelled.")
@click.option("--classes", "class_list", default="", help="Comma-separated class names, in order.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder image paths are stored relative to (default: the first folder added).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A dataset config file (YAML or JSON; see schemas/dataset-config.json).",
)
@pass_ctx
def init(
    ctx: Context,
    name: str | None,
    task: str | None,
    class_list: str,
    root: Path | None,
    config_file: Path | None,
) -> None:
    """Create dataset NAME (and the database if absent), from options or a --config file."""
    from annotator.cli.dataset_config import ClassConfig, load_dataset_config, validated
    from annotator.errors import InvalidInputError
    from annotator.store.datasets import create_dataset, set_class_color

    if config_file is not None:
        config = load_dataset_config(config_file)
    elif name and task:
        options = {"name": name, "task": task, "classes": _split_names(class_list)}
        config = validated(options, "init")
    else:
        raise InvalidInputError("init needs NAME and --task, or --config FILE")
    with ctx.session(create=True) as s:
        classes = config.class_list()
        ds = create_dataset(
            s, config.name, config.task, [c.name for c in classes], root or config.root
        )
        for cls in classes:
            if isinstance(cls, ClassConfig) and cls.color:
                set_class_color(s, ds, cls.name, cls.color)
        click.echo(f"created {ds.task} dataset {ds.name!r} with {len(ds.classes)} classes")


@click.command()
@click.argument("name")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Do not list rejected files one by one.")
@pass_ctx
def add(ctx: Context, name: str, sources: tuple[Path, ...], quiet: bool) -> None:
    """Register image files (folders are walked recursively) in dataset NAME.

    Bad files (empty, truncated, not an image, unreadable, too large) are reported and skipped;
    adding a file twice is a no-op. Safe to re-run after an interruption."""
    from annotator.store.datasets import get_dataset
    from annotator.store.images import add_images, check_sources

    check_sources(sources)  # before the progress bar starts
    with ctx.session() as s, progress_bar("adding") as update:
        report = add_images(s, get_dataset(s, name), sources, progress=update)
    if not quiet:
        for bad in report.rejected:
            err(f"rejected {bad.path}: {bad.reason}")
    click.echo(
        f"added {report.added}, duplicates {report.duplicates}, rejected {len(report.rejected)}"
    )
    if report.added == 0 and report.duplicates == 0 and report.rejected:
        raise SystemExit(1)


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def stats(ctx: Context, name: str, as_json: bool) -> None:
    """Counts per class, split, status, source and review state."""
    from annotator.store import summary

    with ctx.reader() as rows:
        data = summary.stats(rows, summary.get_dataset(rows, name))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
        return
    click.echo(
        f"{data['dataset']} ({data['task']}): {data['images']} images, "
        f"{data['annotations']} labels, root {data['root']}"
    )
    for key, title in (("classes", "labels per class"), ("split", "images per split"),
                       ("status", "images per status"), ("source", "labels per source"),
                       ("review", "labels per review state")):  # fmt: skip
        print_table(title, [key, "count"], [[k, v] for k, v in data[key].items()])
    _print_flagged(data["flags"])
    _print_annotators(data["annotators"], data["overlap"])


def _print_annotators(people: list[dict[str, Any]], overlap: dict[str, int]) -> None:
    """Per annotator: changes, images, labels per hour, median seconds per image."""
    rows = [[p["annotator"], p["changes"], p["images"], f"{p['labels_per_hour']:.1f}",
             "-" if p["median_seconds"] is None else f"{p['median_seconds']:.1f}"]
            for p in people]  # fmt: skip
    headers = ["annotator", "label changes", "images", "labels/hour", "median s/image"]
    print_table("per annotator", headers, rows)
    if overlap["marked"]:
        click.echo(f"overlap: {overlap['marked']} images, {overlap['complete']} done by all, "
                   f"{overlap['started']} started")  # fmt: skip


def _print_flagged(flags: dict[str, str], shown: int = 10) -> None:
    """The images a person must look at (labels refused on import), with their reasons."""
    click.echo(f"needs review (flagged): {len(flags)} images")
    if flags:
        rows = [[path, reason] for path, reason in list(flags.items())[:shown]]
        print_table("flagged images", ["image", "reason"], rows)
    if len(flags) > shown:
        click.echo(f"... and {len(flags) - shown} more (--json lists all; queue 'flagged')")


@click.command()
@click.argument("name")
@click.option("--add", "to_add", multiple=True, help="Add classes (comma-separated; repeatable).")
@click.option("--rename", multiple=True, metavar="OLD=NEW", help="Rename a class (repeatable).")
@click.option("--remove", multiple=True, help="Remove a class that has no labels (repeatable).")
@click.option("--color", multiple=True, metavar="NAME=#RRGGBB", help="Set a class colour.")
@pass_ctx
def classes(
    ctx: Context,
    name: str,
    to_add: tuple[str, ...],
    rename: tuple[str, ...],
    remove: tuple[str, ...],
    color: tuple[str, ...],
) -> None:
    """List, add, rename, remove or recolour the classes of dataset NAME."""
    from annotator.store import datasets as svc

    with ctx.session() as s:
        ds = svc.get_dataset(s, name)
        if to_add:
            svc.add_classes(s, ds, [n for v in to_add for n in _split_names(v)])
        for rule in rename:
            old, new = _pair(rule, "--rename")
            svc.rename_class(s, ds, old, new)
        for cls_name in remove:
            svc.remove_class(s, ds, cls_name)
        for rule in color:
            cls_name, value = _pair(rule, "--color")
            svc.set_class_color(s, ds, cls_name, value)
        rows = [[c.position + 1, c.name, c.color] for c in ds.classes]
    print_table(f"classes of {name}", ["key", "class", "colour"], rows)


def _pair(rule: str, option: str) -> tuple[str, str]:
    from annotator.errors import InvalidInputError

    left, sep, right = rule.partition("=")
    if not sep or not left.strip() or not right.strip():
        raise InvalidInputError(f"{option} {rule!r}: expected OLD=NEW")
    return left.strip(), right.strip()


@click.command()
@pass_ctx
def datasets(ctx: Context) -> None:
    """List the datasets in the database."""
    from annotator.store.summary import listing

    with ctx.reader() as rows:
        found = listing(rows)
    headers = ["name", "task", "images", "labels", "classes"]
    print_table("datasets", headers, [[d[h] for h in headers] for d in found])
