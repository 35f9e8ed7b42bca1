"""Snapshots, diff, the dataset at a snapshot, and restore, on the store API (SQLite here; the
PostgreSQL run is in tests/cli/test_versions_cli.py)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from annotator.annotation import Box
from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.store import labels as L
from annotator.store.datasets import add_classes, create_dataset, rename_class
from annotator.store.history import snapshot
from annotator.store.merge import merge
from annotator.store.models import Annotation, Dataset, HistoryEvent, Image
from annotator.store.restore import COMPARED, restore
from annotator.store.undo import undo
from annotator.store.versions import (
    create_snapshot,
    default_points,
    diff,
    list_snapshots,
    resolve_point,
)

_names = itertools.count()


def make_dataset(session: Any, n: int = 4, task: str = "detection") -> Dataset:
    ds = create_dataset(session, f"d{next(_names)}", task, ["cat", "dog", "bird"])
    for i in range(n):
        split = ("train", "val", None)[i % 3]
        session.add(Image(dataset_id=ds.id, path=f"{ds.name}/{i}.jpg", sha256=f"{ds.name}-{i:060d}",
                          width=100, height=80, size_bytes=10, split=split))  # fmt: skip
    session.commit()
    return ds


def images(session: Any, ds: Dataset) -> list[Image]:
    return list(session.scalars(select(Image).where(Image.dataset_id == ds.id).order_by(Image.id)))


def state(session: Any, ds: Dataset) -> tuple[Any, ...]:
    session.expire_all()
    anns = session.scalars(select(Annotation).where(Annotation.dataset_id == ds.id))
    labels = {a.id: tuple(getattr(a, k) for k in COMPARED) for a in anns}
    imgs = {i.id: (i.split, i.status) for i in images(session, ds)}
    session.refresh(ds)
    classes = sorted((c.id, c.name, c.position, c.color) for c in ds.classes)
    return labels, imgs, classes


def test_snapshot_records_position_counts_and_refuses_a_taken_tag(store: Any) -> None:
    with store.session() as s:
        ds = make_dataset(s)
        img = images(s, ds)[0]
        L.add_box(s, img.id, ds.classes[0].id, Box(1, 1, 10, 10), "tester")
        snap = create_snapshot(s, ds, "v1", "tester", "first")
        assert snap.position > 0
        assert snap.counts["annotations"] == 1 and snap.counts["classes"]["cat"] == 1
        with pytest.raises(ConflictError, match="already has a snapshot 'v1'"):
            create_snapshot(s, ds, "v1", "tester")
        for bad in ("now", "12", "two words", ""):
            with pytest.raises(InvalidInputError):
                create_snapshot(s, ds, bad, "tester")
        assert [x.tag for x in list_snapshots(s, ds)] == ["v1"]
        with pytest.raises(NotFoundError, match="no snapshot 'v9'"):
            resolve_point(s, ds, "v9")


def test_diff_counts_every_kind_of_change_per_class(store: Any) -> None:
    with store.session() as s:
        ds = make_dataset(s)
        cat, dog, bird = (c.id for c in ds.classes)
        a, b, c, _ = images(s, ds)
        moved = L.add_box(s, a.id, cat, Box(0, 0, 20, 20), "tester")
        nudged = L.add_box(s, a.id, cat, Box(50, 50, 20, 20), "tester")
        gone = L.add_box(s, b.id, dog, Box(0, 0, 10, 10), "tester")
        renamed = L.add_box(s, b.id, dog, Box(30, 30, 10, 10), "tester")
        reviewed = L.add_box(s, c.id, bird, Box(5, 5, 10, 10), "tester")
        create_snapshot(s, ds, "v1", "tester")
        L.edit_annotation(s, moved.id, "tester", box=Box(40, 40, 20, 20))
        L.edit_annotation(s, nudged.id, "tester", box=Box(50, 50, 20, 20.2))
        L.delete_annotation(s, gone.id, "tester")
        L.edit_annotation(s, renamed.id, "tester", class_id=bird)
        L.review_annotations(s, [reviewed.id], "rejected", "tester")
        L.add_box(s, c.id, cat, Box(1, 1, 5, 5), "tester")
        source, target = default_points(s, ds)
        assert (source.label, target.label) == ("v1", "now")
        out = diff(s, ds, source, target).as_dict()
        assert out["classes"]["cat"] == {"boxes_moved": 1, "boxes_resized": 1, "boxes_added": 1}
        assert out["classes"]["dog"] == {"boxes_removed": 1}
        assert out["classes"]["bird"] == {"changed_class": 1, "review_rejected": 1}
        back = diff(s, ds, target, source).as_dict()  # the other way round
        assert back["classes"]["cat"]["boxes_removed"] == 1
        assert back["classes"]["dog"] == {"boxes_added": 1, "changed_class": 1}


def test_diff_sees_split_changes_and_images_added(store: Any) -> None:
    with store.session() as s:
        ds = make_dataset(s, 3)
        create_snapshot(s, ds, "v1", "tester")
        first = images(s, ds)[0]
        first.split = "test"
        s.add(Image(dataset_id=ds.id, path="new.jpg", sha256="f" * 64, width=9, height=9,
                    size_bytes=1))  # fmt: skip
        s.commit()
        out = diff(s, ds, resolve_point(s, ds, "v1"), resolve_point(s, ds, "now")).as_dict()
        assert out["images"] == {"split_changed": 1, "images_added": 1}


def test_restore_brings_back_labels_classes_splits_and_is_undoable(store: Any) -> None:
    with store.session() as s:
        ds = make_dataset(s)
        cat, dog, _ = (c.id for c in ds.classes)
        a, b, _, _ = images(s, ds)
        keep = L.add_box(s, a.id, cat, Box(0, 0, 20, 20), "tester")
        L.add_box(s, b.id, dog, Box(0, 0, 10, 10), "tester")
        create_snapshot(s, ds, "v1", "tester")
        tagged = state(s, ds)
        L.delete_annotation(s, keep.id, "tester")
        L.add_box(s, b.id, cat, Box(9, 9, 9, 9), "tester")
        L.set_status(s, a.id, "skipped", "tester")
        rename_class(s, ds, "cat", "kitten")
        add_classes(s, ds, ["fish"])
        changed = state(s, ds)
        report = restore(s, ds, "v1", "tester")
        assert report.labels_restored == 1 and report.labels_removed == 1
        assert state(s, ds) == tagged
        assert restore(s, ds, "v1", "tester").summary() == "already at v1: nothing to restore"
        undo(s, ds.id, "tester")  # labels and statuses come back; classes are not history
        assert state(s, ds)[:2] == changed[:2]


edits = st.lists(
    st.tuples(st.sampled_from(["box", "edit", "move", "delete", "review", "status"]),
              st.integers(0, 99), st.integers(0, 99)),
    max_size=12,
)  # fmt: skip


def apply(s: Any, ds: Dataset, ops: list[tuple[str, int, int]]) -> None:
    imgs, classes = images(s, ds), [c.id for c in ds.classes]
    for op, i, j in ops:
        anns = list(s.scalars(select(Annotation.id).where(Annotation.dataset_id == ds.id)))
        img, ann = imgs[i % len(imgs)], anns[i % len(anns)] if anns else None
        if op == "box":
            L.add_box(s, img.id, classes[j % 3], Box(j % 50, i % 40, 1 + j % 30, 1 + i % 30), "u")
        elif op == "edit" and ann:
            L.edit_annotation(s, ann, "u", class_id=classes[j % 3])
        elif op == "move" and ann:
            L.edit_annotation(s, ann, "u", box=Box(j % 40, j % 30, 5 + i % 20, 5))
        elif op == "delete" and ann:
            L.delete_annotation(s, ann, "u")
        elif op == "review" and ann:
            L.review_annotations(s, [ann], ("pending", "accepted", "rejected")[j % 3], "u")
        elif op == "status":
            L.set_status(s, img.id, ("unlabeled", "labeled", "reviewed", "skipped")[j % 4], "u")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=edits, after=edits)
def test_any_edits_then_restore_give_exactly_the_tag_state(store: Any, before: Any, after: Any) -> None:  # fmt: skip
    with store.session() as s:
        ds = make_dataset(s, 3)
        apply(s, ds, before)
        create_snapshot(s, ds, "tag", "u")
        tagged = state(s, ds)
        apply(s, ds, after)
        restore(s, ds, "tag", "u")
        assert state(s, ds) == tagged


# ---------------------------------------------------------------- polygon points, merge history

POLYGON = [1.0, 1.0, 20.5, 1.0, 10.25, 18.0]


def polygon(s: Any, image: Image, class_id: int) -> Annotation:
    """A box with a polygon's points (as an import of a COCO or YOLO polygon stores it)."""
    ann = L.add_box(s, image.id, class_id, Box(1, 1, 19.5, 17), "tester")
    ann.points = list(POLYGON)
    s.commit()
    return ann


