"""Label use cases: what they store, the history they write, stale edits, undo and redo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from annotator.annotation import Box
from annotator.errors import ConflictError, InvalidInputError
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.models import Annotation, HistoryEvent, Image
from annotator.store.undo import redo, undo


def _dataset(store: Store, make_images: Callable[..., list[Path]], task: str, n: int = 3):  # type: ignore[no-untyped-def]
    paths = make_images(n)
    with store.session() as s:
        ds = create_dataset(s, "d", task, ["cat", "dog", "bird"])
        add_images(s, ds, [paths[0].parent])
        ids = list(s.scalars(select(Image.id).order_by(Image.path)))
        classes = [c.id for c in ds.classes]
        return ds.id, ids, classes


def _labels(store: Store, image_id: int) -> list[tuple[str, int, str]]:
    with store.session() as s:
        return [(a.kind, a.class_id, a.review) for a in labels.image_annotations(s, image_id)]


def _status(store: Store, image_id: int) -> str:
    with store.session() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return image.status


def test_assign_replaces_label_and_sets_status(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    _ds_id, ids, (cat, dog, _) = _dataset(store, make_images, "classification")
    with store.session() as s:
        labels.assign_class(s, ids[0], cat, "ann")
        labels.assign_class(s, ids[0], dog, "ann")
    assert _labels(store, ids[0]) == [("label", dog, "accepted")]
    assert _status(store, ids[0]) == "labeled"
    with store.session() as s:
        actions = list(s.scalars(select(HistoryEvent.action).order_by(HistoryEvent.id)))
    assert actions == ["create", "status", "delete", "create"]


def test_toggle_multilabel(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    _, ids, (cat, dog, _) = _dataset(store, make_images, "multilabel")
    with store.session() as s:
        labels.toggle_class(s, ids[0], cat, "ann")
        labels.toggle_class(s, ids[0], dog, "ann")
        labels.toggle_class(s, ids[0], cat, "ann")
    assert _labels(store, ids[0]) == [("label", dog, "accepted")]


def test_boxes_checked_and_stored_in_pixels(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    _, ids, (cat, *_) = _dataset(store, make_images, "detection")
    with store.session() as s:
        ann = labels.add_box(s, ids[0], cat, Box(1.25, 2.5, 10.0, 20.0), "ann")
        with pytest.raises(InvalidInputError, match="outside"):
            labels.add_box(s, ids[0], cat, Box(60, 40, 10, 10), "ann")
        with pytest.raises(InvalidInputError, match="no area"):
            labels.add_box(s, ids[0], cat, Box(1, 1, 0, 5), "ann")
        labels.edit_annotation(s, ann.id, "ann2", box=Box(2, 3, 4, 5))
        row = s.get(Annotation, ann.id)
        assert row is not None
        assert (row.x, row.y, row.w, row.h, row.revision, row.author) == (2, 3, 4, 5, 2, "ann2")


def test_schema_refuses_box_outside_detection(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    ds_id, ids, (cat, *_) = _dataset(store, make_images, "classification")
    with store.session() as s, pytest.raises(IntegrityError):
        s.execute(text(
            "INSERT INTO annotations (dataset_id, task, image_id, class_id, kind, x, y, w, h,"
            " iscrowd, source, review, author, created_at, updated_at, revision) VALUES"
            f" ({ds_id}, 'classification', {ids[0]}, {cat}, 'box', 0, 0, 5, 5, 0, 'human',"
            " 'accepted', 'x', '2026-01-01', '2026-01-01', 1)"))  # fmt: skip


def test_stale_revision_is_refused(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    _, ids, (cat, dog, _) = _dataset(store, make_images, "classification")
    with store.session() as s:
        seen = s.get(Image, ids[0]).revision  # type: ignore[union-attr]
    with store.session() as s:
        labels.assign_class(s, ids[0], cat, "alice", expected_revision=seen)
    with store.session() as s, pytest.raises(ConflictError, match="changed since"):
        labels.assign_class(s, ids[0], dog, "bob", expected_revision=seen)
    assert _labels(store, ids[0]) == [("label", cat, "accepted")]


def test_undo_redo_across_images_and_sessions(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    ds_id, ids, (cat, dog, _) = _dataset(store, make_images, "classification")
    with store.session() as s:
        labels.assign_class(s, ids[0], cat, "ann")
        labels.assign_class(s, ids[1], dog, "ann")
        labels.assign_class(s, ids[0], dog, "ann")
        labels.set_status(s, ids[2], "skipped", "ann")
    with store.session() as s:  # a new session: as after a restart
        assert undo(s, ds_id, "ann") == [ids[2]]
        assert undo(s, ds_id, "ann") == [ids[0]]
    assert _status(store, ids[2]) == "unlabeled"
    assert _labels(store, ids[0]) == [("label", cat, "accepted")]
    with store.session() as s:
        assert undo(s, ds_id, "ann") == [ids[1]]
    assert _labels(store, ids[1]) == []
    assert _status(store, ids[1]) == "unlabeled"
    with store.session() as s:
        assert redo(s, ds_id, "ann") == [ids[1]]
        assert redo(s, ds_id, "ann") == [ids[0]]
    assert _labels(store, ids[1]) == [("label", dog, "accepted")]
    assert _labels(store, ids[0]) == [("label", dog, "accepted")]
    with store.session() as s:  # a new action clears what is left to redo
        labels.assign_class(s, ids[2], cat, "ann")
        assert redo(s, ds_id, "ann") == []
        assert undo(s, ds_id, "someone-else") == []


def test_undo_refused_when_label_changed_by_other(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    ds_id, ids, (cat, dog, _) = _dataset(store, make_images, "detection")
    with store.session() as s:
        ann = labels.add_box(s, ids[0], cat, Box(1, 1, 5, 5), "alice")
        labels.edit_annotation(s, ann.id, "bob", class_id=dog)
    with store.session() as s, pytest.raises(ConflictError, match="changed since"):
        undo(s, ds_id, "alice")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == 1


def test_review_decisions(store: Store, make_images) -> None:  # type: ignore[no-untyped-def]
    ds_id, ids, (cat, *_) = _dataset(store, make_images, "detection")
    with store.session() as s:
        from annotator.store.models import ModelRun

        run = ModelRun(dataset_id=ds_id, model="m")
        s.add(run)
        s.flush()
        s.add(Annotation(dataset_id=ds_id, task="detection", image_id=ids[0], class_id=cat,
                         kind="box", x=1, y=1, w=5, h=5, source="model", run_id=run.id,
                         score=0.7, review="pending", author="m"))  # fmt: skip
        s.commit()
        ann_id = s.scalar(select(Annotation.id))
    assert _status(store, ids[0]) == "unlabeled"
    with store.session() as s:
        assert labels.review_annotations(s, [ann_id], "accepted", "ann") == 1
    assert _labels(store, ids[0]) == [("box", cat, "accepted")]
    assert _status(store, ids[0]) == "labeled"
    with store.session() as s:
        undo(s, ds_id, "ann")
    assert _labels(store, ids[0]) == [("box", cat, "pending")]
    assert _status(store, ids[0]) == "unlabeled"
