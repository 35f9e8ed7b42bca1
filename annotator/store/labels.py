"""Use cases that change labels one action at a time (the TUI, review pull and the CLI call
these, most through `annotator.store.edits`): assign, toggle, add/move/delete boxes, review
prelabels, accept a prelabel as an image's one label, set an image's status. Each call
is one transaction and one history group, bumps the image's revision, and refuses an edit made
against a stale revision (`expected_revision`) with a ConflictError. On an overlap image not
every annotator has finished, a person's new labels are votes in their own layer
(`annotator.store.overlap`): they leave the image's status and revision alone."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.annotation import Box
from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.store import overlap
from annotator.store.history import Group, image_state, snapshot
from annotator.store.models import REVIEWS, STATUSES, VOTE, Annotation, Dataset, Image, LabelClass

ACTIVE_REVIEWS = ("accepted",)  # human labels are stored as accepted


def load_image(session: Session, image_id: int, expected_revision: int | None = None) -> Image:
    """The image row, locked for this transaction's change; refused when stale."""
    image = session.get(Image, image_id, with_for_update=True)
    if image is None:
        raise NotFoundError(f"image {image_id} does not exist (deleted?)")
    if expected_revision is not None and image.revision != expected_revision:
        raise ConflictError(
            f"image {image.path} changed since it was shown (revision {image.revision}, "
            f"you had {expected_revision}); showing the current state"
        )
    return image


def image_annotations(session: Session, image_id: int) -> list[Annotation]:
    stmt = select(Annotation).where(Annotation.image_id == image_id).order_by(Annotation.id)
    return list(session.scalars(stmt))


def _class(session: Session, image: Image, class_id: int) -> LabelClass:
    cls = session.get(LabelClass, class_id)
    if cls is None or cls.dataset_id != image.dataset_id:
        raise NotFoundError(f"class {class_id} is not a class of this image's dataset")
    return cls


def refresh_status(session: Session, image: Image, group: Group) -> None:
    """Labeled when it holds a human or accepted label; unlabeled when it holds none."""
    session.flush()
    has = session.scalar(
        select(Annotation.id)
        .where(Annotation.image_id == image.id, Annotation.review == "accepted")
        .limit(1)
    )
    new = image.status
    if has and image.status in ("unlabeled", "skipped"):
        new = "labeled"
    elif not has and image.status == "labeled":
        new = "unlabeled"
    if new != image.status:
        before = image_state(image)
        image.status = new
        group.add(image.dataset_id, "status", image_id=image.id, before=before,
                  after=image_state(image))  # fmt: skip
    if new == "labeled":
        image.flag = None  # a person labelled it: the import's refusal is answered


def finish(session: Session, image: Image, group: Group, shared: bool = True) -> None:
    """End a one-image action: status refreshed, revision bumped (not for a change of votes
    only, `shared` false: others labelling the same overlap image are not refused for it),
    history written, committed."""
    refresh_status(session, image, group)
    if shared:
        image.revision += 1
    group.flush(session)
    session.commit()


def _in_layer(ann: Annotation, layer: str | None) -> bool:
    """A person's own label in `layer`: their vote there, or an accepted shared label."""
    return ann.layer == layer and ann.review == (VOTE if layer else "accepted")


def _new_annotation(
    session: Session, image: Image, cls: LabelClass, box: Box | None, author: str,
    layer: str | None = None,
) -> Annotation:  # fmt: skip
    ds = session.get(Dataset, image.dataset_id)
    assert ds is not None
    if box is not None:
        _check_box(ds, image, box)
    elif ds.task == "detection":
        raise InvalidInputError("a detection dataset holds boxes, not whole-image labels")
    ann = Annotation(
        dataset_id=image.dataset_id, task=ds.task, image_id=image.id, class_id=cls.id,
        kind="box" if box else "label", x=box.x if box else None, y=box.y if box else None,
        w=box.w if box else None, h=box.h if box else None, source="human",
        review=VOTE if layer else "accepted", layer=layer, author=author, revision=1,
    )  # fmt: skip
    session.add(ann)
    if layer is not None:
        overlap.mark_done(session, image.id, layer)
    session.flush()
    return ann


