"""The labels of a dataset as they were at a history position, rebuilt from the current state
and the append-only history: an annotation no event after the position touched is as it is now;
one that was touched is as the `before` of its first event after the position (absent when that
event created it). Only the touched annotations are held in memory, so rebuilding a recent
position of a large dataset is cheap. Also streams the samples of a snapshot for an export.
Store-only: no format, CLI or UI code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from annotator.annotation import Box, Label, Sample
from annotator.store.bulk_sql import fetch_all
from annotator.store.export_reads import EXPORTED_STATUSES
from annotator.store.models import Annotation, Dataset, HistoryEvent, ModelRun, SnapshotImage

LABEL_FIELDS = ("class_id", "kind", "x", "y", "w", "h", "iscrowd", "run_id", "score", "review")


@dataclass
class Rewind:
    """What differs at `position` from now: annotations that did not exist yet (`absent`) and
    the earlier states of those changed since (`earlier`, by annotation id)."""

    position: int
    absent: set[int] = field(default_factory=set)
    earlier: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def touched(self) -> set[int]:
        return self.absent | set(self.earlier)

    def by_image(self) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for state in self.earlier.values():
            out.setdefault(int(state["image_id"]), []).append(state)
        return out


def rewind(session: Session, dataset_id: int, position: int) -> Rewind:
    """The annotations' differences between `position` and now (one query)."""
    first = (
        select(func.min(HistoryEvent.id).label("first"))
        .where(
            HistoryEvent.dataset_id == dataset_id,
            HistoryEvent.id > position,
            HistoryEvent.annotation_id.is_not(None),
        )
        .group_by(HistoryEvent.annotation_id)
        .subquery()
    )
    stmt = select(HistoryEvent.annotation_id, HistoryEvent.before).join(
        first, HistoryEvent.id == first.c.first
    )
    out = Rewind(position)
    for ann_id, before in session.execute(stmt):
        if before is None:
            out.absent.add(int(ann_id))
        else:
            out.earlier[int(ann_id)] = before
    return out


def states_between(
    session: Session, dataset_id: int, lo: int, hi: int
) -> dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Every annotation some event in (lo, hi] touched: its state at `lo` and at `hi` (None:
    absent). Reads only those events, whatever the dataset's size."""
    stmt = (
        select(HistoryEvent.annotation_id, HistoryEvent.before, HistoryEvent.after)
        .where(
            HistoryEvent.dataset_id == dataset_id,
            HistoryEvent.id > lo,
            HistoryEvent.id <= hi,
            HistoryEvent.annotation_id.is_not(None),
        )
        .order_by(HistoryEvent.id)
    )
    out: dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for ann_id, before, after in session.execute(stmt):
        start = out[ann_id][0] if ann_id in out else before
        out[ann_id] = (start, after)
    return out