def events(s: Any, ds: Dataset, action: str | None = None) -> list[HistoryEvent]:
    stmt = select(HistoryEvent).where(HistoryEvent.dataset_id == ds.id).order_by(HistoryEvent.id)
    return [e for e in s.scalars(stmt) if action is None or e.action == action]


def test_history_keeps_polygon_points_and_restore_brings_them_back(store: Any) -> None:
    with store.session() as s:
        ds = make_dataset(s, 2)
        a, b = images(s, ds)
        shape = polygon(s, a, ds.classes[0].id)
        plain = L.add_box(s, b.id, ds.classes[1].id, Box(2, 2, 5, 5), "tester")
        create_snapshot(s, ds, "v1", "tester")
        L.delete_annotation(s, shape.id, "tester")
        L.delete_annotation(s, plain.id, "tester")
        deleted = {e.annotation_id: e.before for e in events(s, ds, "delete")}
        assert deleted[shape.id]["points"] == POLYGON
        assert "points" not in deleted[plain.id]  # events of labels without stay as they were
        assert restore(s, ds, "v1", "tester").labels_restored == 2
        s.expire_all()
        back = s.get(Annotation, shape.id)
        assert back is not None and back.points == POLYGON
        assert s.get(Annotation, plain.id).points is None  # type: ignore[union-attr]


