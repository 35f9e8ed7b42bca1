"""Pure parts of the mirror: box conversion and the plan pull makes from what FiftyOne holds
(no FiftyOne, no database)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from annotator.annotation import Box
from annotator.review.convert import abs_box, class_disagreement, rel_box
from annotator.review.decide import Link, Planner, Step
from annotator.review.mirror import FoLabel, FoSample
from annotator.store.edits import EditAnnotation, Review, SetStatus
from annotator.store.review_reads import ImageRecord, LabelRecord

pytestmark = pytest.mark.xdist_group("fiftyone")

W, H = 640, 427


@pytest.mark.parametrize(
    "box",
    [Box(0, 0, 640, 427), Box(1.5, 2.25, 20.125, 30.5), Box(100.3, 7.7, 0.1, 419.3),
     Box(639.9, 426.9, 0.1, 0.1)],
)  # fmt: skip
def test_relative_boxes_round_trip(box: Box) -> None:
    rel = rel_box(box, W, H)
    assert rel == [box.x / W, box.y / H, box.w / W, box.h / H]
    back = abs_box(rel, W, H)
    assert (back.x, back.y, back.w, back.h) == pytest.approx((box.x, box.y, box.w, box.h),
                                                             abs=1e-9)  # fmt: skip


def _rec(id: int, cls: str, review: str = "accepted", revision: int = 1,
         box: Box | None = None, note: str | None = None) -> LabelRecord:  # fmt: skip
    source = "human" if review == "accepted" else "model"
    return LabelRecord(id, 1, cls, box, source, None, None, None, review, note, False, revision)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([_rec(1, "cat"), _rec(2, "cat", "pending")], False),
        ([_rec(1, "cat"), _rec(2, "dog", "pending")], True),
        ([_rec(2, "dog", "pending")], False),  # nothing to disagree with
        ([_rec(1, "cat"), _rec(3, "dog"), _rec(2, "cat", "pending")], True),  # dog missed
        ([_rec(1, "cat"), _rec(2, "dog", "rejected")], False),
    ],
)
def test_class_disagreement(labels: list[LabelRecord], expected: bool) -> None:
    img = ImageRecord(1, "/x.jpg", W, H, None, "labeled", None, 1, labels)
    assert class_disagreement(img) is expected


CLASSES = {"cat": 11, "dog": 12}


def _plan(task: str, img: ImageRecord, sample: FoSample, pushed: Any = None) -> Any:
    ds = SimpleNamespace(task=task, classes=[SimpleNamespace(name=n, id=i)
                                             for n, i in CLASSES.items()])  # fmt: skip
    return Planner(ds, {img.id: img}, pushed or (lambda a, r: None)).run([sample])  # type: ignore[arg-type]


def _image(*labels: LabelRecord, revision: int = 1, status: str = "labeled") -> ImageRecord:
    return ImageRecord(1, "/d/a.jpg", W, H, None, status, None, revision, list(labels))


def _fo(field: str, ann: int | None, rev: int | None, tags: list[str], cls: str = "cat",
        box: Box | None = None) -> FoLabel:  # fmt: skip
    bbox = rel_box(box, W, H) if box else None
    return FoLabel(field, f"L{ann}", ann, rev, tags, cls, bbox)


def _sample(*labels: FoLabel, tags: list[str] | None = None, revision: int = 1) -> FoSample:
    return FoSample("S1", 1, revision, tags or [], list(labels))


BOX = Box(10, 20, 30, 40)


@pytest.mark.parametrize(
    ("tags", "store", "pushed_rev", "expect"),
    [
        (["accept"], _rec(5, "cat", "pending", 1, BOX), 1, "review accepted"),
        (["reject"], _rec(5, "cat", "pending", 1, BOX), 1, "review rejected"),
        (["fix"], _rec(5, "cat", "accepted", 1, BOX), 1, "review pending"),
        (["accept"], _rec(5, "cat", "pending", 2, BOX), 1, "conflict"),
        (["accept"], _rec(5, "cat", "accepted", 2, BOX), 1, "settled"),
        (["accept", "reject"], _rec(5, "cat", "pending", 1, BOX), 1, "ignored"),
        (["accept"], None, 1, "conflict"),
        (["other"], _rec(5, "cat", "pending", 1, BOX), 1, "nothing"),
    ],
)
def test_label_tags_plan(tags: list[str], store: LabelRecord | None, pushed_rev: int,
                         expect: str) -> None:  # fmt: skip
    img = _image(*([store] if store else []))
    plan = _plan("detection", img, _sample(_fo("prelabels", 5, pushed_rev, tags, box=BOX)))
    got = [_said(s) for s in plan.steps]
    got += ["conflict"] * len(plan.conflicts) + ["settled"] * len(plan.settled)
    got += ["ignored"] * len(plan.ignored)
    assert got == ([] if expect == "nothing" else [expect])
    if expect == "conflict":
        assert plan.conflicts[0].tag == tags[0]
        assert plan.conflicts[0].ref.label_id == "L5"


def test_edited_box_and_class_become_an_edit() -> None:
    moved = Box(12, 20, 30, 40)
    img = _image(_rec(5, "cat", box=BOX))
    plan = _plan("detection", img, _sample(_fo("ground_truth", 5, 1, [], "dog", moved)))
    (step,) = plan.steps
    assert step.edit == EditAnnotation(5, CLASSES["dog"], Box(12, 20, 30, 40))


def test_float_noise_is_not_an_edit() -> None:
    img = _image(_rec(5, "cat", box=Box(1 / 3, 2 / 7, 100 / 3, 50 / 9)))
    label = _fo("ground_truth", 5, 1, [], box=Box(1 / 3, 2 / 7, 100 / 3, 50 / 9))
    assert _plan("detection", img, _sample(label)).steps == []


def test_edit_on_a_label_changed_in_the_store() -> None:
    img = _image(_rec(5, "cat", revision=3, box=Box(50, 50, 5, 5)))
    untouched = _fo("ground_truth", 5, 2, [], box=BOX)  # FiftyOne still shows revision 2
    plan = _plan("detection", img, _sample(untouched), lambda a, r: ("cat", BOX))
    assert (plan.steps, plan.conflicts) == ([], [])
    edited = _fo("ground_truth", 5, 2, [], box=Box(0, 0, 9, 9))
    plan = _plan("detection", img, _sample(edited), lambda a, r: ("cat", BOX))
    assert plan.steps == [] and len(plan.conflicts) == 1
    assert "changed in the store" in plan.conflicts[0].reason


@pytest.mark.parametrize(
    ("task", "field", "cls", "expect"),
    [
        ("detection", "ground_truth", "dog", "create"),
        ("detection", "ground_truth", "zebra", "ignored"),
        ("detection", "prelabels", "dog", "ignored"),
        ("classification", "ground_truth", "dog", "create"),
        ("multilabel", "ground_truth", "cat", "link"),  # cat is on the image already
        ("multilabel", "ground_truth", "dog", "create"),
    ],
)
def test_labels_added_in_fiftyone(task: str, field: str, cls: str, expect: str) -> None:
    img = _image(_rec(5, "cat"))
    box = BOX if task == "detection" else None
    plan = _plan(task, img, _sample(_fo(field, None, None, [], cls, box)))
    got = [s.kind for s in plan.steps] + ["ignored"] * len(plan.ignored)
    assert got == [expect]
    if expect == "link":
        assert plan.steps[0].edit == Link(5)


@pytest.mark.parametrize(
    ("tags", "status", "revision", "expect"),
    [
        (["skip"], "labeled", 1, "status skipped"),
        (["relabel"], "labeled", 1, "status unlabeled"),
        (["skip"], "labeled", 2, "conflict"),
        (["skip"], "skipped", 2, "settled"),
        (["skip", "relabel"], "labeled", 1, "ignored"),
    ],
)
def test_sample_tags_plan(tags: list[str], status: str, revision: int, expect: str) -> None:
    img = _image(revision=revision, status=status)
    plan = _plan("classification", img, _sample(tags=tags))
    got = [_said(s) for s in plan.steps]
    got += ["conflict"] * len(plan.conflicts) + ["settled"] * len(plan.settled)
    got += ["ignored"] * len(plan.ignored)
    assert got == [expect]


def _said(step: Step) -> str:
    """A step as the tables above name it: its kind and the review state or status it sets."""
    match step.edit:
        case Review(decision=decision):
            return f"review {decision}"
        case SetStatus(status=status):
            return f"status {status}"
    return step.kind