def image_states_between(
    session: Session, dataset_id: int, lo: int, hi: int
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Split and status of images some event in (lo, hi] changed, at `lo` and at `hi`."""
    stmt = (
        select(HistoryEvent.image_id, HistoryEvent.before, HistoryEvent.after)
        .where(
            HistoryEvent.dataset_id == dataset_id,
            HistoryEvent.id > lo,
            HistoryEvent.id <= hi,
            HistoryEvent.action.in_(("status", "split")),
        )
        .order_by(HistoryEvent.id)
    )
    out: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for image_id, before, after in session.execute(stmt):
        start, end = out.get(image_id, ({}, {}))
        for key, value in (before or {}).items():
            start.setdefault(key, value)
        end.update(after or {})
        out[image_id] = (start, end)
    return out


# ---------------------------------------------------------------- samples at a snapshot


@dataclass
class SnapshotView:
    """The dataset as a snapshot recorded it, as an export reads it: class names, splits, and
    the samples of a split (its images as they were, with the labels they had then)."""

    session: Session
    ds: Dataset
    snapshot_id: int
    tag: str
    classes: list[dict[str, Any]]
    back: Rewind
    chunk: int = 2000

    @property
    def position(self) -> int:
        return self.back.position

    def class_names(self) -> list[str]:
        return [c["name"] for c in sorted(self.classes, key=lambda c: c["position"])]

    def splits(self) -> list[str]:
        t = SnapshotImage.__table__.c
        stmt = select(t.split).where(t.snapshot_id == self.snapshot_id).distinct()
        found = set(self.session.scalars(stmt))
        return [s for s in ("train", "val", "test") if s in found]

    def total(self) -> int:
        t = SnapshotImage.__table__.c
        stmt = select(func.count()).where(t.snapshot_id == self.snapshot_id, t.split.is_not(None))
        return int(self.session.scalar(stmt) or 0)

    def __post_init__(self) -> None:
        self.names = {int(c["id"]): str(c["name"]) for c in self.classes}
        self.overlay = self.back.by_image()
        self.touched = self.back.touched
        self.models = dict(
            self.session.execute(
                select(ModelRun.id, ModelRun.model).where(ModelRun.dataset_id == self.ds.id)
            )
            .tuples()
            .all()
        )

    def samples(self, split: str | None, reviews: tuple[str, ...]) -> Iterator[Sample]:
        root = self.ds.root.rstrip("/") if self.ds.root else None
        for images in self._chunks(split):
            labels = self._labels([row[0] for row in images], reviews)
            for image_id, path, width, height, split_, sha, orientation, status in images:
                found = labels.get(image_id, [])
                if found or status in EXPORTED_STATUSES:
                    full = path if root is None or path.startswith("/") else f"{root}/{path}"
                    yield Sample(full, width, height, found, split_, image_id, sha, orientation)

    def _chunks(self, split: str | None) -> Iterator[list[Any]]:
        t = SnapshotImage.__table__.c
        cols = (t.image_id, t.path, t.width, t.height, t.split, t.sha256, t.orientation, t.status)
        where = t.split.is_(None) if split is None else t.split == split
        where = and_(where, t.flag.is_(None))  # a flagged image waits for a person
        last = 0
        while True:
            stmt = (
                select(*cols)
                .where(t.snapshot_id == self.snapshot_id, where, t.image_id > last)
                .order_by(t.image_id)
                .limit(self.chunk)
            )
            rows = fetch_all(self.session.connection(), stmt)
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def _labels(self, image_ids: list[int], reviews: tuple[str, ...]) -> dict[int, list[Label]]:
        t = Annotation.__table__.c
        stmt = (
            select(t.id, t.image_id, t.class_id, t.x, t.y, t.w, t.h, t.iscrowd, t.run_id,
                   t.score, t.review)
            .where(t.image_id.in_(image_ids), t.review.in_(reviews))
        )  # fmt: skip
        rows = [r for r in fetch_all(self.session.connection(), stmt) if r[0] not in self.touched]
        for image_id in image_ids:
            rows.extend(_row(s) for s in self.overlay.get(image_id, ()) if s["review"] in reviews)
        rows.sort(key=lambda r: (r[1], r[0]))
        out: dict[int, list[Label]] = {}
        for aid, image_id, cid, x, y, w, h, crowd, run, score, review in rows:
            box = None if x is None else Box(x, y, w, h)
            source = "human" if run is None else self.models.get(run, "model")
            label = Label(self.names[cid], box, score, source, review, bool(crowd), aid)
            out.setdefault(image_id, []).append(label)
        return out

    def left_out(self, reviews: tuple[str, ...]) -> dict[str, int]:
        """`export_left_out` at the snapshot: images with no split though labelled, and images
        with a split but neither labels nor a status saying a person looked."""
        no_split = sum(1 for _ in self.samples(None, reviews))
        unlabeled = 0
        for split in ("train", "val", "test"):
            for images in self._chunks(split):
                labels = self._labels([row[0] for row in images], reviews)
                unlabeled += sum(
                    1 for r in images if r[0] not in labels and r[7] not in EXPORTED_STATUSES
                )
        t = SnapshotImage.__table__.c
        stmt = select(func.count()).where(
            t.snapshot_id == self.snapshot_id, t.split.is_not(None), t.flag.is_not(None)
        )
        flagged = int(self.session.scalar(stmt) or 0)
        return {"no_split": no_split, "unlabeled": unlabeled, "flagged": flagged}


def _row(state: dict[str, Any]) -> tuple[Any, ...]:
    return (
        state["id"], state["image_id"], state["class_id"], state["x"], state["y"], state["w"],
        state["h"], state["iscrowd"], state["run_id"], state["score"], state["review"],
    )  # fmt: skip
