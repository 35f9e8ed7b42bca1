"""Use case: bring a dataset's labels, classes and splits back to a snapshot, as new history.

Only what changed since the snapshot is touched (the annotations some later event touched, the
images whose split or status differs, the classes): labels created since are deleted, labels
changed or deleted since get their earlier state back (a deleted one with its own id), each
written as a history event of one group, so the label app's undo reverses the restore. Images
added since the snapshot keep their labels; images removed since come back. One transaction:
a kill leaves the dataset as it was, and running it again finishes the job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.store.history import Group, image_state, snapshot
from annotator.store.labels import remove
from annotator.store.models import Annotation, Dataset, Image, LabelClass, SnapshotImage
from annotator.store.rewind import rewind
from annotator.store.versions import IMAGE_COLUMNS, get_snapshot

COMPARED = ("class_id", "kind", "x", "y", "w", "h", "iscrowd", "source", "run_id", "score",
            "review", "note", "image_id")  # fmt: skip


@dataclass
class RestoreReport:
    tag: str
    labels_removed: int = 0
    labels_restored: int = 0
    labels_changed: int = 0
    images_changed: int = 0
    images_back: int = 0
    classes_changed: int = 0

    def summary(self) -> str:
        total = self.labels_removed + self.labels_restored + self.labels_changed
        if not total and not self.images_changed and not self.classes_changed:
            return f"already at {self.tag}: nothing to restore"
        return (
            f"restored {self.tag}: {self.labels_removed} labels removed, {self.labels_restored} "
            f"brought back, {self.labels_changed} changed back; {self.images_changed} images' "
            f"split or status, {self.images_back} images re-added; {self.classes_changed} "
            "classes (undo reverses the labels)"
        )


def restore(session: Session, ds: Dataset, tag: str, author: str) -> RestoreReport:
    """Make `ds` what snapshot `tag` recorded (labels, classes, splits); commits once."""
    snap = get_snapshot(session, ds, tag)
    report = RestoreReport(snap.tag)
    group = Group(author)
    touched: set[int] = set()
    report.images_back = _images_back(session, ds, snap.id)
    report.classes_changed = _classes(session, ds, snap.classes)
    _images(session, ds, snap.id, group, touched, report)
    _labels(session, ds, snap.id, snap.position, group, touched, report)
    report.classes_changed += _drop_new_classes(session, ds, snap.classes)
    for image in session.scalars(select(Image).where(Image.id.in_(touched))):
        image.revision += 1
    group.flush(session)
    session.commit()
    return report


def _images_back(session: Session, ds: Dataset, snap_id: int) -> int:
    """Re-insert images of the snapshot removed since (same id, as they were)."""
    present = select(Image.id).where(Image.dataset_id == ds.id)
    stmt = select(SnapshotImage).where(
        SnapshotImage.snapshot_id == snap_id, SnapshotImage.image_id.not_in(present)
    )
    gone = list(session.scalars(stmt))
    for row in gone:
        values = {name: getattr(row, name) for name in IMAGE_COLUMNS}
        session.add(Image(id=row.image_id, dataset_id=ds.id, size_bytes=0, revision=1, **values))
    session.flush()
    return len(gone)


def _classes(session: Session, ds: Dataset, recorded: list[dict[str, Any]]) -> int:
    """Names, colours and order as recorded (moved clear of the unique keys first); classes
    removed since come back with their ids."""
    current = {c.id: c for c in ds.classes}
    wanted = {int(c["id"]): c for c in recorded}
    changed = [i for i, c in wanted.items() if _differs(current.get(i), c)]
    if not changed:
        return 0
    names = {c.id: c.name for c in ds.classes}
    for cls in ds.classes:
        cls.position += 100_000
        cls.name = f"\x00{cls.id}"
    session.flush()
    for class_id, state in wanted.items():
        found = current.get(class_id)
        if found is None:
            found = LabelClass(id=class_id, dataset_id=ds.id)
            ds.classes.append(found)
        found.name, found.position, found.color = state["name"], state["position"], state["color"]
    extra = sorted((c for i, c in current.items() if i not in wanted), key=lambda c: c.position)
    top = max((int(c["position"]) for c in recorded), default=-1)
    taken = {str(c["name"]) for c in recorded}
    for offset, cls in enumerate(extra, start=1):
        cls.position = top + offset
        name = names[cls.id]
        cls.name = name if name not in taken else f"{name} (since {cls.id})"
    session.flush()
    return len(changed)


def _differs(cls: LabelClass | None, state: dict[str, Any]) -> bool:
    if cls is None:
        return True
    return (cls.name, cls.position, cls.color) != (state["name"], state["position"], state["color"])


def _drop_new_classes(session: Session, ds: Dataset, recorded: list[dict[str, Any]]) -> int:
    """Classes created after the snapshot go when no label uses them any more."""
    wanted = {int(c["id"]) for c in recorded}
    dropped = 0
    for cls in [c for c in ds.classes if c.id not in wanted]:
        used = session.scalar(select(func.count()).where(Annotation.class_id == cls.id))
        if not used:
            ds.classes.remove(cls)
            dropped += 1
    session.flush()
    return dropped


def _images(
    session: Session, ds: Dataset, snap_id: int, group: Group, touched: set[int],
    report: RestoreReport,
) -> None:  # fmt: skip
    stmt = (
        select(Image, SnapshotImage.split, SnapshotImage.status)
        .join(SnapshotImage, SnapshotImage.image_id == Image.id)
        .where(
            SnapshotImage.snapshot_id == snap_id,
            (Image.split.is_distinct_from(SnapshotImage.split))
            | (Image.status != SnapshotImage.status),
        )
    )
    for image, split, status in session.execute(stmt).tuples():
        before = image_state(image)
        image.split, image.status = split, status
        group.add(ds.id, "status", image_id=image.id, before=before, after=image_state(image))
        touched.add(image.id)
        report.images_changed += 1
    session.flush()


def _labels(
    session: Session, ds: Dataset, snap_id: int, at: int, group: Group, touched: set[int],
    report: RestoreReport,
) -> None:  # fmt: skip
    back = rewind(session, ds.id, at)
    in_snapshot = set(
        session.scalars(select(SnapshotImage.image_id).where(SnapshotImage.snapshot_id == snap_id))
    )
    ids = sorted(back.touched)
    current = {a.id: a for a in _annotations(session, ids)}
    for ann_id in ids:
        ann, state = current.get(ann_id), back.earlier.get(ann_id)
        if state is None and ann is not None and ann.image_id in in_snapshot:
            remove(session, group, ann)
            report.labels_removed += 1
            touched.add(ann.image_id)
        elif state is not None and ann is None:
            _recreate(session, state, group)
            report.labels_restored += 1
            touched.add(int(state["image_id"]))
        elif state is not None and ann is not None and _changed(ann, state):
            _edit(ann, state, group)
            report.labels_changed += 1
            touched.add(ann.image_id)
    session.flush()


def _annotations(session: Session, ids: list[int]) -> list[Annotation]:
    out: list[Annotation] = []
    for start in range(0, len(ids), 500):
        stmt = select(Annotation).where(Annotation.id.in_(ids[start : start + 500]))
        out.extend(session.scalars(stmt))
    return out


def _changed(ann: Annotation, state: dict[str, Any]) -> bool:
    if "points" in state and state["points"] != ann.points:  # events before points: no key
        return True
    return any(getattr(ann, key) != state.get(key) for key in COMPARED)


def _assign(ann: Annotation, state: dict[str, Any]) -> None:
    for key, value in state.items():
        if key not in ("id", "revision"):
            setattr(ann, key, value)


def _edit(ann: Annotation, state: dict[str, Any], group: Group) -> None:
    before = snapshot(ann)
    _assign(ann, state)
    ann.revision = before["revision"] + 1
    group.add(ann.dataset_id, "edit", image_id=ann.image_id, annotation_id=ann.id,
              before=before, after=snapshot(ann))  # fmt: skip


def _recreate(session: Session, state: dict[str, Any], group: Group) -> None:
    ann = Annotation(id=state["id"])
    _assign(ann, state)  # a polygon's points come back with it (snapshots carry them)
    ann.revision = int(state["revision"]) + 1
    session.add(ann)
    session.flush()
    group.add(ann.dataset_id, "create", image_id=ann.image_id, annotation_id=ann.id,
              after=snapshot(ann))  # fmt: skip
