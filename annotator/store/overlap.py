"""Overlap: a reproducible sample of a dataset's images that k people label independently, to
measure how well they agree. On an overlap image each person's labels are votes in their own
layer (`annotations.layer` = the person, review "vote"), which no export, count or training set
reads as labels; a person who gave a label (or marked the image done as it is: an empty vote)
is done with it (`overlap_done`) and is not served it again. Until k people are done, a person
sees only the shared layer and their own votes; the queue serves the image to up to k people at
once (the lease rules in `annotator.store.leases` ask `no_seat`). `annotator consensus` later
writes the shared layer from the votes. Depends on the ORM only."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.models import (
    VOTE,
    Annotation,
    Dataset,
    Image,
    Lease,
    OverlapDone,
    OverlapImage,
)


@dataclass(frozen=True, slots=True)
class MarkReport:
    """What `mark` did: images newly marked, already marked, and the dataset's total."""

    marked: int
    already: int
    images: int
    annotators: int


def mark(session: Session, ds: Dataset, fraction: float, annotators: int, author: str,
         seed: int | None = None) -> MarkReport:  # fmt: skip
    """Mark round(fraction * images) of the dataset's unlabeled images (a sample drawn with
    `seed`: the same seed on the same images draws the same sample) to be labelled by
    `annotators` people each. Images marked before keep their mark. Commits."""
    if not 0 < fraction <= 1:
        raise InvalidInputError(f"--fraction {fraction}: expected a number in (0, 1]")
    if annotators < 2:
        raise InvalidInputError(f"--annotators {annotators}: overlap needs at least 2 people")
    total = int(session.scalar(select(func.count()).where(Image.dataset_id == ds.id)) or 0)
    marked = set(session.scalars(select(OverlapImage.image_id).where(
        OverlapImage.dataset_id == ds.id)))  # fmt: skip
    candidates = list(session.scalars(
        select(Image.id).where(Image.dataset_id == ds.id, Image.status == "unlabeled")
        .order_by(Image.id)
    ))  # fmt: skip
    want = min(round(fraction * total), len(candidates))
    chosen = random.Random(seed).sample(candidates, want) if want else []
    new = sorted(set(chosen) - marked)
    session.add_all(OverlapImage(image_id=i, dataset_id=ds.id, annotators=annotators,
                                 seed=seed, marked_by=author) for i in new)  # fmt: skip
    session.commit()
    return MarkReport(len(new), len(set(chosen) & marked), total, annotators)


def done_by(session: Session, image_id: int) -> list[str]:
    """Who has finished their layer of the overlap image, by name."""
    stmt = select(OverlapDone.annotator).where(OverlapDone.image_id == image_id)
    return sorted(session.scalars(stmt))


def is_complete(session: Session, ov: OverlapImage) -> bool:
    """All the people the image asks for have finished their layers."""
    return len(done_by(session, ov.image_id)) >= ov.annotators


def layer_for(session: Session, image_id: int, author: str) -> str | None:
    """The layer `author`'s label changes on the image go to: their own (votes) while it is an
    overlap image not every annotator has finished; the shared layer (None) otherwise."""
    ov = session.get(OverlapImage, image_id)
    if ov is None or is_complete(session, ov):
        return None
    return author


def mark_done(session: Session, image_id: int, author: str) -> None:
    """Record that `author` finished their layer of the image (in the caller's transaction)."""
    found = session.get(OverlapDone, (image_id, author))
    if found is None:
        session.add(OverlapDone(image_id=image_id, annotator=author))
        session.flush()


def visible(session: Session, image_id: int, viewer: str | None) -> ColumnElement[bool]:
    """Which of the image's annotations `viewer` may see: all of them, except on an overlap
    image not every annotator has finished, where they see the shared layer's labels and their
    own votes only (no one else's votes, no model proposals)."""
    ov = session.get(OverlapImage, image_id)
    if ov is None or is_complete(session, ov):
        return true()
    shared = and_(Annotation.layer.is_(None), Annotation.review != "pending")
    return or_(shared, Annotation.layer == viewer) if viewer is not None else shared


def is_overlap() -> ColumnElement[bool]:
    """True for an overlap image (correlated to `Image`)."""
    return exists().where(OverlapImage.image_id == Image.id)


