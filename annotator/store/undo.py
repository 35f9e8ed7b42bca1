"""Undo and redo, read from the history so they work across images and after a restart. A user
action is a history group; undo writes a new group (kind "undo") that reverses the newest of the
author's groups not yet undone, redo reverses the newest undo not yet redone (and no newer
action). A reversal on a label someone changed since is refused (ConflictError)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from annotator.errors import ConflictError
from annotator.store.history import Group, image_state, snapshot
from annotator.store.models import Annotation, HistoryEvent, Image


def _latest_group(
    session: Session, dataset_id: int, author: str, kinds: tuple[str, ...], reverser: str
) -> str | None:
    later = aliased(HistoryEvent)
    stmt = (
        select(HistoryEvent.group_id)
        .where(
            HistoryEvent.dataset_id == dataset_id,
            HistoryEvent.author == author,
            HistoryEvent.group_kind.in_(kinds),
            ~exists().where(
                later.target_group == HistoryEvent.group_id, later.group_kind == reverser
            ),
        )
        .order_by(HistoryEvent.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def _events(session: Session, group_id: str) -> list[HistoryEvent]:
    stmt = select(HistoryEvent).where(HistoryEvent.group_id == group_id)
    return list(session.scalars(stmt.order_by(HistoryEvent.id)))


def undo(session: Session, dataset_id: int, author: str) -> list[int]:
    """Reverse the author's newest action. Returns the ids of the images it touched."""
    group_id = _latest_group(session, dataset_id, author, ("do", "redo"), "undo")
    if group_id is None:
        return []
    return _reverse(session, group_id, Group(author, kind="undo", target=group_id))


def redo(session: Session, dataset_id: int, author: str) -> list[int]:
    """Re-apply the author's newest undone action, unless they acted since."""
    group_id = _latest_group(session, dataset_id, author, ("undo",), "redo")
    if group_id is None:
        return []
    last_do = session.scalar(
        select(HistoryEvent.id)
        .where(HistoryEvent.dataset_id == dataset_id, HistoryEvent.author == author,
               HistoryEvent.group_kind == "do")
        .order_by(HistoryEvent.id.desc()).limit(1)
    )  # fmt: skip
    undo_at = session.scalar(
        select(HistoryEvent.id).where(HistoryEvent.group_id == group_id).limit(1)
    )
    if last_do is not None and undo_at is not None and last_do > undo_at:
        return []
    return _reverse(session, group_id, Group(author, kind="redo", target=group_id))


def _reverse(session: Session, group_id: str, group: Group) -> list[int]:
    images: dict[int, Image] = {}
    for event in reversed(_events(session, group_id)):
        image = session.get(Image, event.image_id) if event.image_id is not None else None
        if image is None:
            raise ConflictError("cannot undo: the image of that change no longer exists")
        images[image.id] = image
        _apply_inverse(session, event, image, group)
    for image in images.values():
        image.revision += 1
    group.flush(session)
    session.commit()
    return list(images)


def _apply_inverse(session: Session, event: HistoryEvent, image: Image, group: Group) -> None:
    if event.action == "status":
        _restore_image(image, event, group)
    elif event.action == "create":
        ann = _current(session, event, event.after)
        group.add(image.dataset_id, "delete", image_id=image.id, annotation_id=ann.id,
                  before=snapshot(ann))  # fmt: skip
        session.delete(ann)
    elif event.action == "delete":
        assert event.before is not None
        _recreate(session, event.before, group)
    else:  # edit, review
        ann = _current(session, event, event.after)
        before = snapshot(ann)
        _assign(ann, event.before or {})
        ann.revision = before["revision"] + 1
        group.add(image.dataset_id, event.action, image_id=image.id, annotation_id=ann.id,
                  before=before, after=snapshot(ann))  # fmt: skip
    session.flush()


def _current(session: Session, event: HistoryEvent, expected: dict[str, Any] | None) -> Annotation:
    ann = session.get(Annotation, event.annotation_id)
    if ann is None:
        raise ConflictError(f"cannot undo: label {event.annotation_id} was deleted since")
    if expected is not None and ann.revision != expected.get("revision"):
        raise ConflictError(f"cannot undo: label {ann.id} was changed since (by {ann.author})")
    return ann


def _recreate(session: Session, state: dict[str, Any], group: Group) -> None:
    if session.get(Annotation, state["id"]) is not None:
        raise ConflictError(f"cannot undo: label {state['id']} exists again")
    ann = Annotation()
    _assign(ann, state)
    ann.id = state["id"]
    ann.revision = int(state["revision"]) + 1
    session.add(ann)
    session.flush()
    group.add(ann.dataset_id, "create", image_id=ann.image_id, annotation_id=ann.id,
              after=snapshot(ann))  # fmt: skip


def _assign(ann: Annotation, state: dict[str, Any]) -> None:
    for key, value in state.items():
        if key not in ("id", "revision"):
            setattr(ann, key, value)


def _restore_image(image: Image, event: HistoryEvent, group: Group) -> None:
    before = image_state(image)
    for key, value in (event.before or {}).items():
        setattr(image, key, value)
    group.add(image.dataset_id, "status", image_id=image.id, before=before,
              after=image_state(image))  # fmt: skip
