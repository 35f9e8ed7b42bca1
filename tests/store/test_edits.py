"""The typed edit set (`annotator.store.edits`): each edit, applied, changes the image's labels
or status as a person expects and bumps its revision; an edit citing a revision the image has
moved on from is refused and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotator.annotation import Box
from annotator.errors import ConflictError
from annotator.store import edits
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.labels import image_annotations
from annotator.store.models import Annotation, HistoryEvent, Image, ModelRun


@dataclass
class Sets:
    """One image of each task, the class ids of each dataset (cat, dog), and the store."""

    store: Store
    images: dict[str, int]
    classes: dict[str, tuple[int, int]]

    def labels(self, task: str) -> list[tuple[str, int, str, tuple[float, ...] | None]]:
        """(kind, class id, review, box) of the image's labels, oldest first."""
        with self.store.session() as s:
            return [(a.kind, a.class_id, a.review, None if a.x is None else (a.x, a.y, a.w, a.h))
                    for a in image_annotations(s, self.images[task])]  # fmt: skip

    def image(self, task: str) -> tuple[str, int]:
        """(status, revision) of the task's image."""
        with self.store.session() as s:
            image = s.get(Image, self.images[task])
            assert image is not None
            return image.status, image.revision

    def prelabel(self, task: str, cls: int, box: Box | None = None) -> int:
        """A pending model prediction on the task's image, as a prelabel run stores it."""
        with self.store.session() as s:
            image = s.get(Image, self.images[task])
            assert image is not None
            run = ModelRun(dataset_id=image.dataset_id, model="net")
            s.add(run)
            s.flush()
            ann = Annotation(
                dataset_id=image.dataset_id, task=task, image_id=image.id, class_id=cls,
                kind="box" if box else "label", x=box.x if box else None,
                y=box.y if box else None, w=box.w if box else None, h=box.h if box else None,
                source="model", run_id=run.id, score=0.7, review="pending", author="net",
            )  # fmt: skip
            s.add(ann)
            s.commit()
            return ann.id

    def apply(self, edit: edits.Edit, expected: int | None = None) -> Annotation | None:
        with self.store.session() as s:
            return edits.apply(s, edit, "ann", expected)

    def events(self) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(HistoryEvent)) or 0)


@pytest.fixture
def sets(store: Store, make_images: Callable[..., list[Path]]) -> Sets:
    images, classes = {}, {}
    with store.session() as s:
        for task in ("classification", "multilabel", "detection"):
            (path,) = make_images(1, folder=task)
            ds = create_dataset(s, task, task, ["cat", "dog"], root=path.parent)
            add_images(s, ds, [path])
            images[task] = s.scalars(select(Image.id).where(Image.dataset_id == ds.id)).one()
            classes[task] = (ds.classes[0].id, ds.classes[1].id)
    return Sets(store, images, classes)


def test_assign_class_gives_the_image_its_one_label(sets: Sets) -> None:
    cat, dog = sets.classes["classification"]
    image = sets.images["classification"]
    sets.apply(edits.AssignClass(image, cat), expected=1)
    made = sets.apply(edits.AssignClass(image, dog), expected=2)
    assert made is not None and made.class_id == dog
    assert sets.labels("classification") == [("label", dog, "accepted", None)]
    assert sets.image("classification") == ("labeled", 3)


def test_toggle_class_adds_then_removes(sets: Sets) -> None:
    cat, _ = sets.classes["multilabel"]
    image = sets.images["multilabel"]
    added = sets.apply(edits.ToggleClass(image, cat), expected=1)
    assert added is not None and sets.labels("multilabel") == [("label", cat, "accepted", None)]
    assert sets.apply(edits.ToggleClass(image, cat), expected=2) is None
    assert sets.labels("multilabel") == []
    assert sets.image("multilabel") == ("unlabeled", 3)


def test_add_box_then_edit_its_class_and_box(sets: Sets) -> None:
    cat, dog = sets.classes["detection"]
    image = sets.images["detection"]
    box = sets.apply(edits.AddBox(image, cat, Box(1, 2, 10, 8)), expected=1)
    assert box is not None
    sets.apply(edits.EditAnnotation(box.id, class_id=dog), expected=2)
    assert sets.labels("detection") == [("box", dog, "accepted", (1, 2, 10, 8))]
    edited = sets.apply(edits.EditAnnotation(box.id, box=Box(3, 4, 20, 16)), expected=3)
    assert edited is not None and edited.revision == 3  # the label's own revision
    assert sets.labels("detection") == [("box", dog, "accepted", (3, 4, 20, 16))]
    assert sets.image("detection") == ("labeled", 4)


