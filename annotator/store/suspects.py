"""Suspect-label flags in the store: writing the flags of a `suspects` run (superseding the open
flags of the previous one), listing the open ones worst first, and clearing them. A flag is
cleared when the image is edited after it was raised (its revision moved on: a label fixed, or
the image marked done as it is) or when a person confirms the label; how, when and by whom is
kept on the flag, which is never deleted. A detection dataset's flags name a box each: its kind
(missing, swapped, misplaced) and where it is. Depends on the ORM only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, aliased

from annotator.errors import NotFoundError
from annotator.store.models import (
    Annotation,
    Dataset,
    HistoryEvent,
    Image,
    LabelClass,
    SuspectFlag,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class NewFlag:
    image_id: int
    class_id: int | None  # the class given (multilabel: the class in doubt)
    suggested_class_id: int | None  # what the model says instead (None: drop the class)
    score: float  # label quality, 0 worst .. 1
    kind: str | None = None  # detection: missing, swapped or misplaced (BOX_SUSPECTS)
    box: tuple[float, float, float, float] | None = None  # detection: x, y, w, h in doubt
    annotation_id: int | None = None  # detection: the box's annotation (a missing one's: the
    # prediction); whole-image labels: found by write_flags


@dataclass(frozen=True, slots=True)
class FlagRow:
    """An open flag as listed: the image, the class given and suggested, the quality score."""

    id: int
    image_id: int
    path: str
    given: str | None
    suggested: str | None
    score: float
    run: int
    created_at: datetime
    kind: str | None = None
    box: tuple[float, float, float, float] | None = None


def describe(kind: str | None, given: str | None, suggested: str | None, score: float) -> str:
    """A flag in a few words, as the status bar shows it."""
    if kind == "missing":
        return f"suspect: a {suggested or '?'} box missing (quality {score:.2f})"
    if kind == "swapped":
        return f"suspect: box {given or '?'} → {suggested or '?'} (quality {score:.2f})"
    if kind == "misplaced":
        return f"suspect: {given or '?'} box badly placed (quality {score:.2f})"
    was = given or "?"
    return f"suspect: {was} → {suggested or 'no ' + (given or 'label')} (quality {score:.2f})"


def accepted_label_ids(session: Session, image_ids: Sequence[int]) -> dict[int, int]:
    """The first accepted whole-image label of each image (its annotation id), by image."""
    found: dict[int, int] = {}
    for start in range(0, len(image_ids), 500):
        stmt = (
            select(Annotation.image_id, func.min(Annotation.id))
            .where(Annotation.image_id.in_(image_ids[start : start + 500]),
                   Annotation.kind == "label", Annotation.review == "accepted")
            .group_by(Annotation.image_id)
        )  # fmt: skip
        found.update((int(i), int(a)) for i, a in session.execute(stmt))
    return found


def write_flags(session: Session, ds: Dataset, flags: Sequence[NewFlag], author: str) -> int:
    """Store the flags of a new run (the open flags of earlier runs are superseded) and
    commit. Returns the run's number."""
    run = int(session.scalar(select(func.max(SuspectFlag.run))
                             .where(SuspectFlag.dataset_id == ds.id)) or 0) + 1  # fmt: skip
    now = utcnow()
    session.execute(
        update(SuspectFlag)
        .where(SuspectFlag.dataset_id == ds.id, SuspectFlag.cleared_at.is_(None))
        .values(cleared_at=now, cleared_by=author, resolution="superseded")
    )
    ids = [f.image_id for f in flags]
    revisions = _revisions(session, ids)
    labels = accepted_label_ids(session, ids)
    rows = [
        {"dataset_id": ds.id, "image_id": f.image_id,
         "annotation_id": f.annotation_id if f.kind else labels.get(f.image_id),
         "class_id": f.class_id, "suggested_class_id": f.suggested_class_id,
         "score": min(1.0, max(0.0, float(f.score))), "run": run,
         "image_revision": revisions[f.image_id], "created_at": now, "kind": f.kind,
         **dict(zip("xywh", f.box or (None,) * 4, strict=True))}
        for f in flags if f.image_id in revisions
    ]  # fmt: skip
    if rows:
        session.execute(insert(SuspectFlag), rows)
    session.commit()
    return run


