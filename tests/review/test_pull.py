"""Pull: tags and edits made in FiftyOne become store changes by author 'fiftyone' (through the
store's use cases, so they are in the history), a decision on something changed since the push
is a conflict, and a second pull changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from annotator.annotation import Box
from annotator.errors import NotFoundError
from annotator.review import backend
from annotator.review.pull import pull
from annotator.store import labels
from annotator.store.datasets import get_dataset
from annotator.store.models import Annotation, HistoryEvent, Image
from tests.review.conftest import Built, add_prediction
from tests.review.test_push import by_image, detection_store, do_push

pytestmark = pytest.mark.xdist_group("fiftyone")


def do_pull(store: Any, b: Built) -> Any:
    with store.session() as s:
        return pull(s, get_dataset(s, b.name))


def ann(store: Any, ann_id: int) -> Annotation | None:
    with store.session() as s:
        return s.get(Annotation, ann_id)


def image(store: Any, image_id: int) -> Image:
    with store.session() as s:
        found = s.get(Image, image_id)
        assert found is not None
        return found


def history_size(store: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(HistoryEvent)) or 0)


def tag_label(fods: Any, image_id: int, field: str, ann_id: int, tags: list[str]) -> None:
    smp = by_image(fods)[image_id]
    for label in smp[field].detections:
        if label[backend.ID] == ann_id:
            label.tags = tags
    smp.save()


def test_label_and_sample_tags_become_decisions(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i0, i1, i2, _ = b.images
    tag_label(fods, i0, "prelabels", b.labels["pred0"], ["accept"])
    tag_label(fods, i1, "prelabels", b.labels["pred1"], ["reject", "looked"])
    tag_label(fods, i1, "ground_truth", b.labels["human1"], ["fix"])
    for image_id, tag in ((i2, "skip"), (i0, "relabel")):
        smp = by_image(fods)[image_id]
        smp.tags = [tag]
        smp.save()
    report = do_pull(store, b)
    assert report.conflicts == [] and report.ignored == []
    assert report.applied == {"reviewed": 3, "status": 2}
    pred0, pred1, human1 = (ann(store, b.labels[k]) for k in ("pred0", "pred1", "human1"))
    assert pred0 and pred1 and human1
    assert (pred0.review, pred1.review, human1.review) == ("accepted", "rejected", "pending")
    assert human1.note == backend.FIX_NOTE
    assert (image(store, i2).status, image(store, i0).status) == ("skipped", "unlabeled")
    with store.session() as s:
        authors = set(s.scalars(select(HistoryEvent.author).where(HistoryEvent.id > 0)))
    assert "fiftyone" in authors
    # FiftyOne now shows the result; the used tags are gone, the others stay
    samples = by_image(fods)
    assert [x[backend.ID] for x in samples[i0].ground_truth.detections] == [
        b.labels["human0"], b.labels["pred0"]]  # fmt: skip
    assert samples[i1].rejected.detections[0].tags == ["looked"]
    assert samples[i1].prelabels.detections[0][backend.ID] == b.labels["human1"]
    assert samples[i2].tags == [] and samples[i2].status == "skipped"
    # idempotent
    events = history_size(store)
    again = do_pull(store, b)
    assert again.changes == 0 and again.conflicts == []
    assert history_size(store) == events


def test_decision_on_a_label_changed_since_the_push_is_a_conflict(fo: Any, build: Any,
                                                                   store: Any) -> None:  # fmt: skip
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i1 = b.images[1]
    tag_label(fods, i1, "prelabels", b.labels["pred1"], ["reject"])
    with store.session() as s:  # someone corrects the box in the terminal meanwhile
        labels.edit_annotation(s, b.labels["pred1"], "ann", box=Box(41, 30, 10, 10))
    before = ann(store, b.labels["pred1"])
    report = do_pull(store, b)
    assert report.changes == 0
    (conflict,) = report.conflicts
    assert conflict.tag == "reject" and "changed in the store" in conflict.reason
    after = ann(store, b.labels["pred1"])
    assert after and before
    assert (after.review, after.revision, after.author) == ("accepted", before.revision, "ann")
    (label,) = [x for x in by_image(fods)[i1].ground_truth.detections
                if x[backend.ID] == b.labels["pred1"]]  # fmt: skip
    assert label.tags == [backend.CONFLICT_TAG]
    assert label.bounding_box[0] == 41 / 64
    events = history_size(store)
    again = do_pull(store, b)
    assert (again.changes, again.conflicts, history_size(store)) == (0, [], events)
    # the user looks again and still rejects it: applied now, the conflict tag goes
    tag_label(fods, i1, "ground_truth", b.labels["pred1"], [backend.CONFLICT_TAG, "reject"])
    third = do_pull(store, b)
    assert third.applied == {"reviewed": 1} and third.conflicts == []
    rejected = ann(store, b.labels["pred1"])
    assert rejected is not None and rejected.review == "rejected"
    assert by_image(fods)[i1].rejected.detections[0].tags == []


def test_sample_decision_on_a_changed_image_is_a_conflict(fo: Any, build: Any,
                                                          store: Any) -> None:  # fmt: skip
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    smp = by_image(fods)[b.images[3]]
    smp.tags = ["skip"]
    smp.save()
    with store.session() as s:
        labels.add_box(s, b.images[3], b.classes["dog"], Box(1, 1, 5, 5), "ann")
    report = do_pull(store, b)
    assert [c.tag for c in report.conflicts] == ["skip"]
    assert image(store, b.images[3]).status == "labeled"
    assert by_image(fods)[b.images[3]].tags == [backend.CONFLICT_TAG]


def test_boxes_edited_and_added_in_fiftyone(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i1, i3 = b.images[1], b.images[3]
    smp = by_image(fods)[i1]
    smp.ground_truth.detections[0].bounding_box = [0.25, 0.5, 0.5, 0.25]
    smp.ground_truth.detections[0].label = "bird"
    smp.save()
    smp = by_image(fods)[i3]
    smp.ground_truth = fo.Detections(detections=[
        fo.Detection(label="cat", bounding_box=[0.125, 0.25, 0.5, 0.5])])  # fmt: skip
    smp.save()
    report = do_pull(store, b)
    assert report.applied == {"edited": 1, "added": 1}
    edited = ann(store, b.labels["human1"])
    assert edited is not None
    assert (edited.x, edited.y, edited.w, edited.h) == (16, 24, 32, 12)
    assert (edited.class_id, edited.author, edited.revision) == (b.classes["bird"], "fiftyone", 2)
    with store.session() as s:
        (added,) = s.scalars(select(Annotation).where(Annotation.image_id == i3))
    assert (added.x, added.y, added.w, added.h, added.author) == (8, 12, 32, 24, "fiftyone")
    assert image(store, i3).status == "labeled"
    (label,) = by_image(fods)[i3].ground_truth.detections
    assert label[backend.ID] == added.id
    events = history_size(store)
    assert do_pull(store, b).changes == 0 and history_size(store) == events


def test_unchanged_boxes_round_trip_exactly(fo: Any, build: Any, store: Any) -> None:
    b = build("detection", 2, rotated=True)
    odd = [Box(1 / 3, 2 / 7, 40 / 3, 50 / 9), Box(0.1, 0.2, 47.9, 63.8)]
    with store.session() as s:
        ids = [labels.add_box(s, b.images[0], b.classes["cat"], box, "ann").id for box in odd]
        ids.append(add_prediction(s, b, b.images[1], "dog", 0.5, Box(0.7, 0.9, 11.1, 13.3)))
    before = [(a.x, a.y, a.w, a.h, a.revision) for a in map(lambda i: ann(store, i), ids) if a]
    do_push(store, b)
    assert do_pull(store, b).changes == 0
    after = [(a.x, a.y, a.w, a.h, a.revision) for a in map(lambda i: ann(store, i), ids) if a]
    assert after == before


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_classes_changed_in_fiftyone(fo: Any, build: Any, store: Any, task: str) -> None:
    b = build(task, 2)
    i0, i1 = b.images
    with store.session() as s:
        first = (labels.assign_class if task == "classification" else labels.toggle_class)(
            s, i0, b.classes["cat"], "ann")  # fmt: skip
        assert first is not None
        pred = add_prediction(s, b, i1, "dog", 0.4)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    smp = by_image(fods)[i0]
    if task == "classification":
        smp.ground_truth.label = "bird"
    else:
        smp.ground_truth.classifications.append(fo.Classification(label="dog"))
    smp.save()
    smp = by_image(fods)[i1]
    smp.prelabels.classifications[0].tags = ["accept"]
    smp.save()
    report = do_pull(store, b)
    with store.session() as s:
        names = {c: n for n, c in b.classes.items()}
        on_i0 = sorted(names[a.class_id] for a in s.scalars(
            select(Annotation).where(Annotation.image_id == i0)))  # fmt: skip
    if task == "classification":
        assert report.applied == {"edited": 1, "reviewed": 1} and on_i0 == ["bird"]
    else:
        assert report.applied == {"added": 1, "reviewed": 1} and on_i0 == ["cat", "dog"]
    accepted = ann(store, pred)
    assert accepted is not None and accepted.review == "accepted"
    counts = fods.count(f"{backend.list_path(task, 'ground_truth')}.{backend.ID}")
    assert counts == (2 if task == "classification" else 3)
    assert do_pull(store, b).changes == 0


def test_pull_needs_a_push_first(fo: Any, build: Any, store: Any) -> None:
    b = build("classification", 1)
    with pytest.raises(NotFoundError, match="review push"):
        do_pull(store, b)


def remove_label(fods: Any, image_id: int, field: str, ann_id: int) -> None:
    """Delete one of our labels in FiftyOne, as the App does."""
    smp = by_image(fods)[image_id]
    smp[field].detections = [x for x in smp[field].detections if x[backend.ID] != ann_id]
    smp.save()


@pytest.mark.parametrize("where", ["same image", "another image"])
def test_a_label_made_after_a_delete_is_left_alone(fo: Any, build: Any, store: Any,
                                                   where: str) -> None:  # fmt: skip
    b = detection_store(build, store)
    do_push(store, b)
    newest = b.labels["pred2"]  # on image 2
    target = b.images[2] if where == "same image" else b.images[3]
    with store.session() as s:
        labels.delete_annotation(s, newest, "ann")
        made = labels.add_box(s, target, b.classes["dog"], Box(2, 2, 20, 20), "ann").id
    before = ann(store, made)
    report = do_pull(store, b)
    assert report.changes == 0 and report.conflicts == [] and report.ignored == []
    after = ann(store, made)
    assert before and after and made != newest
    assert (after.class_id, after.x, after.w, after.author, after.revision) == (
        b.classes["dog"], 2, 20, "ann", before.revision)  # fmt: skip
    (shown,) = by_image(fo.load_dataset(b.fo_name))[target].ground_truth.detections
    assert (shown[backend.ID], shown.label) == (made, "dog")


def test_a_label_under_a_reused_id_is_not_the_pushed_one(fo: Any, build: Any,
                                                         store: Any) -> None:  # fmt: skip
    """A database from before ids were never reused hands the deleted newest label's id to the
    next label: the App's decision and content of the old label must not reach the new one."""
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i2, old = b.images[2], b.labels["pred2"]
    tag_label(fods, i2, "prelabels", old, ["reject"])
    smp = by_image(fods)[i2]
    smp.prelabels.detections[0].label = "cat"  # and corrected in the App
    smp.save()
    with store.session() as s:
        labels.delete_annotation(s, old, "ann")
        new = add_prediction(s, b, i2, "dog", 0.5, Box(2, 2, 20, 20))
        s.execute(update(Annotation).where(Annotation.id == new).values(id=old))
        s.commit()
    report = do_pull(store, b)
    assert report.changes == 0
    edit, reject = report.conflicts
    assert edit.reason == "edited in FiftyOne and deleted in the store since the push"
    assert reject.tag == "reject" and "deleted in the store" in reject.reason
    reused = ann(store, old)
    assert reused is not None
    assert (reused.class_id, reused.review, reused.x, reused.author) == (
        b.classes["dog"], "pending", 2, "model:test")  # fmt: skip
    (shown,) = by_image(fods)[i2].prelabels.detections
    assert (shown[backend.ID], shown.label, shown.tags) == (old, "dog", [])
    assert do_pull(store, b).changes == 0


