"""CLI commands for a team on one dataset: `who` (who holds how many images of the labelling
queue and of model runs, since when, and each person's pace today), `overlap` (a sample labelled
independently by several people), `agreement` (how well they agree) and `consensus` (their
votes written as labels). Imports only click and the CLI plumbing at module level."""

from __future__ import annotations

import json
from typing import Any

import click

from annotator.cli.common import Context, pass_ctx, print_table


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def who(ctx: Context, name: str, as_json: bool) -> None:
    """Who works on dataset NAME now: images held (labelling, model-run workers), since when,
    and label changes per hour today."""
    from annotator.store.datasets import get_dataset
    from annotator.store.leases import holders, pace_today

    with ctx.session(readonly=True) as s:
        ds = get_dataset(s, name)
        rows = _rows(holders(s, ds.id), pace_today(s, ds.id))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ["who", "working on", "images", "since", "changes today", "per hour"]
    table = [[r["holder"], r["scope"], r["images"], (r["since"] or "-")[:19],
              r["changes_today"], f"{r['per_hour']:.1f}"] for r in rows]  # fmt: skip
    print_table(f"who works on {name}", headers, table)


def _rows(held: list[Any], pace: dict[str, tuple[int, float]]) -> list[dict[str, Any]]:
    rows = [
        {"holder": h.holder, "scope": h.scope, "images": h.images,
         "since": h.since.isoformat(sep=" "), "changes_today": pace.get(h.holder, (0, 0.0))[0],
         "per_hour": round(pace.get(h.holder, (0, 0.0))[1], 1)}
        for h in held
    ]  # fmt: skip
    holding = {h.holder for h in held}
    rows += [
        {"holder": author, "scope": "-", "images": 0, "since": None, "changes_today": n,
         "per_hour": round(rate, 1)}
        for author, (n, rate) in sorted(pace.items()) if author not in holding
    ]  # fmt: skip
    return rows


@click.command()
@click.argument("name")
@click.option("--fraction", type=float, required=True,
              help="Share of the dataset's images to label independently (0-1], drawn among "
              "the unlabeled ones.")  # fmt: skip
@click.option("--annotators", type=int, default=2, show_default=True,
              help="How many people label each of those images.")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Seed of the sample (reproducible).")
@pass_ctx
def overlap(ctx: Context, name: str, fraction: float, annotators: int, seed: int | None) -> None:
    """Mark a sample of dataset NAME's images to be labelled independently by several people.

    Each person's labels on those images are votes kept in their own layer and hidden from the
    others until all are done; `agreement` measures them and `consensus` writes the labels."""
    from annotator.store import overlap as svc
    from annotator.store.datasets import current_user, get_dataset

    with ctx.session() as s:
        report = svc.mark(s, get_dataset(s, name), fraction, annotators, current_user(), seed)
    click.echo(f"marked {report.marked} images of {report.images} for {report.annotators} "
               f"annotators each ({report.already} were marked already)")  # fmt: skip


@click.command()
@click.argument("name")
@click.option("--min-votes", type=int, default=2, show_default=True,
              help="Images with fewer finished voters are left as they are.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def agreement(ctx: Context, name: str, min_votes: int, as_json: bool) -> None:
    """How well the annotators of dataset NAME's overlap images agree: Cohen's and Fleiss'
    kappa and Krippendorff's alpha per class (labels); matched boxes and mean IoU per class
    (boxes); each annotator's agreement with the consensus."""
    from annotator.learn.agreement import agreement as compute
    from annotator.store.datasets import get_dataset
    from annotator.store.overlap import votes

    with ctx.session(readonly=True) as s:
        ds = get_dataset(s, name)
        classes = [c.name for c in sorted(ds.classes, key=lambda c: c.position)]
        out = compute(votes(s, ds, min_votes), ds.task, classes)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    _print_agreement(name, out)


def _fmt(value: Any) -> str:
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def _print_agreement(name: str, out: dict[str, Any]) -> None:
    click.echo(f"{name}: {out['images']} overlap images, annotators: "
               f"{', '.join(out['annotators']) or 'none'}")  # fmt: skip
    rows = [[c, *(_fmt(v) for v in figures.values())] for c, figures in out["per_class"].items()]
    if out.get("overall"):
        rows.insert(0, ["(all classes)", *(_fmt(v) for v in out["overall"].values())])
    first: dict[str, Any] = next(iter(out["per_class"].values()), {})
    print_table("agreement per class", ["class", *first.keys()], rows)
    people = [[p, f["images"], _fmt(f["agreement"])] for p, f in out["per_annotator"].items()]
    print_table("agreement with the consensus", ["annotator", "images", "agreement"], people)


@click.command()
@click.argument("name")
@click.option("--min-votes", type=int, default=2, show_default=True,
              help="Write only images at least this many people finished.")  # fmt: skip
@pass_ctx
def consensus(ctx: Context, name: str, min_votes: int) -> None:
    """Write the consensus of dataset NAME's overlap images as their labels: the majority
    label, the fused boxes. Ties are flagged for review; the votes stay; the label app's undo
    (by the same user) reverses the whole run."""
    from annotator.store.consensus import consensus as run
    from annotator.store.datasets import current_user, get_dataset

    with ctx.session() as s:
        report = run(s, get_dataset(s, name), current_user(), min_votes)
    click.echo(report.summary())
    for tie in report.ties[:10]:
        click.echo(f"tie: {tie}")
    if len(report.ties) > 10:
        click.echo(f"... and {len(report.ties) - 10} more (queue 'flagged')")
