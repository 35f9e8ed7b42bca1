"""The reads and writes of a merge batch as whole-batch statements: images and labels read as
plain rows, new images, new labels (ids taken up front, so each label's history event is built
without reading it back), labels deleted or turned pending, and image updates, each one
executemany in the caller's transaction (the caller commits). Store-only; `merge` plans, this
module writes."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection

from annotator.store.bulk import IMAGE_COLUMNS, fetch_all
from annotator.store.bulk_sql import (
    _snapshot_sql,  # the importer's snapshot of a row in SQL
    executemany,
)
from annotator.store.history import ANNOTATION_FIELDS, snapshot_values
from annotator.store.models import Annotation, HistoryEvent, Image, utcnow

CHUNK = 500  # ids per IN (...) list
LABEL_FIELDS = (*ANNOTATION_FIELDS, "points")
SRC_IMAGE = ("id", "path", "sha256", "width", "height", "orientation", "size_bytes", "split",
             "status")  # fmt: skip
EVENT_COLUMNS = ("dataset_id", "image_id", "annotation_id", "action", "before", "after",
                 "author", "created_at", "group_id", "group_kind")  # fmt: skip
# the table's own column order: the compiled INSERT takes the rows as they are
NEW_LABEL = tuple(c.name for c in Annotation.__table__.columns)


def chunks(ids: Sequence[Any]) -> list[Sequence[Any]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def read_images(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Source images by id, in id order."""
    t = Image.__table__.c
    cols = [t[name] for name in SRC_IMAGE]
    rows: list[dict[str, Any]] = []
    for part in chunks(ids):
        stmt = select(*cols).where(t.id.in_(part)).order_by(t.id)
        rows.extend(dict(zip(SRC_IMAGE, r, strict=True)) for r in fetch_all(conn, stmt))
    return rows


def read_labels(
    conn: Connection, image_ids: Sequence[int], reviews: tuple[str, ...] | None = None
) -> dict[int, list[dict[str, Any]]]:
    """The labels of `image_ids` (of `reviews` only, when given) by image, in id order, as
    column values (points decoded, iscrowd a bool)."""
    t = Annotation.__table__.c
    out: dict[int, list[dict[str, Any]]] = {}
    for part in chunks(sorted(image_ids)):
        stmt = select(*(t[name] for name in LABEL_FIELDS)).where(t.image_id.in_(part))
        if reviews is not None:
            stmt = stmt.where(t.review.in_(reviews))
        for row in fetch_all(conn, stmt.order_by(t.id)):
            values = dict(zip(LABEL_FIELDS, row, strict=True))
            values["iscrowd"] = bool(values["iscrowd"])
            if isinstance(values["points"], str | bytes):  # SQLite hands JSON over as text
                values["points"] = orjson.loads(values["points"])
            out.setdefault(values["image_id"], []).append(values)
    return out


def images_by_sha(conn: Connection, dataset_id: int, shas: Sequence[str]) -> dict[str, Any]:
    """(id, status, revision, flag) of the dataset's images with those SHA-256s."""
    t = Image.__table__.c
    out: dict[str, Any] = {}
    for part in chunks(shas):
        stmt = select(t.sha256, t.id, t.status, t.revision, t.flag).where(
            t.dataset_id == dataset_id, t.sha256.in_(part)
        )
        out.update((row[0], row[1:]) for row in fetch_all(conn, stmt))
    return out