def test_delete_removes_the_label(sets: Sets) -> None:
    cat, _ = sets.classes["detection"]
    box = sets.apply(edits.AddBox(sets.images["detection"], cat, Box(1, 2, 10, 8)))
    assert box is not None
    assert sets.apply(edits.Delete(box.id), expected=2) is None
    assert sets.labels("detection") == []
    assert sets.image("detection") == ("unlabeled", 3)


def test_review_decides_prelabels_with_a_note(sets: Sets) -> None:
    cat, dog = sets.classes["detection"]
    first = sets.prelabel("detection", cat, Box(1, 1, 5, 5))
    second = sets.prelabel("detection", dog, Box(9, 9, 5, 5))
    sets.apply(edits.Review((first, second), "rejected"), expected=1)
    sets.apply(edits.Review((second,), "pending", note="check the ears"), expected=2)
    assert [r for _, _, r, _ in sets.labels("detection")] == ["rejected", "pending"]
    with sets.store.session() as s:
        note = s.get(Annotation, second)
        assert note is not None and note.note == "check the ears"


def test_accept_as_label_settles_the_image_in_one_action(sets: Sets) -> None:
    cat, dog = sets.classes["classification"]
    image = sets.images["classification"]
    sets.apply(edits.AssignClass(image, cat))
    chosen, other = sets.prelabel("classification", dog), sets.prelabel("classification", cat)
    before = sets.events()
    made = sets.apply(edits.AcceptAsLabel(chosen), expected=2)
    assert made is not None and made.id == chosen
    assert sets.labels("classification") == [("label", dog, "accepted", None),
                                             ("label", cat, "rejected", None)]  # fmt: skip
    assert other != chosen and sets.events() == before + 3  # delete, accept, reject
    with sets.store.session() as s:
        groups = s.scalars(select(HistoryEvent.group_id).where(HistoryEvent.id > before))
        assert len(set(groups)) == 1  # one undo takes it all back


def test_set_status_marks_the_image(sets: Sets) -> None:
    sets.apply(edits.SetStatus(sets.images["classification"], "skipped"), expected=1)
    assert sets.image("classification") == ("skipped", 2)


STALE: list[tuple[str, Callable[[Sets, int], edits.Edit]]] = [
    ("classification", lambda t, ann: edits.AssignClass(t.images["classification"],
                                                        t.classes["classification"][1])),
    ("multilabel", lambda t, ann: edits.ToggleClass(t.images["multilabel"],
                                                    t.classes["multilabel"][1])),
    ("detection", lambda t, ann: edits.AddBox(t.images["detection"], t.classes["detection"][1],
                                              Box(0, 0, 4, 4))),
    ("detection", lambda t, ann: edits.EditAnnotation(ann, box=Box(5, 5, 4, 4))),
    ("detection", lambda t, ann: edits.Delete(ann)),
    ("detection", lambda t, ann: edits.Review((ann,), "rejected")),
    ("classification", lambda t, ann: edits.AcceptAsLabel(ann)),
    ("classification", lambda t, ann: edits.SetStatus(t.images["classification"], "skipped")),
]  # fmt: skip


@pytest.mark.parametrize(("task", "make"), STALE)
def test_an_edit_citing_a_stale_revision_is_refused(
    sets: Sets, task: str, make: Callable[[Sets, int], edits.Edit]
) -> None:
    cat = sets.classes[task][0]
    ann = sets.prelabel(task, cat, Box(1, 1, 5, 5) if task == "detection" else None)
    sets.apply(edits.SetStatus(sets.images[task], "reviewed"))  # someone else: revision 2
    labels, image, events = sets.labels(task), sets.image(task), sets.events()
    with pytest.raises(ConflictError, match="changed since it was shown"):
        sets.apply(make(sets, ann), expected=1)
    assert (sets.labels(task), sets.image(task), sets.events()) == (labels, image, events)