def no_seat(scope: str, holder: str, now: datetime) -> ColumnElement[bool]:
    """True for an overlap image that `holder` may not be served (correlated to `Image`): they
    are done with it already, or as many other people as it asks for hold a lease on it in
    `scope` or are done with it."""
    # Nested two levels down, these subqueries correlate to the outer query's `images` only when
    # told to: left alone, SQLAlchemy adds `images` to their FROM and counts over every image.
    others_done = (
        select(func.count()).select_from(OverlapDone)
        .where(OverlapDone.image_id == Image.id, OverlapDone.annotator != holder)
        .correlate(Image).scalar_subquery()
    )  # fmt: skip
    holder_done = exists().where(OverlapDone.image_id == Lease.image_id,
                                 OverlapDone.annotator == Lease.holder)  # fmt: skip
    others_holding = (
        select(func.count(func.distinct(Lease.holder)))
        .where(Lease.image_id == Image.id, Lease.scope == scope, Lease.holder != holder,
               Lease.expires_at > now, ~holder_done)
        .correlate(Image).scalar_subquery()
    )  # fmt: skip
    mine = (
        exists()
        .where(OverlapDone.image_id == Image.id, OverlapDone.annotator == holder)
        .correlate(Image)
    )
    full = OverlapImage.annotators <= others_done + others_holding
    return exists().where(OverlapImage.image_id == Image.id, or_(mine, full))


def busy_overlap(session: Session, ids: Sequence[int], busy: set[int], scope: str, holder: str,
                 now: datetime) -> set[int]:  # fmt: skip
    """Of `ids`, those `holder` may not lease: `busy` (held by someone else) for ordinary images,
    and for overlap images those with no seat left for them."""
    overlap = set(session.scalars(select(OverlapImage.image_id).where(
        OverlapImage.image_id.in_(ids))))  # fmt: skip
    if not overlap:
        return busy
    full = set(session.scalars(select(Image.id).where(
        Image.id.in_(sorted(overlap)), no_seat(scope, holder, now))))  # fmt: skip
    return (busy - overlap) | full


@dataclass(frozen=True, slots=True)
class Votes:
    """One overlap image's votes: per annotator who finished, the class names they gave, and
    for boxes (x, y, w, h) in pixels per class name."""

    image_id: int
    width: int
    height: int
    annotators: int
    labels: dict[str, list[str]] = field(default_factory=dict)
    boxes: dict[str, list[tuple[str, tuple[float, float, float, float]]]] = field(
        default_factory=dict
    )


def votes(session: Session, ds: Dataset, min_votes: int = 2) -> list[Votes]:
    """Every overlap image of the dataset that at least `min_votes` people have finished, with
    each finished person's votes (an empty list: done with no label)."""
    stmt = (
        select(OverlapImage.image_id, OverlapImage.annotators, Image.width, Image.height)
        .join(Image, Image.id == OverlapImage.image_id)
        .where(OverlapImage.dataset_id == ds.id)
        .order_by(OverlapImage.image_id)
    )
    rows = {i: (k, w, h) for i, k, w, h in session.execute(stmt)}
    done: dict[int, list[str]] = {}
    for image_id, who in session.execute(
        select(OverlapDone.image_id, OverlapDone.annotator)
        .join(OverlapImage, OverlapImage.image_id == OverlapDone.image_id)
        .where(OverlapImage.dataset_id == ds.id)
    ):
        done.setdefault(image_id, []).append(who)
    found = {i: people for i, people in done.items() if len(people) >= min_votes}
    out = {i: Votes(i, rows[i][1], rows[i][2], rows[i][0],
                    {p: [] for p in sorted(people)}, {p: [] for p in sorted(people)})
           for i, people in sorted(found.items())}  # fmt: skip
    _fill(session, ds, out)
    return list(out.values())


def _fill(session: Session, ds: Dataset, out: dict[int, Votes]) -> None:
    names = {c.id: c.name for c in ds.classes}
    ids = sorted(out)
    for start in range(0, len(ids), 500):
        stmt = (
            select(Annotation)
            .where(Annotation.image_id.in_(ids[start : start + 500]), Annotation.review == VOTE)
            .order_by(Annotation.id)
        )
        for ann in session.scalars(stmt):
            v = out[ann.image_id]
            if ann.layer not in v.labels:
                continue  # a vote of someone not done (cannot happen once done is recorded)
            assert ann.layer is not None
            if ann.kind == "box":
                assert ann.x is not None and ann.y is not None and ann.w and ann.h
                v.boxes[ann.layer].append((names[ann.class_id], (ann.x, ann.y, ann.w, ann.h)))
            elif names[ann.class_id] not in v.labels[ann.layer]:
                v.labels[ann.layer].append(names[ann.class_id])
