"""CLI commands for a team on one dataset: `who` (who holds how many images of the labelling
queue and of model runs, since when, and each person's pace today). Imports only click and the
CLI plumbing at module level."""

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

    store = ctx.store(create=False)
    try:
        with store.session() as s:
            ds = get_dataset(s, name)
            rows = _rows(holders(s, ds.id), pace_today(s, ds.id))
    finally:
        store.close()
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