def insert_images(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """`rows` as IMAGE_COLUMNS tuples."""
    executemany(conn, Image.__table__, IMAGE_COLUMNS, rows)  # type: ignore[arg-type]


def new_label_ids(conn: Connection, count: int) -> list[int]:
    """`count` annotation ids no one else will take. SQLite: above any id ever given (the write
    lock is held since BEGIN IMMEDIATE, and AUTOINCREMENT never goes below an explicit id);
    PostgreSQL: drawn from the sequence."""
    if count == 0:
        return []
    if conn.dialect.name == "sqlite":
        top = conn.exec_driver_sql(
            "SELECT max(x) FROM (SELECT seq AS x FROM sqlite_sequence WHERE name = 'annotations'"
            " UNION ALL SELECT max(id) FROM annotations)"
        ).scalar()
        start = int(top or 0) + 1
        return list(range(start, start + count))
    stmt = text(
        "SELECT nextval(pg_get_serial_sequence('annotations', 'id')) FROM generate_series(1, :n)"
    )
    return sorted(int(v) for v in conn.execute(stmt, {"n": count}).scalars())


def insert_labels(conn: Connection, labels: list[dict[str, Any]], now: Any) -> None:
    """`labels` (LABEL_FIELDS values, ids included) with their timestamps."""
    values = itemgetter(*NEW_LABEL)
    stamps = {"created_at": now, "updated_at": now}
    rows = [values({**lab, **stamps, "points": _json(lab["points"])}) for lab in labels]
    executemany(conn, Annotation.__table__, NEW_LABEL, rows)  # type: ignore[arg-type]


def _json(value: Any) -> str | None:
    """JSON as text: the driver gets no SQLAlchemy processing."""
    return None if value is None else orjson.dumps(value).decode()


def create_events(
    conn: Connection, labels: list[dict[str, Any]], author: str, now: Any, group: str
) -> None:
    """A 'create' event for each of `labels` (just inserted). On SQLite the snapshots are built
    by SQLite from the rows (their ids are consecutive: `new_label_ids`), with the importer's
    JSON and a polygon's points; elsewhere here."""
    if not labels:
        return
    if conn.dialect.name != "sqlite":
        insert_events(conn, [event(lab["dataset_id"], "create", lab, after=lab) for lab in labels],
                      author, now, group)  # fmt: skip
        return
    first, last = labels[0]["id"], labels[-1]["id"]
    assert last - first + 1 == len(labels)
    after = f"json_patch({_snapshot_sql()}, json_object('points', json(points)))"
    conn.exec_driver_sql(
        f"INSERT INTO history ({', '.join(EVENT_COLUMNS)}) SELECT dataset_id, image_id, id, "
        f"'create', NULL, {after}, ?, ?, ?, 'do' FROM annotations WHERE id BETWEEN ? AND ? "
        "ORDER BY id",
        (author, now, group, first, last),
    )


def delete_labels(conn: Connection, ids: Sequence[int]) -> None:
    t = Annotation.__table__.c
    for part in chunks(ids):
        conn.execute(delete(Annotation).where(t.id.in_(part)))


def make_pending(conn: Connection, ids: Sequence[int]) -> None:
    t, now = Annotation.__table__.c, utcnow()
    for part in chunks(ids):
        conn.execute(
            update(Annotation)
            .where(t.id.in_(part))
            .values(review="pending", revision=t.revision + 1, updated_at=now)
        )


def update_images(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Rows of b_id, b_status, b_flag, b_revision: each image's new values."""
    if not rows:
        return
    t, now = Image.__table__.c, utcnow()
    stmt = (
        update(Image)
        .where(t.id == bindparam("b_id"))
        .values(status=bindparam("b_status"), flag=bindparam("b_flag"),
                revision=bindparam("b_revision"), updated_at=now)
    )  # fmt: skip
    conn.execute(stmt, rows)


def event(
    dataset_id: int, action: str, label: dict[str, Any], *,
    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
) -> tuple[Any, ...]:  # fmt: skip
    """A history row without author, time and group (`insert_events` adds them)."""
    return (
        dataset_id, label["image_id"], label["id"], action,
        None if before is None else orjson.dumps(snapshot_values(before)).decode(),
        None if after is None else orjson.dumps(snapshot_values(after)).decode(),
    )  # fmt: skip


def insert_events(
    conn: Connection, events: list[tuple[Any, ...]], author: str, now: Any, group: str
) -> None:
    rows = [(*e, author, now, group, "do") for e in events]
    executemany(conn, HistoryEvent.__table__, EVENT_COLUMNS, rows)  # type: ignore[arg-type]
