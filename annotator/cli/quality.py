"""CLI commands for the quality of a dataset's labels and images: `suspects` (labels that
cross-validation says may be wrong, worst first) and `dupes` (groups of near-duplicate images,
and which of them to keep). Parses, calls the core (imported inside each command), prints."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import click

from annotator.cli.common import Context, err, pass_ctx, print_table, progress_bar


@click.command()
@click.argument("name")
@click.option("--embeddings", metavar="MODEL", default="mobilenet_v2", show_default=True,
              help="The embedding model whose vectors the classifier learns from.")  # fmt: skip
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds.")
@click.option("--list", "list_only", is_flag=True, help="Show the stored flags; compute nothing.")
@click.option("--run", type=int, metavar="ID",
              help="Detection: the model run whose predicted boxes the accepted boxes are "
                   "compared with (default: the newest with predictions on labelled "
                   "images).")  # fmt: skip
@click.option("--confirm", "confirm_id", type=int, metavar="IMAGE_ID",
              help="The label of IMAGE_ID is right: clear its flag.")  # fmt: skip
@click.option("--limit", type=int, default=50, show_default=True, help="Show at most N flags.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def suspects(
    ctx: Context, name: str, embeddings: str, folds: int, list_only: bool, run: int | None,
    confirm_id: int | None, limit: int, as_json: bool,
) -> None:  # fmt: skip
    """Find the labels of NAME most likely wrong and list them worst first.

    Out-of-fold probabilities of a logistic regression on the images' embeddings (run
    `annotator embed` first) go to cleanlab's find_label_issues; the flags are stored. On a
    detection dataset the accepted boxes are compared with a model run's predictions (run
    `annotator prelabel` on labelled images first) by cleanlab's object-detection label
    quality: boxes missing, with a swapped class, or badly placed. Editing a flagged image's
    labels, or --confirm, clears its flags."""
    from annotator.store.datasets import current_user, get_dataset
    from annotator.store.suspects import confirm, open_flags

    with ctx.session() as s:
        ds = get_dataset(s, name)
        if confirm_id is not None:
            confirm(s, ds, confirm_id, current_user())
            click.echo(f"image {confirm_id}: label confirmed, flag cleared")
            return
        report = None if list_only else _find(s, ds, embeddings, folds, run)
        rows = [_flag_dict(f) for f in open_flags(s, ds, limit=limit)]
    _print_flags(name, report, rows, as_json)


def _find(session: Any, ds: Any, embeddings: str, folds: int, run: int | None) -> Any:
    from rich.console import Console

    from annotator.learn.suspects import find_suspects

    doing = f"cross-validating {folds} folds, ranking labels"
    if ds.task == "detection":
        doing = "comparing the accepted boxes with a model run's predictions"
    with Console(stderr=True).status(doing):
        return find_suspects(session, ds, embeddings=embeddings, folds=folds, run=run)


def _flag_dict(flag: Any) -> dict[str, Any]:
    return {"image_id": flag.image_id, "path": flag.path, "kind": flag.kind or "label",
            "given": flag.given, "suggested": flag.suggested, "score": round(flag.score, 4),
            "box": None if flag.box is None else [round(v, 2) for v in flag.box],
            "run": flag.run, "created_at": flag.created_at.isoformat()}  # fmt: skip


def _print_flags(name: str, report: Any, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out = {"report": report.as_dict() if report else None, "flags": rows}
        click.echo(json.dumps(out, indent=2))
        return
    if report is not None:
        click.echo(report.summary())
    table = [[r["image_id"], r["path"], r["kind"], r["given"] or "-", r["suggested"] or "(none)",
              f"{r['score']:.3f}"] for r in rows]  # fmt: skip
    print_table(f"suspect labels in {name}, worst first",
                ["image", "path", "kind", "class", "suggested", "quality"], table)  # fmt: skip


@click.command()
@click.argument("name")
@click.option("--max-distance", type=int, default=6, show_default=True,
              help="Most pHash bits two near-duplicates differ in (of 64).")  # fmt: skip
@click.option("--embeddings", metavar="MODEL",
              help="Confirm pairs by this embedding model's cosine (default: the model with "
                   "the most images, when the dataset has embeddings).")  # fmt: skip
@click.option("--min-cosine", type=float, default=0.9, show_default=True,
              help="Embedding cosine below which a pHash pair is not a duplicate.")  # fmt: skip
@click.option("--list", "list_only", is_flag=True, help="Show the stored groups; compute nothing.")
@click.option(
    "--keep",
    "keep_id",
    type=int,
    metavar="IMAGE_ID",
    help="Keep IMAGE_ID; mark the rest of its group duplicates (left out of exports).",
)
@click.option("--restore", "restore_id", type=int, metavar="IMAGE_ID",
              help="Undo --keep: every image of IMAGE_ID's group is kept again.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def dupes(
    ctx: Context, name: str, max_distance: int, embeddings: str | None, min_cosine: float,
    list_only: bool, keep_id: int | None, restore_id: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Find groups of near-duplicate images in NAME (resized, re-encoded, slightly cropped or
    brightened copies) by perceptual hash, and list them.

    Hashes missing ones first (images added before). Groups are stored: `split` keeps a group
    in one split and `export` refuses a group spanning two, unless --allow-leakage."""
    from annotator.store.datasets import get_dataset
    from annotator.store.dupes import keep_only, list_groups, restore_group

    with ctx.session() as s:
        ds = get_dataset(s, name)
        if keep_id is not None:
            group = keep_only(s, ds, keep_id)
            click.echo(f"group {group}: kept image {keep_id}; the others are marked duplicates "
                       "(left out of exports)")  # fmt: skip
            return
        if restore_id is not None:
            group = restore_group(s, ds, restore_id)
            click.echo(f"group {group}: every image kept again")
            return
        report = None if list_only else _find_dupes(s, ds, max_distance, embeddings, min_cosine)
        groups = [_group_dict(g) for g in list_groups(s, ds)]
    _print_groups(name, report, groups, as_json)


