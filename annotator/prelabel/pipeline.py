"""The prelabelling use case: resolve the model and the class map, plan which images to process
(resuming a killed run), then stream the images through a DataLoader whose workers decode, apply
EXIF orientation and resize, run batched inference under `torch.inference_mode()` on the chosen
device, and store each batch's predictions in one commit. A file that cannot be decoded is
reported and skipped; the run goes on. torch is imported inside functions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from annotator.errors import InvalidInputError
from annotator.prelabel.frames import (
    ClassifyInput,
    DetectInput,
    classify_batch,
    classify_pixels,
    decode_min_side,
    detect_inputs,
    detect_pixels,
    load_rgb,
)
from annotator.prelabel.mapping import ClassMap, build_class_map, parse_rules
from annotator.prelabel.outputs import ClassifyOutputs, DetectOutputs, Dropped
from annotator.prelabel.registry import LoadedModel, load_model
from annotator.store import predictions as store
from annotator.store.imagefile import BadImage
from annotator.store.images import resolve_path
from annotator.store.models import Dataset, ModelRun
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    from torch import Tensor
    from torch.utils.data import Dataset as TorchDataset

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class PrelabelOptions:
    """What `annotator prelabel` was asked to do."""

    model: str
    weights: Path | None = None
    threshold: float = 0.3
    batch_size: int = 8
    device: str = "auto"
    maps: tuple[str, ...] = ()
    only_unlabeled: bool = False
    limit: int | None = None
    force: bool = False
    workers: int | None = None  # None: up to 4, one per CPU core

    def check(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidInputError(f"--threshold {self.threshold}: must lie in [0, 1]")
        check_run_options(self.batch_size, self.limit, self.device, self.workers)


def check_run_options(batch_size: int, limit: int | None, device: str, workers: int | None) -> None:
    """The options every pass of a model over images shares (prelabel, embed)."""
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size {batch_size}: must be at least 1")
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit {limit}: must be at least 1")
    if device not in DEVICES:
        raise InvalidInputError(f"--device {device}: choose one of {', '.join(DEVICES)}")
    if workers is not None and workers < 0:
        raise InvalidInputError(f"--workers {workers}: must be 0 or more")


@dataclass
class PrelabelReport:
    """What a prelabelling run did."""

    model: str
    weights_sha256: str | None
    weights_source: str
    device: str
    mapped: dict[str, int]
    run_id: int | None = None
    processed: int = 0
    predictions: int = 0
    already_done: int = 0
    bad: list[BadImage] = field(default_factory=list)
    dropped: Dropped = field(default_factory=Dropped)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Decoded:
    """One image as a worker hands it over: its tensor, or why it could not be read."""

    image_id: int
    path: str
    display: tuple[int, int]
    tensor: Any = None
    reason: str | None = None


class ImageFiles:
    """Map-style dataset for the DataLoader: decoding happens in its workers."""

    def __init__(self, items: list[tuple[int, str, int, int]], spec: ClassifyInput | DetectInput):
        self.items = items
        self.spec = spec

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        image_id, path, width, height = self.items[index]
        try:
            tensor = decode(Path(path), (width, height), self.spec)
        except BadImage as bad:
            return Decoded(image_id, path, (width, height), reason=bad.reason)
        return Decoded(image_id, path, (width, height), tensor)


def decode(path: Path, stored: tuple[int, int], spec: ClassifyInput | DetectInput) -> Tensor:
    """The pixels the model needs (H x W x 3 uint8, resized to its frame) from the file at
    `path`, shown at `stored` = (width, height) in the store; BadImage when it cannot be read
    or no longer matches the store."""
    try:
        img, display = load_rgb(path, decode_min_side(spec, *stored))
    except FileNotFoundError as exc:
        raise BadImage(path, "missing (moved or deleted since it was added)") from exc
    except Exception as exc:  # Pillow raises many types for a broken file
        raise BadImage(path, f"corrupt image ({str(exc).strip() or type(exc).__name__})") from exc
    if display != stored:
        raise BadImage(path, f"changed since it was added: {display[0]}x{display[1]}, "
                             f"stored as {stored[0]}x{stored[1]}")  # fmt: skip
    if isinstance(spec, ClassifyInput):
        return classify_pixels(img, spec)
    return detect_pixels(img, spec, display)


def _as_list(batch: list[Decoded]) -> list[Decoded]:
    return batch


def _one_thread(_worker: int) -> None:
    import torch

    torch.set_num_threads(1)


def make_loader(files: ImageFiles, batch_size: int, workers: int) -> Any:
    """A DataLoader over `files`, keeping order, each batch a list of Decoded."""
    from torch.utils.data import DataLoader

    return DataLoader(
        cast("TorchDataset[Decoded]", files), batch_size=batch_size, shuffle=False,
        num_workers=workers, collate_fn=_as_list,
        worker_init_fn=_one_thread if workers else None,
        prefetch_factor=4 if workers else None,
    )  # fmt: skip


def pick_device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda: torch sees no CUDA device on this machine")
    return choice


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _check_task(model: LoadedModel, ds: Dataset) -> None:
    if model.task == "classification" and ds.task == "detection":
        raise InvalidInputError(
            f"{model.name} is a classification model; dataset {ds.name!r} holds boxes: "
            "use a detection model"
        )


def _lower_score_floor(module: Any, threshold: float) -> None:
    """Let a torchvision detector return boxes down to the threshold (they filter at 0.05)."""
    for holder in (module, getattr(module, "roi_heads", None)):
        floor = getattr(holder, "score_thresh", None)
        if holder is not None and isinstance(floor, float) and floor > threshold:
            holder.score_thresh = threshold


Converter = Callable[[Any, list[Decoded], str], list[store.ImagePredictions]]


def run_params(model: LoadedModel, options: PrelabelOptions, cmap: ClassMap, device: str) -> dict:
    return {
        "task": model.task, "threshold": options.threshold,
        "map": sorted(str(rule) for rule in cmap.rules), "classes": cmap.classes,
        "device": device,
        "batch_size": options.batch_size, "weights": model.weights_source,
        "only_unlabeled": options.only_unlabeled, "limit": options.limit,
    }  # fmt: skip


@dataclass
class Prepared:
    """A model loaded for a dataset: its class map, device, run parameters and a report."""

    model: LoadedModel
    cmap: ClassMap
    device: str
    params: dict[str, Any]
    report: PrelabelReport


def prepare(session: Session, ds: Dataset, options: PrelabelOptions) -> Prepared:
    """Check the options, load the model (the write lock taken by reading `ds` released first,
    so the loading holds no one up) and map its categories onto the dataset's classes."""
    options.check()
    session.commit()
    model = load_model(options.model, options.weights)
    _check_task(model, ds)
    cmap = build_class_map(model.categories, [c.name for c in ds.classes],
                           parse_rules(options.maps), model.name, ds.name)  # fmt: skip
    device = pick_device(options.device)
    report = PrelabelReport(model.name, model.weights_sha256, model.weights_source, device,
                            cmap.counts())  # fmt: skip
    return Prepared(model, cmap, device, run_params(model, options, cmap, device), report)


