"""Use cases: remove images from a dataset (`annotator rm`) and rename a dataset
(`annotator mv`). Removing writes a history 'delete' event for every label of the removed
images (one group, one transaction), so diffs and snapshots taken before still describe them
and `annotator restore` brings them back. A rename keeps the history, which is kept by dataset
id. Store-only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.store.history import Group
from annotator.store.labels import remove
from annotator.store.models import STATUSES, Annotation, Dataset, Image


def images_to_remove(
    session: Session, ds: Dataset, paths: list[str], where: str | None
) -> list[Image]:
    """The images named by stored path (or id), or those matching `status=VALUE`."""
    if where is not None:
        key, sep, value = where.partition("=")
        if key.strip() != "status" or not sep or value.strip() not in STATUSES:
            raise InvalidInputError(
                f"--where {where!r}: expected status=VALUE with VALUE one of {', '.join(STATUSES)}"
            )
        stmt = select(Image).where(Image.dataset_id == ds.id, Image.status == value.strip())
        return list(session.scalars(stmt.order_by(Image.id)))
    found: list[Image] = []
    for text in paths:
        cond = Image.id == int(text) if text.isdigit() else Image.path == text
        image = session.scalar(select(Image).where(Image.dataset_id == ds.id, cond))
        if image is None:
            raise NotFoundError(f"dataset {ds.name!r} has no image {text!r} (a stored path or id)")
        found.append(image)
    return found


def remove_images(session: Session, ds: Dataset, images: list[Image], author: str) -> int:
    """Delete `images` and their labels, the labels as history events; commits once."""
    group = Group(author)
    for image in images:
        stmt = select(Annotation).where(Annotation.image_id == image.id).order_by(Annotation.id)
        for ann in session.scalars(stmt):
            remove(session, group, ann)
    session.flush()
    for image in images:
        session.delete(image)
    group.flush(session)
    session.commit()
    return len(images)


def rename_dataset(session: Session, ds: Dataset, new: str) -> None:
    new = new.strip()
    if not new:
        raise InvalidInputError("a dataset name cannot be empty")
    if session.scalar(select(Dataset.id).where(Dataset.name == new)) is not None:
        raise ConflictError(f"dataset {new!r} already exists")
    ds.name = new
    session.commit()
