"""CLI commands for model-assisted labelling: `prelabel` (run a model, store its proposals as
pending labels), `runs` (the model runs of a dataset) and `evaluate` (a run against the labels
people accepted). Imports only click and the CLI plumbing at module level; torch and the core are
imported inside the commands."""

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
@click.option("--model", "arch", required=True, metavar="ARCH",
              help="A torchvision classification or detection model (mobilenet_v2, resnet50, "
                   "fasterrcnn_mobilenet_v3_large_fpn, ...), a TorchScript file, or "
                   "package.module:factory.")  # fmt: skip
@click.option("--weights", type=click.Path(path_type=Path), metavar="FILE",
              help="A state dict or checkpoint (loaded with weights_only=True). Default: "
                   "torchvision's weights from $TORCH_HOME/hub/checkpoints, downloaded when "
                   "online (set ANNOTATOR_OFFLINE=1 to forbid).")  # fmt: skip
@click.option("--threshold", type=float, default=0.3, show_default=True,
              help="Keep predictions scoring at least this.")  # fmt: skip
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Images per forward pass.")  # fmt: skip
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: the GPU when torch sees one.")  # fmt: skip
@click.option("--map", "maps", multiple=True, metavar="CATEGORY=CLASS",
              help='Send a model category (or ImageNet group) to a class: --map "Egyptian '
                   'cat=cat" (repeatable).')  # fmt: skip
@click.option("--only-unlabeled", is_flag=True, help="Only images with status unlabeled.")
@click.option("--limit", type=int, help="Process at most N images.")
@click.option("--force", is_flag=True,
              help="Process images a matching earlier run already did.")  # fmt: skip
@click.option("--workers", type=int, help="Decoding worker processes (default: up to 4).")
@click.option("--worker", "shared", is_flag=True,
              help="Share the run with other machines or processes started the same way "
                   "on the same database: each claims batches of images until none is "
                   "left.")  # fmt: skip
@pass_ctx
def prelabel(
    ctx: Context, name: str, arch: str, weights: Path | None, threshold: float, batch_size: int,
    device: str, maps: tuple[str, ...], only_unlabeled: bool, limit: int | None, force: bool,
    workers: int | None, shared: bool,
) -> None:  # fmt: skip
    """Run a model over dataset NAME and store its predictions as pending labels to review.

    Re-running the same model replaces its still-pending predictions; accepted and rejected
    ones and human labels stay. A killed run continues where it stopped when re-run."""
    from annotator.prelabel.pipeline import PrelabelOptions
    from annotator.prelabel.pipeline import prelabel as run_model
    from annotator.store.datasets import get_dataset

    options = PrelabelOptions(arch, weights, threshold, batch_size, device, maps,
                              only_unlabeled, limit, force, workers)  # fmt: skip
    if shared and (limit is not None or force):
        raise click.UsageError("--worker shares one run: --limit and --force do not apply")
    with ctx.session() as s, contextlib.ExitStack() as stack:
        ds = get_dataset(s, name)
        if shared:
            report = _as_worker(s, ds, options, _lazy_bar(stack))
        else:
            report = run_model(s, ds, options, progress=_lazy_bar(stack))
    _print_report(report)


def _as_worker(session: Any, ds: Any, options: Any, bar: Callable[[int, int], None]) -> Any:
    from annotator.prelabel.distributed import prelabel_worker, worker_name
    from annotator.store.datasets import current_user

    return prelabel_worker(session, ds, options, worker_name(current_user()), bar)