def _check_box(ds: Dataset, image: Image, box: Box) -> None:
    if ds.task != "detection":
        raise InvalidInputError(f"dataset {ds.name!r} is {ds.task}: it holds no boxes")
    if box.w <= 0 or box.h <= 0:
        raise InvalidInputError(f"box {box} has no area")
    if not box.inside(image.width, image.height):
        raise InvalidInputError(f"box {box} lies outside the {image.width}x{image.height} image")


def assign_class(
    session: Session, image_id: int, class_id: int, author: str,
    expected_revision: int | None = None,
) -> Annotation:  # fmt: skip
    """Classification: the image's one label becomes `class_id` (replacing any other human or
    accepted label; pending prelabels stay for review)."""
    image = load_image(session, image_id, expected_revision)
    cls = _class(session, image, class_id)
    group = Group(author)
    layer = overlap.layer_for(session, image.id, author)
    for ann in image_annotations(session, image.id):
        if ann.kind == "label" and _in_layer(ann, layer):
            if ann.class_id == cls.id:
                session.rollback()
                return ann
            remove(session, group, ann)
    ann = _new_annotation(session, image, cls, None, author, layer)
    group.add(image.dataset_id, "create", image_id=image.id, annotation_id=ann.id,
              after=snapshot(ann))  # fmt: skip
    finish(session, image, group, shared=layer is None)
    return ann


def toggle_class(
    session: Session, image_id: int, class_id: int, author: str,
    expected_revision: int | None = None,
) -> Annotation | None:  # fmt: skip
    """Multilabel: add the label when absent, remove it when present. Returns the new label."""
    image = load_image(session, image_id, expected_revision)
    cls = _class(session, image, class_id)
    group = Group(author)
    layer = overlap.layer_for(session, image.id, author)
    existing = [
        a for a in image_annotations(session, image.id)
        if a.kind == "label" and a.class_id == cls.id and _in_layer(a, layer)
    ]  # fmt: skip
    created: Annotation | None = None
    if existing:
        for ann in existing:
            remove(session, group, ann)
    else:
        created = _new_annotation(session, image, cls, None, author, layer)
        group.add(image.dataset_id, "create", image_id=image.id, annotation_id=created.id,
                  after=snapshot(created))  # fmt: skip
    finish(session, image, group, shared=layer is None)
    return created


def add_box(
    session: Session, image_id: int, class_id: int, box: Box, author: str,
    expected_revision: int | None = None,
) -> Annotation:  # fmt: skip
    image = load_image(session, image_id, expected_revision)
    layer = overlap.layer_for(session, image.id, author)
    ann = _new_annotation(session, image, _class(session, image, class_id), box, author, layer)
    group = Group(author)
    group.add(image.dataset_id, "create", image_id=image.id, annotation_id=ann.id,
              after=snapshot(ann))  # fmt: skip
    finish(session, image, group, shared=layer is None)
    return ann


def remove(session: Session, group: Group, ann: Annotation) -> None:
    """Delete `ann`, recording its last state in `group`."""
    group.add(ann.dataset_id, "delete", image_id=ann.image_id, annotation_id=ann.id,
              before=snapshot(ann))  # fmt: skip
    session.delete(ann)


def load_annotation(session: Session, ann_id: int) -> Annotation:
    ann = session.get(Annotation, ann_id)
    if ann is None:
        raise ConflictError(f"label {ann_id} no longer exists (deleted by someone else?)")
    return ann


def edit_annotation(
    session: Session, ann_id: int, author: str, *, class_id: int | None = None,
    box: Box | None = None, expected_revision: int | None = None,
) -> Annotation:  # fmt: skip
    """Change a label's class and/or a box's geometry. Editing a prelabel makes it a human
    label (accepted)."""
    ann = load_annotation(session, ann_id)
    image = load_image(session, ann.image_id, expected_revision)
    before = snapshot(ann)
    if class_id is not None:
        ann.class_id = _class(session, image, class_id).id
    if box is not None:
        if ann.kind != "box":
            raise InvalidInputError("a whole-image label has no box to move")
        ds = session.get(Dataset, image.dataset_id)
        assert ds is not None
        _check_box(ds, image, box)
        ann.x, ann.y, ann.w, ann.h = box.x, box.y, box.w, box.h
    ann.revision += 1
    ann.author = author
    if ann.review == "pending":  # a person corrected the prediction: it is now their label
        ann.review = "accepted"
    group = Group(author)
    group.add(image.dataset_id, "edit", image_id=image.id, annotation_id=ann.id, before=before,
              after=snapshot(ann))  # fmt: skip
    finish(session, image, group, shared=ann.layer is None)
    return ann