def prelabel(
    session: Session, ds: Dataset, options: PrelabelOptions, progress: ProgressFn | None = None
) -> PrelabelReport:
    """Run `options.model` over the dataset's images and store its predictions per batch."""
    prep = prepare(session, ds, options)
    model, cmap, device, params, report = (prep.model, prep.cmap, prep.device, prep.params,
                                           prep.report)  # fmt: skip
    plan = store.plan_run(session, ds, model.name, model.weights_sha256, params,
                          only_unlabeled=options.only_unlabeled, limit=options.limit,
                          force=options.force)  # fmt: skip
    report.already_done = plan.already_done
    if not plan.images:
        return report
    run = store.open_run(session, ds, model.name, model.weights_sha256, params, plan.resume)
    report.run_id = run.id
    convert = _converter(model, cmap, options.threshold, ds.task, report.dropped)
    runner = _Runner(session, run, model, options, device, report, convert)
    started = time.perf_counter()
    runner.run_over([(i.id, str(resolve_path(ds, i.path)), i.width, i.height)
                     for i in plan.images], progress)  # fmt: skip
    report.seconds = time.perf_counter() - started
    store.finish_run(session, run)
    return report


@dataclass
class _Runner:
    """Streams images through the loader and the model, one store commit per batch."""

    session: Session
    run: ModelRun
    model: LoadedModel
    options: PrelabelOptions
    device: str
    report: PrelabelReport
    convert: Converter

    def run_over(self, items: list[tuple[int, str, int, int]], progress: ProgressFn | None) -> None:
        import torch

        workers = default_workers() if self.options.workers is None else self.options.workers
        files = ImageFiles(items, self.model.spec)
        loader = make_loader(files, self.options.batch_size, workers)
        module = self.model.module.to(self.device)
        _lower_score_floor(module, self.options.threshold)
        done = 0
        if progress:
            progress(0, len(items))
        with torch.inference_mode():
            for batch in loader:
                self._one_batch(module, batch)
                done += len(batch)
                if progress:
                    progress(done, len(items))

    def _one_batch(self, module: Any, batch: list[Decoded]) -> None:
        good = [d for d in batch if d.tensor is not None]
        self.report.bad.extend(
            BadImage(d.path, d.reason or "unreadable") for d in batch if d.tensor is None
        )
        results = self.convert(module, good, self.device) if good else []
        self.report.predictions += store.write_batch(self.session, self.run, results)
        self.report.processed += len(results)


def _converter(
    model: LoadedModel, cmap: ClassMap, threshold: float, task: str, dropped: Dropped
) -> Converter:
    spec = model.spec
    if isinstance(spec, ClassifyInput):
        outputs = ClassifyOutputs(cmap, threshold, task == "multilabel", dropped)
        return lambda module, good, device: outputs.convert(
            [d.image_id for d in good],
            classify(module, classify_batch([d.tensor for d in good], spec, device)),
        )
    boxes = DetectOutputs(cmap, threshold, task, dropped)
    return lambda module, good, device: boxes.convert(
        [d.image_id for d in good], detect(module, detect_inputs([d.tensor for d in good], device)),
        [(d.tensor.shape[1], d.tensor.shape[0]) for d in good], [d.display for d in good],
    )  # fmt: skip


def classify(module: Any, batch: Tensor) -> Tensor:
    """Logits for a batch of model inputs (see `frames.classify_batch`)."""
    import torch

    out = module(batch)
    logits: Tensor = out if isinstance(out, torch.Tensor) else out[0]
    return logits


def detect(module: Any, inputs: list[Tensor]) -> list[dict[str, Any]]:
    """One dict (boxes, labels, scores) per image, boxes in each input's frame (see
    `frames.detect_inputs`)."""
    out = module(inputs)
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], list):
        out = out[1]  # scripted torchvision detectors return (losses, detections)
    results: list[dict[str, Any]] = list(out)
    if len(results) != len(inputs) or not all(
        isinstance(r, dict) and {"boxes", "labels", "scores"} <= r.keys() for r in results
    ):
        raise InvalidInputError(
            "the detection model must return one dict with boxes, labels and scores per image"
        )
    return results
