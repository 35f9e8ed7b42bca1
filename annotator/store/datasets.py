"""Use cases for datasets and their classes: create, look up, list, add/rename/remove classes,
and the statistics `annotator stats` shows. Functions here commit; they take a session."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.store import summary
from annotator.store.models import TASKS, Annotation, Dataset, LabelClass

PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
    "#ffd8b1", "#000075", "#a9a9a9", "#ffe119",
)  # fmt: skip


def current_user() -> str:
    """The author recorded on changes: `$ANNOTATOR_USER`, else the OS user."""
    name = os.environ.get("ANNOTATOR_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


def color_for(position: int) -> str:
    return PALETTE[position % len(PALETTE)]


def validate_class_name(name: str) -> str:
    clean = name.strip()
    if not clean:
        raise InvalidInputError("a class name cannot be empty")
    if any(ch in clean for ch in "\n\r\t"):
        raise InvalidInputError(f"class name {clean!r} contains a control character")
    return clean


def find_dataset(session: Session, name: str) -> Dataset | None:
    """The dataset named `name`, or None when there is none."""
    return session.scalar(select(Dataset).where(Dataset.name == name))


def get_dataset(session: Session, name: str) -> Dataset:
    ds = find_dataset(session, name)
    if ds is None:
        known = sorted(session.scalars(select(Dataset.name)))
        raise summary.missing_dataset(name, known)
    return ds


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def create_dataset(
    session: Session,
    name: str,
    task: str,
    classes: Iterable[str] = (),
    root: str | Path | None = None,
) -> Dataset:
    """A new dataset with its classes in the given order."""
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    name = name.strip()
    if not name:
        raise InvalidInputError("a dataset name cannot be empty")
    if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
        raise ConflictError(f"dataset {name!r} already exists")
    ds = Dataset(name=name, task=task, root=str(Path(root).resolve()) if root else None)
    session.add(ds)
    session.flush()
    _append_classes(session, ds, classes)
    session.commit()
    return ds


def _append_classes(session: Session, ds: Dataset, names: Iterable[str]) -> list[LabelClass]:
    existing = {c.name for c in ds.classes}
    start = max((c.position for c in ds.classes), default=-1) + 1
    added: list[LabelClass] = []
    for name in names:
        clean = validate_class_name(name)
        if clean in existing:
            raise ConflictError(f"class {clean!r} already exists in dataset {ds.name!r}")
        existing.add(clean)
        pos = start + len(added)
        cls = LabelClass(dataset_id=ds.id, name=clean, position=pos, color=color_for(pos))
        ds.classes.append(cls)
        added.append(cls)
    session.flush()
    return added


def add_classes(session: Session, ds: Dataset, names: Iterable[str]) -> list[LabelClass]:
    added = _append_classes(session, ds, names)
    session.commit()
    return added


def get_class(ds: Dataset, name: str) -> LabelClass:
    for cls in ds.classes:
        if cls.name == name:
            return cls
    known = ", ".join(c.name for c in ds.classes) or "none"
    raise NotFoundError(f"dataset {ds.name!r} has no class {name!r} (classes: {known})")


def rename_class(session: Session, ds: Dataset, old: str, new: str) -> None:
    cls = get_class(ds, old)
    new = validate_class_name(new)
    if any(c.name == new for c in ds.classes):
        raise ConflictError(f"class {new!r} already exists in dataset {ds.name!r}")
    cls.name = new
    session.commit()


def remove_class(session: Session, ds: Dataset, name: str) -> None:
    """Remove an unused class; classes with labels are kept (their labels would be lost)."""
    cls = get_class(ds, name)
    used = session.scalar(select(func.count()).where(Annotation.class_id == cls.id))
    if used:
        raise ConflictError(f"class {name!r} has {used} labels; rename it or delete them first")
    ds.classes.remove(cls)
    session.flush()
    for pos, other in enumerate(sorted(ds.classes, key=lambda c: c.position)):
        other.position = pos + 10_000  # move clear of the unique (dataset, position) first
    session.flush()
    for other in ds.classes:
        other.position -= 10_000
    try:
        session.commit()
    except IntegrityError as exc:  # pragma: no cover - guarded above
        session.rollback()
        raise ConflictError(f"cannot remove class {name!r}: {exc.orig}") from exc


def set_class_color(session: Session, ds: Dataset, name: str, color: str) -> None:
    if len(color) != 7 or not color.startswith("#"):
        raise InvalidInputError(f"colour {color!r} is not of the form #rrggbb")
    try:
        int(color[1:], 16)
    except ValueError as exc:
        raise InvalidInputError(f"colour {color!r} is not of the form #rrggbb") from exc
    get_class(ds, name).color = color.lower()
    session.commit()


def stats(session: Session, ds: Dataset) -> dict[str, Any]:
    """Counts per class, split, status, source and review state, the images flagged for review
    with the reason of each, per-annotator figures and overlap (`annotator.store.summary`)."""
    row = summary.DatasetRow(ds.id, ds.name, ds.task, ds.root)
    return summary.stats(summary.session_rows(session), row)