def _lazy_bar(stack: contextlib.ExitStack) -> Callable[[int, int], None]:
    """A progress callback that opens the bar on its first call (once the model is loaded),
    so the images/s it shows measures the images, not the model's loading."""
    bar: list[Callable[[int, int], None]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(stack.enter_context(progress_bar("prelabel", unit="images")))
        bar[0](done, total)

    return update


def _print_report(report: Any) -> None:
    weights = (report.weights_sha256 or "none")[:12]
    mapped = ", ".join(f"{c} {n}" for c, n in report.mapped.items())
    click.echo(f"model {report.model} (weights {weights}, {report.weights_source}) on "
               f"{report.device}; categories per class: {mapped}")  # fmt: skip
    for bad in report.bad:
        err(f"skipped {bad.path}: {bad.reason}")
    if report.run_id is None:
        click.echo(f"nothing to do: {report.already_done} images already processed by this "
                   "model with these weights and settings (use --force to redo them)")  # fmt: skip
        return
    click.echo(
        f"run {report.run_id}: {report.processed} images, {report.predictions} predictions, "
        f"{len(report.bad)} skipped as unreadable, {report.already_done} already done; "
        f"{report.images_per_second:.1f} images/s"
    )
    dropped = report.dropped
    if dropped.unmapped:
        top = ", ".join(f"{k} {v}" for k, v in dropped.unmapped.most_common(8))
        click.echo(f"dropped, no mapped class (add --map CATEGORY=CLASS): {top}")
    if dropped.below_threshold:
        click.echo(f"{dropped.below_threshold} images got no class above the threshold")


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def runs(ctx: Context, name: str, as_json: bool) -> None:
    """The model runs of dataset NAME: model, weights hash, when, images, predictions."""
    from annotator.store.datasets import get_dataset
    from annotator.store.leases import holders, remaining
    from annotator.store.predictions import list_runs

    with ctx.session() as s:
        ds = get_dataset(s, name)
        live: dict[str, list[str]] = {}
        for h in holders(s, ds.id, "run:"):
            live.setdefault(h.scope, []).append(f"{h.holder} ({h.images})")
        rows = [_run_row(run, live.get(f"run:{run.id}", [])) for run in list_runs(s, ds)]
        for row, run in zip(rows, list_runs(s, ds), strict=True):
            only = bool(run.params.get("only_unlabeled"))
            row["left"] = None if run.finished_at else remaining(s, ds.id, run.id, only)
            row["state"] = _state(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ["run", "model", "weights", "started", "state", "images", "labels"]
    table = [[r["id"], r["model"], (r["weights_sha256"] or "-")[:8], r["started_at"][:16],
              r["state"], r["images"],
              r["predictions"]]
             for r in rows]  # fmt: skip
    if any(r["workers"] for r in rows):  # a shared run in progress: who works on it
        headers.append("workers (images held)")
        for line, r in zip(table, rows, strict=True):
            line.append(", ".join(r["workers"]) or "-")
    print_table(f"model runs of {name}", headers, table)


def _state(row: dict[str, Any]) -> str:
    """done, N left, or (a trained run that stopped part-way: train never resumes one) stopped."""
    from annotator.store.training import TRAINED_PREFIX

    if row["finished_at"]:
        return "done"
    if row["model"].startswith(TRAINED_PREFIX):
        return f"stopped, {row['left']} left (train again)"
    return f"{row['left']} left"


def _run_row(run: Any, workers: list[str]) -> dict[str, Any]:
    return {
        "id": run.id, "model": run.model, "weights_sha256": run.weights_sha256,
        "started_at": run.started_at.isoformat(sep=" "),
        "finished_at": run.finished_at.isoformat(sep=" ") if run.finished_at else None,
        "images": run.image_count, "predictions": run.prediction_count, "params": run.params,
        "workers": workers,
    }  # fmt: skip


@click.command()
@click.argument("name")
@click.option("--run", "run_id", type=int, help="The run to evaluate (default: the newest).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_ctx
def evaluate(ctx: Context, name: str, run_id: int | None, as_json: bool) -> None:
    """Compare a run's predictions with the accepted labels on the same images.

    Detection: COCO mAP@[.5:.95], mAP@.5 and AP per class (pycocotools). Classification:
    accuracy, precision, recall and F1 per class, and the confusion matrix."""
    from annotator.prelabel.evaluate import evaluate as compute
    from annotator.store.datasets import get_dataset

    with ctx.session() as s:
        result = compute(s, get_dataset(s, name), run_id)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result["task"] == "detection":
        _print_detection(result)
    else:
        _print_classification(result)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_detection(result: dict[str, Any]) -> None:
    run = result["run"]
    click.echo(
        f"run {run['id']} ({run['model']}) on {result['images']} images: "
        f"mAP@[.5:.95] {_fmt(result['map'])}, mAP@.5 {_fmt(result['map50'])}"
    )
    rows = [[c["class"], _fmt(c["ap"]), _fmt(c["ap50"]), c["labels"], c["predictions"]]
            for c in result["classes"]]  # fmt: skip
    print_table("AP per class", ["class", "AP", "AP@.5", "labels", "predictions"], rows)


def _print_classification(result: dict[str, Any]) -> None:
    click.echo(f"run {result['run']['id']} ({result['run']['model']}) on {result['images']} "
               f"images: accuracy {_fmt(result['accuracy'])}")  # fmt: skip
    rows = [[c["class"], _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]), c["support"]]
            for c in result["classes"]]  # fmt: skip
    print_table("per class", ["class", "precision", "recall", "F1", "labels"], rows)
    matrix = result["confusion"]
    if matrix is None:
        return
    print_table("confusion (rows: labels, columns: predictions)", ["", *matrix["columns"]],
                [[row, *counts] for row, counts in zip(matrix["rows"], matrix["counts"],
                                                       strict=True)])  # fmt: skip
