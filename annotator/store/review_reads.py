"""What review (the FiftyOne mirror) reads from the store, in bulk: images with their labels and
their worst open suspect flag as plain records (one query per chunk of images, no ORM objects),
which images changed since a history position or had a suspect flag raised or cleared since a
time, label counts, and the state of the last push. Read-only; knows nothing of
FiftyOne."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.annotation import Box
from annotator.store.images import resolve_path
from annotator.store.models import (
    Annotation,
    Dataset,
    HistoryEvent,
    Image,
    LabelClass,
    ModelRun,
    SuspectFlag,
    SyncState,
)

CHUNK = 500


@dataclass(slots=True)
class LabelRecord:
    """One annotation as the mirror shows it."""

    id: int
    image_id: int
    class_name: str
    box: Box | None
    source: str
    model: str | None
    run_id: int | None
    score: float | None
    review: str
    note: str | None
    iscrowd: bool
    revision: int
    created: str = ""  # when it was made (UTC, microseconds): with the id, the label's identity


@dataclass(slots=True)
class ImageRecord:
    """One image, its file (absolute) and where it stands, with its labels."""

    id: int
    filepath: str
    width: int
    height: int
    split: str | None
    status: str
    uncertainty: float | None
    revision: int
    labels: list[LabelRecord] = field(default_factory=list)
    suspect_score: float | None = None  # the worst open suspect flag's label quality
    suggested: str | None = None  # the class that flag suggests instead


def image_ids(session: Session, ds: Dataset) -> list[int]:
    return list(session.scalars(select(Image.id).where(Image.dataset_id == ds.id)))


def chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_images(session: Session, ds: Dataset, ids: list[int]) -> list[ImageRecord]:
    """The images `ids` (in that order, missing ones left out) with their labels."""
    found: dict[int, ImageRecord] = {}
    for batch in chunks(ids):
        for row in session.execute(select(*_IMAGE_COLUMNS).where(Image.id.in_(batch))):
            found[row.id] = _image(ds, row)
        for row in session.execute(_label_query().where(Annotation.image_id.in_(batch))):
            found[row.image_id].labels.append(_label(row))
        for image_id, score, suggested in _open_flags(session, batch):
            rec = found[image_id]
            if rec.suspect_score is None or score < rec.suspect_score:
                rec.suspect_score, rec.suggested = score, suggested
    return [found[i] for i in ids if i in found]


def _open_flags(session: Session, batch: list[int]) -> list[tuple[int, float, str | None]]:
    """(image id, label quality, class suggested) of the open suspect flags raised on the
    images as they are now (an edit since settles a flag)."""
    stmt = (
        select(SuspectFlag.image_id, SuspectFlag.score, LabelClass.name)
        .join(Image, Image.id == SuspectFlag.image_id)
        .outerjoin(LabelClass, LabelClass.id == SuspectFlag.suggested_class_id)
        .where(SuspectFlag.image_id.in_(batch), SuspectFlag.cleared_at.is_(None),
               SuspectFlag.image_revision == Image.revision)
    )  # fmt: skip
    return [(int(i), float(score), name) for i, score, name in session.execute(stmt)]


def flags_changed_since(session: Session, ds: Dataset, when: datetime) -> set[int]:
    """Images that had a suspect flag raised or cleared at or after `when`."""
    stmt = select(SuspectFlag.image_id).where(
        SuspectFlag.dataset_id == ds.id,
        (SuspectFlag.created_at >= when) | (SuspectFlag.cleared_at >= when),
    )
    return set(session.scalars(stmt.distinct()))


_IMAGE_COLUMNS = (Image.id, Image.path, Image.width, Image.height, Image.split, Image.status,
                  Image.uncertainty, Image.revision)  # fmt: skip


def _image(ds: Dataset, row: Any) -> ImageRecord:
    return ImageRecord(
        id=row.id, filepath=str(resolve_path(ds, row.path)), width=row.width, height=row.height,
        split=row.split, status=row.status, uncertainty=row.uncertainty, revision=row.revision,
    )  # fmt: skip


def _label_query() -> Any:
    return (
        select(
            Annotation.id,
            Annotation.image_id,
            LabelClass.name,
            Annotation.kind,
            Annotation.x,
            Annotation.y,
            Annotation.w,
            Annotation.h,
            Annotation.source,
            ModelRun.model,
            Annotation.run_id,
            Annotation.score,
            Annotation.review,
            Annotation.note,
            Annotation.iscrowd,
            Annotation.revision,
            Annotation.created_at,
        )
        .join(LabelClass, LabelClass.id == Annotation.class_id)
        .join(ModelRun, ModelRun.id == Annotation.run_id, isouter=True)
        .order_by(Annotation.id)
    )


def _label(row: Any) -> LabelRecord:
    box = Box(row.x, row.y, row.w, row.h) if row.kind == "box" else None
    return LabelRecord(
        id=row.id, image_id=row.image_id, class_name=row.name, box=box, source=row.source,
        model=row.model, run_id=row.run_id, score=row.score, review=row.review, note=row.note,
        iscrowd=bool(row.iscrowd), revision=row.revision, created=stamp(row.created_at),
    )  # fmt: skip


def stamp(when: datetime | None) -> str:
    """A creation time as text, the same whatever the engine hands back (naive on SQLite,
    aware in the session's zone on PostgreSQL)."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="microseconds")


def touched_since(session: Session, ds: Dataset, position: int) -> set[int]:
    """Images named by history events newer than `position`."""
    stmt = select(HistoryEvent.image_id).where(
        HistoryEvent.dataset_id == ds.id,
        HistoryEvent.id > position,
        HistoryEvent.image_id.is_not(None),
    )
    return set(session.scalars(stmt.distinct()))


def with_new_labels(session: Session, ds: Dataset, after_id: int) -> set[int]:
    """Images holding annotations created after annotation `after_id` (bulk inserts such as
    prelabelling or imports need not write history)."""
    stmt = select(Annotation.image_id).where(
        Annotation.dataset_id == ds.id, Annotation.id > after_id
    )
    return set(session.scalars(stmt.distinct()))


def added_since(session: Session, ds: Dataset, when: datetime) -> set[int]:
    """Images registered at or after `when` (an id SQLite reuses after a delete included)."""
    stmt = select(Image.id).where(Image.dataset_id == ds.id, Image.added_at >= when)
    return set(session.scalars(stmt))


def with_classes(session: Session, ds: Dataset, class_ids: Iterable[int]) -> set[int]:
    """Images holding annotations of `class_ids` (a renamed class shows on all of them)."""
    ids = list(class_ids)
    if not ids:
        return set()
    stmt = select(Annotation.image_id).where(
        Annotation.dataset_id == ds.id, Annotation.class_id.in_(ids)
    )
    return set(session.scalars(stmt.distinct()))


def last_annotation_id(session: Session, ds: Dataset) -> int:
    stmt = select(func.max(Annotation.id)).where(Annotation.dataset_id == ds.id)
    return int(session.scalar(stmt) or 0)


def label_totals(session: Session, ds: Dataset) -> dict[str, tuple[int, int]]:
    """Review state -> (annotations, images holding one)."""
    stmt = (
        select(Annotation.review, func.count(), func.count(Annotation.image_id.distinct()))
        .where(Annotation.dataset_id == ds.id)
        .group_by(Annotation.review)
    )
    return {review: (int(n), int(images)) for review, n, images in session.execute(stmt)}


def label_counts_per_image(session: Session, ds: Dataset) -> dict[tuple[int, str], int]:
    """(image id, review state) -> how many annotations."""
    stmt = (
        select(Annotation.image_id, Annotation.review, func.count())
        .where(Annotation.dataset_id == ds.id)
        .group_by(Annotation.image_id, Annotation.review)
    )
    return {(image_id, review): int(n) for image_id, review, n in session.execute(stmt)}


def sync_state(session: Session, ds: Dataset, target: str) -> SyncState | None:
    """What the last push of `ds` to mirror `target` recorded (None: never pushed there)."""
    stmt = select(SyncState).where(SyncState.dataset_id == ds.id, SyncState.target == target)
    return session.scalar(stmt)
