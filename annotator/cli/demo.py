"""CLI command `demo SAMPLE_DIR`: builds the demo database from the bundled sample data (a
classification dataset "pets" and a detection dataset "scenes", both imported from COCO files),
splits them 70/30 and prints their statistics. Offline, a few seconds; re-running changes
nothing."""

from __future__ import annotations

from pathlib import Path

import click

from annotator.cli.common import Context, err

DATASETS = (
    ("pets", "classification", "classification.json"),
    ("scenes", "detection", "detection.json"),
)
RATIOS = {"train": 0.7, "val": 0.3}


@click.command()
@click.argument(
    "sample_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="sample_data",
)
@click.pass_context
def demo(click_ctx: click.Context, sample_dir: Path) -> None:
    """Build the demo datasets "pets" and "scenes" from SAMPLE_DIR (sample_data/)."""
    from annotator.cli.datasets import stats
    from annotator.formats.importing import import_source
    from annotator.store.datasets import get_dataset
    from annotator.store.splits import assign_splits

    store = click_ctx.find_object(Context).store()  # type: ignore[union-attr]
    images = sample_dir / "images"
    for name, task, labels in DATASETS:
        source = sample_dir / "annotations" / labels
        with store.session() as s:
            report = import_source(s, "coco", source, name, task=task, images=images)
            for problem in report.problems:
                err(f"problem: {problem}")
            click.echo(report.summary())
            assign_splits(s, get_dataset(s, name), RATIOS, seed=0)
    for name, _, _ in DATASETS:
        click_ctx.invoke(stats, name=name, as_json=False)
