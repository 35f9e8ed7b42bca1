"""Use cases of the labelling screen that combine several changes into one user action (one
transaction, one history group, so one undo): accepting a classification prelabel as the image's
one label. Built on `annotator.store.labels`; the same revision rule applies."""

from __future__ import annotations

from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.history import Group, snapshot
from annotator.store.labels import finish, image_annotations, load_annotation, load_image, remove
from annotator.store.models import Annotation


def accept_as_label(
    session: Session, ann_id: int, author: str, expected_revision: int | None = None
) -> Annotation:
    """Single-label classification: the pending prelabel `ann_id` becomes the image's label.
    It is accepted, the image's other pending labels are rejected and its other accepted labels
    removed, all as one action."""
    chosen = load_annotation(session, ann_id)
    if chosen.kind != "label":
        raise InvalidInputError(f"label {ann_id} is a box, not a whole-image label")
    image = load_image(session, chosen.image_id, expected_revision)
    group = Group(author)
    for ann in image_annotations(session, image.id):
        if ann.kind != "label":
            continue
        if ann.id == chosen.id:
            _review(group, ann, "accepted")
        elif ann.review == "pending":
            _review(group, ann, "rejected")
        elif ann.review == "accepted":
            remove(session, group, ann)
    finish(session, image, group)
    return chosen


def _review(group: Group, ann: Annotation, decision: str) -> None:
    if ann.review == decision:
        return
    before = snapshot(ann)
    ann.review, ann.revision = decision, ann.revision + 1
    group.add(ann.dataset_id, "review", image_id=ann.image_id, annotation_id=ann.id,
              before=before, after=snapshot(ann))  # fmt: skip
