"""Training on a detection dataset: the same standardised logistic regression as whole-image
training, fitted on the vectors of the accepted boxes' crops (see `crops`), cross-validated the
same way, then used to propose the class of the boxes a detector run found. Those are the
pending boxes of the newest run not made by a trained classifier (or `--run ID`), whatever class
the run's class map gave them, plus the pending boxes earlier trains proposed. Prelabel drops
detections whose category reaches no class, so to re-class what a detector finds under other
names, map those categories onto any class (`prelabel --map CATEGORY=CLASS`) and train.

Each such box gets one pending proposal in a new run (model `train:<embeddings>`) with the
classifier's class and, as its score, the classifier's probability of that class (the
detector's own score chose the box, above its threshold; it is not multiplied in, so a retrain
scores its own earlier proposals the same way). The proposal replaces the pending box it
re-classes in the same commit (history records the removal), so an image shows one box per
object and `space` accepts them. Accepted and rejected boxes are never touched. Vectors are
computed for each train (nothing stored): cost grows with the boxes, shown by a progress bar."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotator.annotation import Label
from annotator.errors import InvalidInputError
from annotator.learn.crops import MARGIN, MIN_SIDE, CropRun, CropVectors, crop_vectors, too_small
from annotator.learn.embed import load_backbone
from annotator.learn.train import (
    MIN_LABELS,
    WRITE_BATCH,
    TrainingSet,
    TrainOptions,
    TrainReport,
    cross_validate,
    make_classifier,
)
from annotator.prelabel.outputs import margin_uncertainty
from annotator.prelabel.pipeline import pick_device
from annotator.store import box_training, predictions, training
from annotator.store.box_training import BoxRow
from annotator.store.models import Dataset, ModelRun
from annotator.store.predictions import ImagePredictions
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Candidate:
    """A place to propose a class for: one box, and the pending boxes drawn there (one from the
    detector, or one from an earlier train; two after an interrupted write) that it replaces."""

    row: BoxRow
    replaced: list[int] = field(default_factory=list)


def train_boxes(
    session: Session, ds: Dataset, options: TrainOptions, progress: ProgressFn | None = None
) -> TrainReport:
    """Fit on the accepted boxes' crops, cross-validate, and propose classes for the pending
    boxes of the detector run as a new run."""
    started = time.perf_counter()
    accepted = box_training.accepted_boxes(session, ds)
    classes = [c.name for c in sorted(ds.classes, key=lambda c: c.position)]
    _refuse_too_few(ds, classes, [b for b in accepted if not too_small(b.box)])
    name = training.trained_model_name(options.embeddings)
    detector = box_training.detector_run(session, ds, options.run_id)
    candidates = _places(box_training.pending_boxes(session, ds, detector, name))
    rows = [*accepted, *(c.row for c in candidates)]
    files = box_training.image_files(session, ds, {r.image_id for r in rows})
    session.commit()  # no transaction held while the crops are computed
    backbone = load_backbone(options.embeddings, options.weights)
    how = CropRun(pick_device(options.device), options.batch_size, _workers(options))
    vectors = crop_vectors(backbone, rows, files, how, progress)
    found = _training_set(ds, classes, accepted, vectors)
    report = cross_validate(found, options)
    classifier = make_classifier(False).fit(found.x, found.y)
    report.unit, report.source_run = "boxes", detector.id if detector else None
    report.small = len(vectors.small)
    report.unreadable = [f"{b.path}: {b.reason}" for b in vectors.bad]
    _propose(session, ds, (options, name, backbone.weights_sha256), found, classifier,
             (candidates, vectors), report)  # fmt: skip
    report.seconds = time.perf_counter() - started
    return report


def _workers(options: TrainOptions) -> int:
    from annotator.prelabel.pipeline import default_workers

    return default_workers() if options.workers is None else options.workers


def _places(pending: list[BoxRow]) -> list[Candidate]:
    """One candidate per image and box position (pixels rounded to 0.01)."""
    by_place: dict[tuple[int, tuple[float, ...]], Candidate] = {}
    for row in pending:
        box = row.box
        key = (row.image_id, tuple(round(v, 2) for v in (box.x, box.y, box.w, box.h)))
        by_place.setdefault(key, Candidate(row)).replaced.append(row.ann_id)
    return list(by_place.values())


def _refuse_too_few(ds: Dataset, classes: list[str], boxes: list[BoxRow]) -> None:
    counts = {name: 0 for name in classes}
    for row in boxes:
        counts[row.class_name] = counts.get(row.class_name, 0) + 1
    few = [f"{name} {n}" for name, n in counts.items() if n < MIN_LABELS]
    if few:
        raise InvalidInputError(
            f"dataset {ds.name!r}: train needs at least {MIN_LABELS} accepted boxes per class "
            f"(at least {MIN_SIDE:g} pixels wide and high, on readable images); too few: "
            f"{', '.join(few)}"
        )


def _training_set(
    ds: Dataset, classes: list[str], accepted: list[BoxRow], vectors: CropVectors
) -> TrainingSet:
    """The accepted boxes that have a vector, their vectors and class indices."""
    import numpy as np

    at = vectors.rows()
    kept = [b for b in accepted if b.ann_id in at]
    _refuse_too_few(ds, classes, kept)
    index = {name: k for k, name in enumerate(classes)}
    y = np.array([index[b.class_name] for b in kept], dtype=np.int64)
    x = vectors.matrix[[at[b.ann_id] for b in kept]]
    found = TrainingSet(classes, False, [b.ann_id for b in kept], x, y,
                        skipped=len(accepted) - len(kept))  # fmt: skip
    found.counts = {name: int(n) for name, n in
                    zip(classes, np.bincount(y, minlength=len(classes)), strict=True)}  # fmt: skip
    return found


def _propose(
    session: Session, ds: Dataset, run_as: tuple[TrainOptions, str, str | None],
    found: TrainingSet, classifier: Any, places: tuple[list[Candidate], CropVectors],
    report: TrainReport,
) -> None:  # fmt: skip
    candidates, vectors = places
    report.model, report.task = run_as[1], ds.task
    run = _open_run(session, ds, run_as, found, report)
    at = vectors.rows()
    ready = [c for c in candidates if c.row.ann_id in at]
    matrix = vectors.matrix[[at[c.row.ann_id] for c in ready]]
    probs = classifier.predict_proba(matrix) if ready else None
    by_image: dict[int, list[tuple[Candidate, np.ndarray]]] = {}
    for k, cand in enumerate(ready):
        by_image.setdefault(cand.row.image_id, []).append((cand, probs[k]))  # type: ignore[index]
    images = sorted(by_image)
    for start in range(0, len(images), WRITE_BATCH):
        chunk = images[start : start + WRITE_BATCH]
        batch = [_proposals(i, by_image[i], found.classes, report) for i in chunk]
        replaced = [a for i in chunk for cand, _ in by_image[i] for a in cand.replaced]
        report.predictions += box_training.write_proposals(session, run, batch, replaced)
    report.proposed = len(ready)
    kept = {c.row.image_id for c in candidates}
    report.retired = training.retire_older_proposals(session, run, kept)
    predictions.finish_run(session, run)


def _open_run(
    session: Session, ds: Dataset, run_as: tuple[TrainOptions, str, str | None],
    found: TrainingSet, report: TrainReport,
) -> ModelRun:  # fmt: skip
    options, name, weights = run_as
    params = {
        "task": "detection", "embeddings": options.embeddings, "classifier": "logistic_regression",
        "input": "box crops", "margin": MARGIN, "min_side": MIN_SIDE,
        "score": "class probability", "detector_run": report.source_run,
        "classes": found.classes, "labelled": report.labelled, "folds": report.folds,
        "cv_accuracy": report.cv_accuracy, "recall": report.recall,
    }  # fmt: skip
    run = predictions.open_run(session, ds, name, weights, params)
    report.run_id = run.id
    return run


def _proposals(
    image_id: int, found: list[tuple[Candidate, np.ndarray]], classes: list[str],
    report: TrainReport,
) -> ImagePredictions:  # fmt: skip
    labels: list[Label] = []
    worst = 0.0
    for cand, probs in found:
        scores = [float(p) for p in probs]
        best = max(range(len(scores)), key=scores.__getitem__)
        labels.append(Label(classes[best], cand.row.box, scores[best], "model", "pending"))
        worst = max(worst, margin_uncertainty(scores))
        report.reclassed += classes[best] != cand.row.class_name
    return ImagePredictions(image_id, labels, worst)
