"""What suspect boxes are found from: a detection dataset's accepted boxes and a model run's
predicted boxes on the same images, as plain records, and which run to compare with by default
(the newest with predictions on images that hold accepted boxes). A rejected prediction is left
out (a person already said no to it), as are votes of overlap layers. Depends on the ORM only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError, NotFoundError
from annotator.store.models import Annotation, Dataset, ModelRun
from annotator.store.predictions import get_run

PREDICTED = ("pending", "accepted")  # a run's predictions that still count


@dataclass(frozen=True, slots=True)
class BoxRecord:
    """A box (displayed pixels) with its class, its annotation and its score (predictions)."""

    id: int
    class_id: int
    x: float
    y: float
    w: float
    h: float
    score: float | None


@dataclass
class BoxesAndPredictions:
    """Per image (the images holding both): the accepted boxes and the run's predictions."""

    run: ModelRun
    labelled: dict[int, list[BoxRecord]]
    predicted: dict[int, list[BoxRecord]]


_COLUMNS = (Annotation.image_id, Annotation.id, Annotation.class_id, Annotation.x, Annotation.y,
            Annotation.w, Annotation.h, Annotation.score)  # fmt: skip


def _accepted_boxes(ds: Dataset) -> Select[Any]:
    return select(*_COLUMNS).where(Annotation.dataset_id == ds.id, Annotation.kind == "box",
                                   Annotation.review == "accepted")  # fmt: skip


def _predicted_boxes(run_id: int) -> Select[Any]:
    return select(*_COLUMNS).where(Annotation.run_id == run_id, Annotation.kind == "box",
                                   Annotation.review.in_(PREDICTED))  # fmt: skip


def _by_image(session: Session, stmt: Select[Any]) -> dict[int, list[BoxRecord]]:
    found: dict[int, list[BoxRecord]] = defaultdict(list)
    for image_id, *fields in session.execute(stmt.order_by(Annotation.id)):
        found[int(image_id)].append(BoxRecord(*fields))
    return dict(found)


def comparison_run(session: Session, ds: Dataset, run_id: int | None = None) -> ModelRun:
    """Run `run_id` of `ds`, or the newest run with predicted boxes on images that hold
    accepted boxes."""
    if ds.task != "detection":
        raise InvalidInputError(f"dataset {ds.name!r} is {ds.task}: it has no boxes to compare")
    if run_id is not None:
        return get_run(session, ds, run_id)
    labelled = select(Annotation.image_id).where(
        Annotation.dataset_id == ds.id, Annotation.kind == "box", Annotation.review == "accepted"
    )
    newest = select(func.max(Annotation.run_id)).where(
        Annotation.dataset_id == ds.id, Annotation.run_id.is_not(None), Annotation.kind == "box",
        Annotation.review.in_(PREDICTED), Annotation.score.is_not(None),
        Annotation.image_id.in_(labelled),
    )  # fmt: skip
    found = session.scalar(newest)
    if found is None:
        raise NotFoundError(
            f"dataset {ds.name!r} has no model run with predicted boxes on images with accepted "
            "boxes: run annotator prelabel on the labelled images first"
        )
    return get_run(session, ds, int(found))


def boxes_and_predictions(session: Session, ds: Dataset, run: ModelRun) -> BoxesAndPredictions:
    """The accepted boxes and `run`'s scored predictions on the images holding both."""
    labelled = _by_image(session, _accepted_boxes(ds))
    predicted = _by_image(session, _predicted_boxes(run.id).where(Annotation.score.is_not(None)))
    both = labelled.keys() & predicted.keys()
    return BoxesAndPredictions(run, {i: labelled[i] for i in sorted(both)},
                               {i: predicted[i] for i in sorted(both)})  # fmt: skip
