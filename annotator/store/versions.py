"""Versions of a dataset: snapshots (a tag naming a history position, with the classes and
images as they were), listing them, resolving a point (a tag, a history position or "now"), and
the diff between two points per class: labels and boxes added, removed, re-classed, moved or
resized, review decisions, images added or removed and split changes. Rebuilding labels at a
point is `annotator.store.rewind`'s job. Store-only: no format, CLI or UI code."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.store.history import position
from annotator.store.models import (
    Annotation,
    Dataset,
    HistoryEvent,
    Image,
    Snapshot,
    SnapshotImage,
)
from annotator.store.rewind import SnapshotView, image_states_between, rewind, states_between

MOVED_IOU = 0.95
IMAGE_COLUMNS = ("path", "sha256", "width", "height", "orientation", "split", "status", "flag")


def check_tag(tag: str) -> str:
    clean = tag.strip()
    if not clean or any(ch.isspace() for ch in clean):
        raise InvalidInputError(f"tag {tag!r}: a tag is one word (no spaces)")
    if clean == "now" or clean.isdigit():
        raise InvalidInputError(f"tag {clean!r} would read as a history position: choose another")
    if len(clean) > 100:
        raise InvalidInputError(f"tag {clean[:20]}...: at most 100 characters")
    return clean


def class_states(ds: Dataset) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "name": c.name, "position": c.position, "color": c.color}
        for c in sorted(ds.classes, key=lambda c: c.position)
    ]


def _counts(session: Session, ds: Dataset) -> dict[str, Any]:
    def grouped(col: Any, where: Any) -> dict[str, int]:
        rows = session.execute(select(col, func.count()).where(where).group_by(col))
        return {str(k) if k is not None else "none": int(v) for k, v in rows}

    # by the class index alone (a dataset's labels are those of its classes): no table reads
    per_class = grouped(Annotation.class_id, Annotation.class_id.in_([c.id for c in ds.classes]))
    return {
        "images": int(session.scalar(select(func.count()).where(Image.dataset_id == ds.id)) or 0),
        "annotations": sum(per_class.values()),
        "classes": {c.name: per_class.get(str(c.id), 0) for c in ds.classes},
        "split": grouped(Image.split, Image.dataset_id == ds.id),
        "status": grouped(Image.status, Image.dataset_id == ds.id),
    }


def create_snapshot(
    session: Session, ds: Dataset, tag: str, author: str, message: str | None = None
) -> Snapshot:
    """Name the dataset's current history position `tag` (one transaction)."""
    tag = check_tag(tag)
    if find_snapshot(session, ds, tag) is not None:
        raise ConflictError(f"dataset {ds.name!r} already has a snapshot {tag!r}")
    snap = Snapshot(
        dataset_id=ds.id, tag=tag, position=position(session, ds.id), author=author,
        message=message, counts=_counts(session, ds), classes=class_states(ds),
    )  # fmt: skip
    session.add(snap)
    session.flush()
    cols = [getattr(Image, name) for name in IMAGE_COLUMNS]
    rows = select(literal(snap.id), Image.id, *cols).where(Image.dataset_id == ds.id)
    target = ("snapshot_id", "image_id", *IMAGE_COLUMNS)
    session.execute(insert(SnapshotImage).from_select(target, rows))
    try:
        session.commit()
    except IntegrityError as exc:  # another session took the tag meanwhile
        session.rollback()
        raise ConflictError(f"dataset {ds.name!r} already has a snapshot {tag!r}") from exc
    return snap


def find_snapshot(session: Session, ds: Dataset, tag: str) -> Snapshot | None:
    return session.scalar(select(Snapshot).where(Snapshot.dataset_id == ds.id, Snapshot.tag == tag))


def get_snapshot(session: Session, ds: Dataset, tag: str) -> Snapshot:
    snap = find_snapshot(session, ds, tag)
    if snap is None:
        known = ", ".join(s.tag for s in list_snapshots(session, ds)) or "none"
        raise NotFoundError(f"dataset {ds.name!r} has no snapshot {tag!r} (snapshots: {known})")
    return snap


def list_snapshots(session: Session, ds: Dataset) -> list[Snapshot]:
    stmt = select(Snapshot).where(Snapshot.dataset_id == ds.id).order_by(Snapshot.id)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class Point:
    """A point of a dataset's history: a snapshot, a bare position, or now."""

    label: str
    position: int
    snapshot: Snapshot | None = None


def resolve_point(session: Session, ds: Dataset, text: str) -> Point:
    text = text.strip()
    now = position(session, ds.id)
    if text == "now":
        return Point("now", now)
    if text.isdigit():
        if int(text) > now:
            raise InvalidInputError(f"history position {text} is beyond now ({now})")
        return Point(f"position {text}", int(text))
    snap = get_snapshot(session, ds, text)
    return Point(snap.tag, snap.position, snap)


def default_points(session: Session, ds: Dataset) -> tuple[Point, Point]:
    """Last snapshot .. now (the start of history when there is no snapshot)."""
    snaps = list_snapshots(session, ds)
    start = Point(snaps[-1].tag, snaps[-1].position, snaps[-1]) if snaps else Point("start", 0)
    return start, resolve_point(session, ds, "now")


# ---------------------------------------------------------------- diff


@dataclass
class Diff:
    """Changes from one point to another: counts per class, and every change."""

    source: str
    target: str
    per_class: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    images: Counter[str] = field(default_factory=Counter)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def note(self, cls: str, kind: str, **detail: Any) -> None:
        self.per_class[cls][kind] += 1
        self.changes.append({"change": kind, "class": cls, **detail})

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "classes": {k: dict(v) for k, v in sorted(self.per_class.items())},
            "images": dict(self.images),
            "changes": self.changes,
        }


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    ax2, ay2, bx2, by2 = a["x"] + a["w"], a["y"] + a["h"], b["x"] + b["w"], b["y"] + b["h"]
    iw = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    ih = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = iw * ih
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union > 0 else 0.0