def _revisions(session: Session, image_ids: Sequence[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for start in range(0, len(image_ids), 500):
        stmt = select(Image.id, Image.revision).where(Image.id.in_(image_ids[start : start + 500]))
        found.update((int(i), int(r)) for i, r in session.execute(stmt))
    return found


def clear_edited(session: Session, ds: Dataset) -> int:
    """Clear the open flags of images edited since they were raised (by the author of the
    image's newest change) and commit. Returns how many were cleared."""
    stmt = (
        select(SuspectFlag)
        .join(Image, Image.id == SuspectFlag.image_id)
        .where(SuspectFlag.dataset_id == ds.id, SuspectFlag.cleared_at.is_(None),
               Image.revision != SuspectFlag.image_revision)
    )  # fmt: skip
    stale = list(session.scalars(stmt))
    now = utcnow()
    for flag in stale:
        flag.cleared_at, flag.resolution = now, "edited"
        flag.cleared_by = _last_editor(session, flag.image_id)
    session.commit()
    return len(stale)


def _last_editor(session: Session, image_id: int) -> str | None:
    stmt = (
        select(HistoryEvent.author)
        .where(HistoryEvent.image_id == image_id)
        .order_by(HistoryEvent.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def open_flags(
    session: Session, ds: Dataset, run: int | None = None, limit: int | None = None
) -> list[FlagRow]:
    """The open flags of `ds` (of one run, when given), worst label first; flags of images
    edited since are cleared first (this commits)."""
    clear_edited(session, ds)
    given, suggested = aliased(LabelClass), aliased(LabelClass)
    stmt = (
        select(SuspectFlag.id, Image.id, Image.path, given.name, suggested.name,
               SuspectFlag.score, SuspectFlag.run, SuspectFlag.created_at, SuspectFlag.kind,
               SuspectFlag.x, SuspectFlag.y, SuspectFlag.w, SuspectFlag.h)
        .join(Image, Image.id == SuspectFlag.image_id)
        .outerjoin(given, given.id == SuspectFlag.class_id)
        .outerjoin(suggested, suggested.id == SuspectFlag.suggested_class_id)
        .where(SuspectFlag.dataset_id == ds.id, SuspectFlag.cleared_at.is_(None))
        .order_by(SuspectFlag.score, SuspectFlag.id)
    )  # fmt: skip
    if run is not None:
        stmt = stmt.where(SuspectFlag.run == run)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_flag_row(row) for row in session.execute(stmt).tuples()]


def _flag_row(row: tuple[Any, ...]) -> FlagRow:
    flag_id, image_id, path, given, suggested, score, run, created_at, kind, x, y, w, h = row
    box = None if x is None else (float(x), float(y), float(w), float(h))
    return FlagRow(flag_id, image_id, path, given, suggested, score, run, created_at, kind, box)


def confirm(session: Session, ds: Dataset, image_id: int, author: str) -> int:
    """A person says the image's label is right: its open flags are cleared as confirmed.
    Commits; returns how many."""
    flags = list(session.scalars(select(SuspectFlag).where(
        SuspectFlag.dataset_id == ds.id, SuspectFlag.image_id == image_id,
        SuspectFlag.cleared_at.is_(None))))  # fmt: skip
    if not flags:
        raise NotFoundError(f"image {image_id} has no open suspect flag in {ds.name!r}")
    now = utcnow()
    for flag in flags:
        flag.cleared_at, flag.cleared_by, flag.resolution = now, author, "confirmed"
    session.commit()
    return len(flags)


def flag_history(session: Session, ds: Dataset, image_id: int) -> list[SuspectFlag]:
    """Every flag raised on an image, oldest first (open and cleared)."""
    stmt = (
        select(SuspectFlag)
        .where(SuspectFlag.dataset_id == ds.id, SuspectFlag.image_id == image_id)
        .order_by(SuspectFlag.id)
    )
    return list(session.scalars(stmt))