def delete_annotation(
    session: Session, ann_id: int, author: str, expected_revision: int | None = None
) -> None:
    ann = load_annotation(session, ann_id)
    image = load_image(session, ann.image_id, expected_revision)
    group = Group(author)
    shared = ann.layer is None
    remove(session, group, ann)
    finish(session, image, group, shared=shared)


def review_annotations(
    session: Session, ann_ids: list[int], decision: str, author: str,
    expected_revision: int | None = None, note: str | None = None,
) -> int:  # fmt: skip
    """Set the review state of labels of one image (accept, reject, or back to pending).
    Returns how many changed."""
    if decision not in REVIEWS:
        raise InvalidInputError(f"unknown review decision {decision!r}")
    anns = [load_annotation(session, i) for i in ann_ids]
    if not anns:
        return 0
    image = load_image(session, anns[0].image_id, expected_revision)
    group = Group(author)
    for ann in anns:
        if ann.image_id != image.id:
            raise InvalidInputError("review_annotations takes labels of one image")
        if ann.review == VOTE:
            raise InvalidInputError(f"label {ann.id} is {ann.layer}'s overlap vote: not reviewed")
        if ann.review != decision or note is not None:
            _review(group, ann, decision, note)
    changed = len(group.rows)
    finish(session, image, group)
    return changed


def accept_as_label(
    session: Session, ann_id: int, author: str, expected_revision: int | None = None
) -> Annotation:
    """Single-label classification: the pending prelabel `ann_id` becomes the image's label.
    It is accepted, the image's other pending labels are rejected and its other accepted labels
    removed, all as one action (one transaction, one history group, so one undo)."""
    chosen = load_annotation(session, ann_id)
    if chosen.kind != "label":
        raise InvalidInputError(f"label {ann_id} is a box, not a whole-image label")
    image = load_image(session, chosen.image_id, expected_revision)
    group = Group(author)
    for ann in image_annotations(session, image.id):
        if ann.kind != "label":
            continue
        if ann.id == chosen.id and ann.review != "accepted":
            _review(group, ann, "accepted", ann.note)
        elif ann.id != chosen.id and ann.review == "pending":
            _review(group, ann, "rejected", ann.note)
        elif ann.id != chosen.id and ann.review == "accepted":
            remove(session, group, ann)
    finish(session, image, group)
    return chosen


def _review(group: Group, ann: Annotation, decision: str, note: str | None) -> None:
    """Set one label's review state and note, recording the change in `group`."""
    before = snapshot(ann)
    ann.review, ann.note, ann.revision = decision, note, ann.revision + 1
    group.add(ann.dataset_id, "review", image_id=ann.image_id, annotation_id=ann.id,
              before=before, after=snapshot(ann))  # fmt: skip


def set_status(
    session: Session, image_id: int, status: str, author: str,
    expected_revision: int | None = None,
) -> Image:  # fmt: skip
    if status not in STATUSES:
        raise InvalidInputError(f"unknown status {status!r}: choose one of {', '.join(STATUSES)}")
    image = load_image(session, image_id, expected_revision)
    if overlap.layer_for(session, image.id, author) is not None:
        return _status_in_layer(session, image, status, author)
    if image.status != status:
        group = Group(author)
        before = image_state(image)
        image.status = status
        group.add(image.dataset_id, "status", image_id=image.id, before=before,
                  after=image_state(image))  # fmt: skip
        image.revision += 1
        group.flush(session)
    if status in ("labeled", "reviewed"):
        image.flag = None  # a person looked at it: the import's refusal is answered
    session.commit()
    return image


def _status_in_layer(session: Session, image: Image, status: str, author: str) -> Image:
    """A person labelling an overlap image in their own layer: marking it done (labeled or
    reviewed) finishes their layer as it is (an empty vote when they gave no label); skipping
    leaves the shared image as it is. Commits."""
    if status in ("labeled", "reviewed"):
        overlap.mark_done(session, image.id, author)
    session.commit()
    return image
