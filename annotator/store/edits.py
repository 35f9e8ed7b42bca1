"""The edits a person (or the FiftyOne App, through review pull) makes to one image's labels,
as data: one frozen dataclass per kind, and `apply`, which runs one of them through its use case
in `annotator.store.labels` (one transaction, one history group, the revision rule). The
labelling app and review pull build these; a new kind of one-image edit is added here once.
Runs of many labels at a time (imports, merges, model runs, consensus, restore) write in bulk
or as one history group of their own, not through here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from sqlalchemy.orm import Session

from annotator.annotation import Box
from annotator.store import labels
from annotator.store.models import Annotation


@dataclass(frozen=True, slots=True)
class _ImageClass:
    """The fields of an edit that gives the image `image_id` the whole-image class `class_id`."""

    image_id: int
    class_id: int


class AssignClass(_ImageClass):
    """Classification: the image's one label becomes `class_id`."""

    __slots__ = ()


class ToggleClass(_ImageClass):
    """Multilabel: class `class_id` added to the image when absent, removed when present."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AddBox:
    """Detection: a new box of class `class_id` on the image."""

    image_id: int
    class_id: int
    box: Box


@dataclass(frozen=True, slots=True)
class EditAnnotation:
    """A label's class and/or a box's geometry changed (None: that part stays)."""

    ann_id: int
    class_id: int | None = None
    box: Box | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """Labels of one image accepted, rejected or put back to pending, with an optional note."""

    ann_ids: tuple[int, ...]
    decision: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SetStatus:
    """The image's status set (one of `STATUSES`: skipped, reviewed, ...). On an overlap image
    a person labels in their own layer, labeled or reviewed finishes their vote instead."""

    image_id: int
    status: str


@dataclass(frozen=True, slots=True)
class Delete:
    """A label or box deleted."""

    ann_id: int


@dataclass(frozen=True, slots=True)
class AcceptAsLabel:
    """Classification: the prelabel `ann_id` becomes the image's one label."""

    ann_id: int


Edit = (
    AssignClass | ToggleClass | AddBox | EditAnnotation | Delete | Review | AcceptAsLabel
    | SetStatus
)  # fmt: skip


def apply(
    session: Session, edit: Edit, author: str, expected_revision: int | None
) -> Annotation | None:
    """Commit `edit` as `author`, refused with a ConflictError when the image's revision is no
    longer `expected_revision` (None: not checked). Returns the label it created or changed
    (None for a delete, a review, a status, or a toggle that removed the class)."""
    rev = expected_revision
    match edit:
        case AssignClass(image_id, class_id):
            return labels.assign_class(session, image_id, class_id, author, rev)
        case ToggleClass(image_id, class_id):
            return labels.toggle_class(session, image_id, class_id, author, rev)
        case AddBox(image_id, class_id, box):
            return labels.add_box(session, image_id, class_id, box, author, rev)
        case EditAnnotation(ann_id, class_id, box):
            return labels.edit_annotation(session, ann_id, author, class_id=class_id, box=box,
                                          expected_revision=rev)  # fmt: skip
        case Delete(ann_id):
            labels.delete_annotation(session, ann_id, author, rev)
        case Review(ann_ids, decision, note):
            labels.review_annotations(session, list(ann_ids), decision, author, rev, note)
        case AcceptAsLabel(ann_id):
            return labels.accept_as_label(session, ann_id, author, rev)
        case SetStatus(image_id, status):
            labels.set_status(session, image_id, status, author, rev)
        case _:
            assert_never(edit)
    return None
