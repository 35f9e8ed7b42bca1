"""Per-annotator figures of a dataset (`stats`, the TUI's overview): label changes and images
each person changed, labels per hour and the median seconds they spent per image. The
labelling app records the seconds spent on each image a person changed something on
(`record_time`, from its write worker). Labels per hour: label changes divided by the hours
recorded on images, or (no times recorded: changes made outside the app) by the span from the
person's first to last change, at least a minute. Depends on the ORM only."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.store.models import HistoryEvent, ImageTime

LABEL_ACTIONS = ("create", "edit", "delete", "review", "status")
MIN_SPAN_H = 1 / 60


@dataclass(frozen=True, slots=True)
class AnnotatorFigures:
    """One person's work on a dataset."""

    annotator: str
    changes: int  # label changes (each label created, edited, deleted, reviewed; status set)
    images: int  # distinct images they changed
    labels_per_hour: float
    median_seconds: float | None  # per image, from the labelling app's records
    timed_images: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_time(session: Session, dataset_id: int, image_id: int, author: str,
                seconds: float) -> None:  # fmt: skip
    """Record that `author` spent `seconds` on an image in the labelling app. Commits."""
    session.add(ImageTime(dataset_id=dataset_id, image_id=image_id, author=author,
                          seconds=max(0.0, float(seconds))))  # fmt: skip
    session.commit()


def annotator_figures(session: Session, dataset_id: int) -> list[AnnotatorFigures]:
    """Every person's figures (model runs and bulk changes such as imports left out)."""
    stmt = (
        select(HistoryEvent.author, func.count(), func.count(func.distinct(HistoryEvent.image_id)),
               func.min(HistoryEvent.created_at), func.max(HistoryEvent.created_at))
        .where(HistoryEvent.dataset_id == dataset_id, HistoryEvent.group_kind == "do",
               HistoryEvent.action.in_(LABEL_ACTIONS), ~HistoryEvent.author.startswith("model:"),
               ~HistoryEvent.author.endswith(")"))  # not bulk work: "ann (import)"
        .group_by(HistoryEvent.author)
    )  # fmt: skip
    times = _times(session, dataset_id)
    out = []
    for author, changes, images, first, last in session.execute(stmt).all():
        spent = times.get(author, [])
        hours = sum(spent) / 3600 if sum(spent) > 0 else _span_h(first, last)
        out.append(AnnotatorFigures(
            author, int(changes), int(images), round(int(changes) / hours, 1),
            round(statistics.median(spent), 1) if spent else None, len(spent),
        ))  # fmt: skip
    return sorted(out, key=lambda f: f.annotator)


def _times(session: Session, dataset_id: int) -> dict[str, list[float]]:
    stmt = select(ImageTime.author, ImageTime.seconds).where(ImageTime.dataset_id == dataset_id)
    out: dict[str, list[float]] = {}
    for author, seconds in session.execute(stmt):
        out.setdefault(author, []).append(float(seconds))
    return out


def _span_h(first: datetime, last: datetime) -> float:
    return max((last - first).total_seconds() / 3600, MIN_SPAN_H)