def test_labels_deleted_in_fiftyone_are_deleted_in_the_store(fo: Any, build: Any,
                                                             store: Any) -> None:  # fmt: skip
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i1, i2 = b.images[1], b.images[2]
    human1, pred1, pred2 = (b.labels[k] for k in ("human1", "pred1", "pred2"))
    remove_label(fods, i1, "ground_truth", human1)
    remove_label(fods, i2, "prelabels", pred2)
    report = do_pull(store, b)
    assert report.applied == {"deleted": 2}
    assert report.conflicts == [] and report.ignored == []
    assert ann(store, human1) is None and ann(store, pred2) is None
    kept = ann(store, pred1)
    assert kept is not None and (kept.review, kept.revision) == ("pending", 1)
    with store.session() as s:
        deletes = s.scalars(select(HistoryEvent).where(HistoryEvent.action == "delete"))
        assert {(e.annotation_id, e.author) for e in deletes} == {
            (human1, "fiftyone"), (pred2, "fiftyone")}  # fmt: skip
    samples = by_image(fods)
    assert samples[i1].ground_truth is None and samples[i2].prelabels is None
    assert [x[backend.ID] for x in samples[i1].prelabels.detections] == [pred1]
    events = history_size(store)
    assert do_pull(store, b).changes == 0 and history_size(store) == events
    assert do_push(store, b).updated == 0


def test_a_delete_in_fiftyone_of_a_label_changed_since_the_push_is_a_conflict(
    fo: Any, build: Any, store: Any
) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i1, pred1 = b.images[1], b.labels["pred1"]
    remove_label(fods, i1, "prelabels", pred1)
    with store.session() as s:  # someone corrects the box in the terminal meanwhile
        labels.edit_annotation(s, pred1, "ann", box=Box(41, 30, 10, 10))
    report = do_pull(store, b)
    assert report.changes == 0
    (conflict,) = report.conflicts
    assert f"label {pred1} (cat) deleted in FiftyOne" in str(conflict)
    assert "changed in the store since the push" in conflict.reason
    kept = ann(store, pred1)
    assert kept is not None and (kept.x, kept.author, kept.revision) == (41, "ann", 2)
    smp = by_image(fods)[i1]  # shown again as it is now, the sample tagged
    assert backend.CONFLICT_TAG in smp.tags
    assert [x.bounding_box[0] for x in smp.ground_truth.detections if x[backend.ID] == pred1] == [
        41 / 64]  # fmt: skip
    again = do_pull(store, b)
    assert (again.changes, again.conflicts) == (0, [])
