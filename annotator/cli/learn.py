"""CLI commands that learn from the labels: `embed` (store one vector per image from a
classification backbone) and `train` (fit a classifier on the accepted labels' vectors and store
its proposals as a model run). Imports only click and the CLI plumbing at module level; torch,
scikit-learn and the core are imported inside the commands."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from annotator.cli.common import Context, err, pass_ctx, print_table, progress_bar


@click.command()
@click.argument("name")
@click.option("--model", "arch", default="mobilenet_v2", show_default=True, metavar="ARCH",
              help="A torchvision classification model, a TorchScript file, or "
                   "package.module:factory; its pooled features are the vectors.")  # fmt: skip
@click.option("--weights", type=click.Path(path_type=Path), metavar="FILE",
              help="A state dict or checkpoint. Default: torchvision's weights from "
                   "$TORCH_HOME/hub/checkpoints, as prelabel finds them.")  # fmt: skip
@click.option("--batch-size", type=int, default=64, show_default=True,
              help="Images per forward pass (and per commit).")  # fmt: skip
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: the GPU when torch sees one.")  # fmt: skip
@click.option("--limit", type=int, help="Embed at most N images.")
@click.option("--workers", type=int, help="Decoding worker processes (default: up to 4).")
@pass_ctx
def embed(
    ctx: Context, name: str, arch: str, weights: Path | None, batch_size: int, device: str,
    limit: int | None, workers: int | None,
) -> None:  # fmt: skip
    """Store a feature vector for every image of dataset NAME that has none from this model.

    Incremental: a re-run (or a run after a kill) embeds only the images still missing."""
    from annotator.learn.embed import EmbedOptions
    from annotator.learn.embed import embed as run_embed
    from annotator.store.datasets import get_dataset

    options = EmbedOptions(arch, weights, batch_size, device, limit, workers)
    with ctx.session() as s, contextlib.ExitStack() as stack:
        report = run_embed(s, get_dataset(s, name), options, progress=_lazy_bar(stack))
    for bad in report.bad:
        err(f"skipped {bad.path}: {bad.reason}")
    weights_hash = (report.weights_sha256 or "none")[:12]
    click.echo(f"model {report.model} (weights {weights_hash}, {report.weights_source}) on "
               f"{report.device}; features: {report.features}")  # fmt: skip
    click.echo(f"embedded {report.embedded} images ({report.images_per_second:.1f} images/s), "
               f"{report.already_done} already done, {len(report.bad)} skipped as "
               "unreadable")  # fmt: skip


def _lazy_bar(
    stack: contextlib.ExitStack, label: str = "embed", unit: str = "images"
) -> Callable[[int, int], None]:
    """A progress callback that opens the bar on its first call (once the model is loaded)."""
    bar: list[Callable[[int, int], None]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(stack.enter_context(progress_bar(label, unit=unit)))
        bar[0](done, total)

    return update


@click.command()
@click.argument("name")
@click.option("--embeddings", default="mobilenet_v2", show_default=True, metavar="MODEL",
              help="Which stored vectors to train on (the --model given to embed); on a "
                   "detection dataset, the backbone that embeds the box crops.")  # fmt: skip
@click.option("--folds", type=int, default=5, show_default=True,
              help="Cross-validation folds (lowered to the smallest class's count).")  # fmt: skip
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Multilabel: propose the classes at least this probable.")  # fmt: skip
@click.option("--run", "run_id", type=int, metavar="ID",
              help="Detection: the detector run whose pending boxes to re-class (default: the "
                   "newest run not made by train).")  # fmt: skip
@click.option("--weights", type=click.Path(path_type=Path), metavar="FILE",
              help="Detection: the backbone's weights, as embed --weights.")  # fmt: skip
@click.option("--batch-size", type=int, default=64, show_default=True,
              help="Detection: crops per forward pass.")  # fmt: skip
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Detection: where the backbone runs.")  # fmt: skip
@click.option(
    "--workers", type=int, help="Detection: decoding worker processes (default: up to 4)."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def train(
    ctx: Context, name: str, embeddings: str, folds: int, threshold: float, run_id: int | None,
    weights: Path | None, batch_size: int, device: str, workers: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Train a classifier on dataset NAME's accepted labels and propose labels for the rest.

    Fits a logistic regression on the stored vectors of finished images, prints its
    cross-validated accuracy and per-class recall, and stores a pending proposal for every
    unlabeled image as a model run (review it in the TUI: space accepts). A new train replaces
    the previous trained run's pending proposals; accepted labels are never touched.

    On a detection dataset it fits on the accepted boxes' crops (embedded with --embeddings on
    each run) and proposes a class for each pending box of a detector run (--run, default the
    newest), in place of that box."""
    from annotator.learn.train import TrainOptions
    from annotator.learn.train import train as run_train
    from annotator.store.datasets import get_dataset

    options = TrainOptions(embeddings, folds, threshold, run_id, weights, device, batch_size,
                           workers)  # fmt: skip
    with ctx.session() as s, contextlib.ExitStack() as stack:
        bar = _lazy_bar(stack, "crops", "boxes")
        report = run_train(s, get_dataset(s, name), options, progress=bar)
    for bad in report.unreadable:
        err(f"skipped {bad}")
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    click.echo(f"trained on {report.labelled} labelled {report.unit}: cross-validated accuracy "
               f"{report.cv_accuracy:.3f} ({report.folds} folds)")  # fmt: skip
    rows = [[name, "n/a" if r is None else f"{r:.3f}", report.support[name]]
            for name, r in report.recall.items()]  # fmt: skip
    print_table(
        "per class (cross-validated)",
        ["class", "recall", "labels" if report.unit == "images" else "boxes"],
        rows,
    )
    if report.unit == "boxes":
        _print_boxes(report)
        return
    click.echo(f"run {report.run_id} ({report.model}): {report.predictions} proposals on "
               f"{report.proposed} unlabeled images; older proposals removed from "
               f"{report.retired} more")  # fmt: skip
    if report.unembedded:
        click.echo(f"{report.unembedded} images have no embedding and were left out: run "
                   "annotator embed first")  # fmt: skip


def _print_boxes(report: Any) -> None:
    if report.source_run is None and not report.proposed:
        click.echo(f"run {report.run_id} ({report.model}): no boxes to propose for (no "
                   "detector run: run annotator prelabel with a detection model, then train "
                   "again)")  # fmt: skip
    elif not report.proposed:
        click.echo(f"run {report.run_id} ({report.model}): no boxes to propose for (run "
                   f"{report.source_run} has no pending boxes)")  # fmt: skip
    else:
        source = f"found by run {report.source_run}" if report.source_run else "of earlier trains"
        click.echo(f"run {report.run_id} ({report.model}): proposed a class for "
                   f"{report.proposed} pending boxes ({source}), {report.reclassed} of them "
                   "another class than the box had")  # fmt: skip
    if report.small or report.unembedded:
        click.echo(f"{report.small} boxes under the crop minimum were left out; "
                   f"{report.unembedded} accepted boxes had no crop (too small or "
                   "unreadable)")  # fmt: skip
