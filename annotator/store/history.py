"""The append-only history: writing change events, reading the history position, and the
snapshots of annotations and images that events carry as `before` and `after`. Undo and redo
(`annotator.store.undo`) and incremental sync read what is written here."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from annotator.store.export_reads import POSITION
from annotator.store.models import Annotation, HistoryEvent, Image

ANNOTATION_FIELDS = (
    "id", "dataset_id", "task", "image_id", "class_id", "kind", "x", "y", "w", "h", "iscrowd",
    "source", "run_id", "score", "review", "note", "author", "revision", "layer",
)  # fmt: skip


def snapshot(ann: Annotation) -> dict[str, Any]:
    """The annotation's state as plain JSON values (enough to recreate it)."""
    return snapshot_values({name: getattr(ann, name) for name in (*ANNOTATION_FIELDS, "points")})


def snapshot_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """`snapshot` of an annotation given as column values: the ANNOTATION_FIELDS, and a
    polygon's `points` only when it has them (events of labels without keep their old shape)."""
    out = {name: values.get(name) for name in ANNOTATION_FIELDS}
    if values.get("points") is not None:
        out["points"] = values["points"]
    return out


def image_state(image: Image) -> dict[str, Any]:
    return {"status": image.status, "split": image.split}


@dataclass
class Group:
    """The events of one user action (undone and redone together)."""

    author: str
    kind: str = "do"
    target: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        dataset_id: int,
        action: str,
        *,
        image_id: int | None = None,
        annotation_id: int | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        self.rows.append(
            {
                "dataset_id": dataset_id,
                "image_id": image_id,
                "annotation_id": annotation_id,
                "action": action,
                "before": before,
                "after": after,
                "author": self.author,
                "group_id": self.id,
                "group_kind": self.kind,
                "target_group": self.target,
            }
        )

    def flush(self, session: Session) -> None:
        """Write the collected events (in the caller's transaction)."""
        if self.rows:
            session.execute(insert(HistoryEvent), self.rows)
            self.rows = []


def position(session: Session, dataset_id: int) -> int:
    """The id of the newest history event of the dataset (0 when none): a point in time that
    exports and mirrors cite."""
    return int(session.scalar(text(POSITION), {"ds": dataset_id}) or 0)


def events_of_annotation(session: Session, annotation_id: int) -> list[HistoryEvent]:
    """The events that touched annotation `annotation_id`, oldest first (through its image's
    index while the annotation exists: no scan of the whole history)."""
    stmt = select(HistoryEvent).where(HistoryEvent.annotation_id == annotation_id)
    label = session.get(Annotation, annotation_id)
    if label is not None:
        stmt = stmt.where(HistoryEvent.image_id == label.image_id)
    return list(session.scalars(stmt.order_by(HistoryEvent.id)))