def diff(session: Session, ds: Dataset, source: Point, target: Point) -> Diff:
    """What changed from `source` to `target` (either order)."""
    out = Diff(source.label, target.label)
    lo, hi = sorted((source.position, target.position))
    flip = source.position > target.position
    names = _class_names(session, ds, source, target)
    for ann_id, (a, b) in states_between(session, ds.id, lo, hi).items():
        a, b = (b, a) if flip else (a, b)
        _annotation_change(out, names, ann_id, a, b)
    for image_id, (was, now) in _split_changes(session, ds, source, target, flip).items():
        out.images["split_changed"] += 1
        out.changes.append({"change": "split", "image_id": image_id, "from": was, "to": now})
    _image_membership(session, ds, source, target, out)
    return out


def splits_at(session: Session, ds: Dataset, point: Point) -> dict[int, str | None] | None:
    """Each image's split at a snapshot or now (None for a bare position: not recorded)."""
    if point.snapshot is not None:
        t = SnapshotImage
        stmt = select(t.image_id, t.split).where(t.snapshot_id == point.snapshot.id)
    elif point.label == "now":
        stmt = select(Image.id, Image.split).where(Image.dataset_id == ds.id)
    else:
        return None
    return dict(session.execute(stmt).tuples().all())


def _split_changes(
    session: Session, ds: Dataset, source: Point, target: Point, flip: bool
) -> dict[int, tuple[str | None, str | None]]:
    """Images whose split differs between the points (images present at both)."""
    a, b = splits_at(session, ds, source), splits_at(session, ds, target)
    if a is not None and b is not None:
        return {i: (a[i], b[i]) for i in a.keys() & b.keys() if a[i] != b[i]}
    lo, hi = sorted((source.position, target.position))
    out: dict[int, tuple[str | None, str | None]] = {}
    for image_id, (was, now) in image_states_between(session, ds.id, lo, hi).items():
        was, now = (now, was) if flip else (was, now)
        if "split" in was and was["split"] != now.get("split"):
            out[image_id] = (was["split"], now.get("split"))
    return out


def _class_names(session: Session, ds: Dataset, *points: Point) -> dict[int, str]:
    names = {c.id: c.name for c in ds.classes}
    for point in points:
        if point.snapshot is not None:
            names.update({int(c["id"]): c["name"] for c in point.snapshot.classes})
    names.update({c.id: c.name for c in ds.classes})
    return names


def _annotation_change(
    out: Diff, names: dict[int, str], ann_id: int, a: dict[str, Any] | None,
    b: dict[str, Any] | None,
) -> None:  # fmt: skip
    if a is None and b is None:
        return
    kind = "box" if (a or b or {}).get("kind") == "box" else "label"
    where = {"id": ann_id, "image_id": (a or b or {}).get("image_id")}
    if a is None or b is None:
        state = b if a is None else a
        assert state is not None
        verb = "added" if a is None else "removed"
        cls = names.get(state["class_id"], str(state["class_id"]))
        out.note(cls, f"{kind}es_{verb}" if kind == "box" else f"labels_{verb}", **where)
        return
    cls = names.get(b["class_id"], str(b["class_id"]))
    if a["class_id"] != b["class_id"]:
        old = names.get(a["class_id"], str(a["class_id"]))
        out.note(cls, "changed_class", **where, previous=old)
    if kind == "box" and any(a[k] != b[k] for k in ("x", "y", "w", "h")):
        moved = iou(a, b) < MOVED_IOU
        out.note(cls, "boxes_moved" if moved else "boxes_resized", **where,
                 before=[a[k] for k in "xywh"], after=[b[k] for k in "xywh"])  # fmt: skip
    if a["review"] != b["review"]:
        out.note(cls, f"review_{b['review']}", **where, previous=a["review"])


def image_ids_at(session: Session, ds: Dataset, point: Point) -> set[int]:
    """The images of the dataset at `point`: a snapshot's own list; now, the images table;
    a bare position, the images added up to the time of that event."""
    if point.snapshot is not None:
        stmt = select(SnapshotImage.image_id).where(SnapshotImage.snapshot_id == point.snapshot.id)
        return set(session.scalars(stmt))
    stmt = select(Image.id).where(Image.dataset_id == ds.id)
    if point.label != "now":
        when = session.scalar(
            select(HistoryEvent.created_at).where(HistoryEvent.id == point.position)
        )
        if when is None:
            return set()
        stmt = stmt.where(Image.added_at <= when)
    return set(session.scalars(stmt))


def _image_membership(
    session: Session, ds: Dataset, source: Point, target: Point, out: Diff
) -> None:
    before, after = image_ids_at(session, ds, source), image_ids_at(session, ds, target)
    for verb, ids in (("added", after - before), ("removed", before - after)):
        if ids:
            out.images[f"images_{verb}"] += len(ids)
            out.changes.extend({"change": f"image_{verb}", "image_id": i} for i in sorted(ids))


def snapshot_view(session: Session, ds: Dataset, tag: str) -> SnapshotView:
    """The dataset as snapshot `tag` recorded it, for an export."""
    snap = get_snapshot(session, ds, tag)
    back = rewind(session, ds.id, snap.position)
    return SnapshotView(session, ds, snap.id, snap.tag, list(snap.classes), back)