def _find_dupes(session: Any, ds: Any, max_distance: int, embeddings: str | None,
                min_cosine: float) -> Any:  # fmt: skip
    from annotator.learn.dupes import find_duplicates

    with ExitStack() as stack:
        shown: list[Any] = []

        def update(done: int, total: int) -> None:
            if total and not shown:
                shown.append(stack.enter_context(progress_bar("hashing")))
            if shown:
                shown[0](done, total)

        report = find_duplicates(session, ds, max_distance=max_distance, embeddings=embeddings,
                                 min_cosine=min_cosine, progress=update)  # fmt: skip
    for path, reason in report.unreadable:
        err(f"skipped {path}: {reason}")
    return report


def _group_dict(group: Any) -> dict[str, Any]:
    members = [{"image_id": m.image_id, "path": m.path, "split": m.split,
                "distance": m.distance, "kept": m.kept} for m in group.members]  # fmt: skip
    return {"group": group.id, "leaks": len(group.exported_splits()) > 1, "images": members}


def _print_groups(name: str, report: Any, groups: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out = {"report": vars(report) if report else None, "groups": groups}
        click.echo(json.dumps(out, indent=2))
        return
    if report is not None:
        confirm = (f", {report.rejected_by_embedding} pairs rejected by {report.embedding_model} "
                   "embeddings" if report.embedding_model else "")  # fmt: skip
        click.echo(f"{report.groups} groups of near-duplicates ({report.grouped_images} images) "
                   f"among {report.images} images; {report.hashed} hashed now{confirm}; "
                   f"search {report.seconds:.2f} s")  # fmt: skip
    rows = [[g["group"], m["image_id"], m["path"], m["split"] or "-", m["distance"],
             "yes" if m["kept"] else "duplicate", "LEAKS" if g["leaks"] else ""]
            for g in groups for m in g["images"]]  # fmt: skip
    print_table(f"near-duplicates in {name}",
                ["group", "image", "path", "split", "bits", "kept", ""], rows)  # fmt: skip