def test_merge_writes_one_event_per_label_and_restore_undoes_it(store: Any) -> None:
    with store.session() as s:
        src, dest = make_dataset(s, 2), make_dataset(s, 1)
        shared, fresh = images(s, src)
        images(s, dest)[0].sha256 = shared.sha256  # the same photo in both
        s.commit()
        polygon(s, fresh, src.classes[0].id)
        L.add_box(s, shared.id, src.classes[1].id, Box(3, 3, 9, 9), "tester")
        mine = L.add_box(s, images(s, dest)[0].id, dest.classes[0].id, Box(5, 5, 9, 9), "tester")
        create_snapshot(s, dest, "before", "tester")
        report = merge(s, src, s, dest, on_conflict="both")
        assert (report.images_added, report.labels_added, report.conflicts) == (1, 2, 1)
        s.expire_all()
        created = events(s, dest, "create")[1:]  # after the label made before the snapshot
        anns = {
            a.id: a for a in s.scalars(select(Annotation).where(Annotation.dataset_id == dest.id))
        }
        assert sorted(e.annotation_id for e in created) == sorted(set(anns) - {mine.id})
        for event in created:
            assert event.after == snapshot(anns[event.annotation_id])
        assert [a.points for a in anns.values() if a.points] == [POLYGON]
        (review,) = events(s, dest, "review")
        assert (review.before["review"], review.after["review"]) == ("accepted", "pending")
        assert anns[mine.id].review == "pending"
        restore(s, dest, "before", "tester")
        s.expire_all()
        left = list(s.scalars(select(Annotation).where(Annotation.dataset_id == dest.id)))
        kept = [a.points for a in left if a.image_id != mine.image_id]  # the image added since
        assert [(a.id, a.review) for a in left if a.image_id == mine.image_id] == [
            (mine.id, "accepted")
        ]
        assert kept == [POLYGON]
