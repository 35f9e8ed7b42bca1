"""How far labelling has come in a dataset: images per status, per split (with how many are
done), and per class the accepted labels and the predictions still waiting for review. One
grouped query each, for the overview screen and reports. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.store.models import Annotation, Dataset, Image, LabelClass

DONE_STATUSES = ("labeled", "reviewed", "skipped")


@dataclass(frozen=True, slots=True)
class ClassProgress:
    name: str
    position: int
    color: str
    accepted: int
    pending: int


@dataclass(frozen=True, slots=True)
class Progress:
    name: str
    task: str
    images: int
    done: int
    status: dict[str, int] = field(default_factory=dict)
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (images, done)
    classes: tuple[ClassProgress, ...] = ()
    pending_images: int = 0  # images with at least one prediction waiting for review


def progress(session: Session, ds: Dataset) -> Progress:
    status: dict[str, int] = {}
    splits: dict[str, tuple[int, int]] = {}
    stmt = (
        select(Image.split, Image.status, func.count())
        .where(Image.dataset_id == ds.id)
        .group_by(Image.split, Image.status)
    )
    for split, st, count in session.execute(stmt):
        status[st] = status.get(st, 0) + count
        name = split or "none"
        images, done = splits.get(name, (0, 0))
        splits[name] = (images + count, done + (count if st in DONE_STATUSES else 0))
    return Progress(
        ds.name, ds.task, sum(status.values()), sum(status.get(s, 0) for s in DONE_STATUSES),
        status, splits, _classes(session, ds), _pending_images(session, ds.id),
    )  # fmt: skip


def _classes(session: Session, ds: Dataset) -> tuple[ClassProgress, ...]:
    stmt = (
        select(Annotation.class_id, Annotation.review, func.count())
        .where(Annotation.dataset_id == ds.id, Annotation.review != "rejected")
        .group_by(Annotation.class_id, Annotation.review)
    )
    counts: dict[tuple[int, str], int] = {(c, r): n for c, r, n in session.execute(stmt)}
    classes = sorted(ds.classes, key=lambda c: c.position)
    return tuple(_class(c, counts) for c in classes)


def _class(cls: LabelClass, counts: dict[tuple[int, str], int]) -> ClassProgress:
    return ClassProgress(cls.name, cls.position, cls.color, counts.get((cls.id, "accepted"), 0),
                         counts.get((cls.id, "pending"), 0))  # fmt: skip


def _pending_images(session: Session, dataset_id: int) -> int:
    stmt = select(func.count(func.distinct(Annotation.image_id))).where(
        Annotation.dataset_id == dataset_id, Annotation.review == "pending"
    )
    return int(session.scalar(stmt) or 0)
