"""The figures `annotator stats` and `annotator datasets` show (counts per class, split, status,
source and review state, the flagged images, per-annotator figures, overlap progress), written
once as plain SQL text that both engines run: through the standard library's sqlite3 on a SQLite
file (`annotator.store.quick`, no SQLAlchemy loaded) and through a SQLAlchemy session elsewhere
(`session_rows`). A query reaches the database only through a `Rows` callable, so the same text
gives the same answer on either path. Results are ordered here, not by the engine, so SQLite and
PostgreSQL print the same. Imports only the standard library and `annotator.errors`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from annotator.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# run(sql, params) -> the rows: one SQL text with `:name` parameters, for any engine
Rows = Callable[[str, Mapping[str, Any]], Sequence[Sequence[Any]]]

LABEL_ACTIONS = ("create", "edit", "delete", "review", "status")
MIN_SPAN_H = 1 / 60
NOT_VOTE = "review != 'vote'"  # overlap votes are not labels (`annotator.store.overlap`)

DATASETS = "SELECT id, name, task, root FROM datasets"
CLASSES = "SELECT name FROM classes WHERE dataset_id = :ds ORDER BY position"
CLASS_COUNTS = "SELECT dataset_id, count(*) FROM classes GROUP BY dataset_id"
IMAGE_COUNTS = "SELECT dataset_id, count(*) FROM images {where} GROUP BY dataset_id"
LABEL_COUNTS = (
    f"SELECT dataset_id, count(*) FROM annotations WHERE {NOT_VOTE} {{also}} GROUP BY dataset_id"
)
PER_CLASS = (
    "SELECT c.name, count(a.id) FROM classes c LEFT JOIN annotations a "
    f"ON a.class_id = c.id AND a.{NOT_VOTE} WHERE c.dataset_id = :ds GROUP BY c.name"
)
PER_SPLIT = "SELECT split, count(*) FROM images WHERE dataset_id = :ds GROUP BY split"
PER_STATUS = "SELECT status, count(*) FROM images WHERE dataset_id = :ds GROUP BY status"
PER_SOURCE = (
    "SELECT coalesce(r.model, a.source), count(*) FROM annotations a "
    "LEFT JOIN model_runs r ON r.id = a.run_id WHERE a.dataset_id = :ds "
    "GROUP BY coalesce(r.model, a.source)"
)
PER_REVIEW = "SELECT review, count(*) FROM annotations WHERE dataset_id = :ds GROUP BY review"
FLAGGED = "SELECT path, flag FROM images WHERE dataset_id = :ds AND flag IS NOT NULL"
PEOPLE = (
    "SELECT author, count(*), count(DISTINCT image_id), min(created_at), max(created_at) "
    "FROM history WHERE dataset_id = :ds AND group_kind = 'do' "
    f"AND action IN ({', '.join(repr(a) for a in LABEL_ACTIONS)}) "
    "AND author NOT LIKE :model AND author NOT LIKE :bulk GROUP BY author"
)  # model runs ("model:...") and bulk work ("ann (import)") are not a person's pace
TIMES = "SELECT author, seconds FROM image_times WHERE dataset_id = :ds"
OVERLAP_MARKED = "SELECT image_id, annotators FROM overlap_images WHERE dataset_id = :ds"
OVERLAP_DONE = (
    "SELECT d.image_id, count(*) FROM overlap_done d "
    "JOIN overlap_images o ON o.image_id = d.image_id WHERE o.dataset_id = :ds "
    "GROUP BY d.image_id"
)


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """A dataset as the figures name it."""

    id: int
    name: str
    task: str
    root: str | None


@dataclass(frozen=True, slots=True)
class AnnotatorFigures:
    """One person's work on a dataset."""

    annotator: str
    changes: int  # label changes (each label created, edited, deleted, reviewed; status set)
    images: int  # distinct images they changed
    labels_per_hour: float
    median_seconds: float | None  # per image, from the labelling app's records
    timed_images: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def session_rows(session: Session) -> Rows:
    """`Rows` over a SQLAlchemy session (any engine), in the session's transaction."""
    from sqlalchemy import text

    def run(sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return session.execute(text(sql), dict(params)).all()

    return run


def missing_dataset(name: str, known: list[str]) -> NotFoundError:
    """The error for a dataset name that is not in the database (`known`: the names there)."""
    return NotFoundError(f"no dataset named {name!r} (datasets: {', '.join(known) or 'none'})")


def datasets(rows: Rows) -> list[DatasetRow]:
    """Every dataset, by name."""
    return sorted((DatasetRow(int(i), n, t, r) for i, n, t, r in rows(DATASETS, {})),
                  key=lambda d: d.name)  # fmt: skip


def get_dataset(rows: Rows, name: str) -> DatasetRow:
    """The dataset named `name`; NotFoundError (naming the others) when there is none."""
    found = datasets(rows)
    for ds in found:
        if ds.name == name:
            return ds
    raise missing_dataset(name, [d.name for d in found])


def listing(rows: Rows) -> list[dict[str, Any]]:
    """What `annotator datasets` shows of each dataset, by name: task and counts of images,
    labels and classes (three queries for the whole database)."""
    images = _by_dataset(rows, IMAGE_COUNTS.format(where=""), {})
    labels = _by_dataset(rows, LABEL_COUNTS.format(also=""), {})
    classes = _by_dataset(rows, CLASS_COUNTS, {})
    return [{"name": d.name, "task": d.task, "images": images.get(d.id, 0),
             "labels": labels.get(d.id, 0), "classes": classes.get(d.id, 0)}
            for d in datasets(rows)]  # fmt: skip


def stats(rows: Rows, ds: DatasetRow) -> dict[str, Any]:
    """Counts per class, split, status, source and review state (one query each), the images
    flagged for review with the reason of each, per-annotator figures and overlap progress."""
    p = {"ds": ds.id}
    per_class = dict(_counts(rows, PER_CLASS, p))
    flags = flagged(rows, ds.id)
    return {
        "dataset": ds.name,
        "task": ds.task,
        "root": ds.root,
        "images": _by_dataset(rows, IMAGE_COUNTS.format(where="WHERE dataset_id = :ds"), p)
        .get(ds.id, 0),
        "annotations": _by_dataset(rows, LABEL_COUNTS.format(also="AND dataset_id = :ds"), p)
        .get(ds.id, 0),
        "classes": {name: per_class.get(name, 0) for (name,) in rows(CLASSES, p)},
        "split": _counts(rows, PER_SPLIT, p),
        "status": _counts(rows, PER_STATUS, p),
        "source": _counts(rows, PER_SOURCE, p),
        "review": _counts(rows, PER_REVIEW, p),
        "flagged": len(flags),
        "flags": flags,
        "annotators": [f.as_dict() for f in annotator_figures(rows, ds.id)],
        "overlap": overlap_counts(rows, ds.id),
    }  # fmt: skip


def flagged(rows: Rows, dataset_id: int) -> dict[str, str]:
    """{image path: why a person must look at it} of the flagged images, by path."""
    found = sorted((str(path), str(flag)) for path, flag in rows(FLAGGED, {"ds": dataset_id}))
    return dict(found)


def annotator_figures(rows: Rows, dataset_id: int) -> list[AnnotatorFigures]:
    """Every person's figures, by name: label changes and images changed, labels per hour (per
    hour recorded by the labelling app, else per hour from their first to last change, at least
    a minute) and the median seconds per image recorded."""
    params = {"ds": dataset_id, "model": "model:%", "bulk": "%)"}
    times: dict[str, list[float]] = {}
    for author, seconds in rows(TIMES, {"ds": dataset_id}):
        times.setdefault(author, []).append(float(seconds))
    out = []
    for author, changes, images, first, last in rows(PEOPLE, params):
        spent = times.get(author, [])
        hours = sum(spent) / 3600 if sum(spent) > 0 else _span_h(first, last)
        out.append(AnnotatorFigures(
            author, int(changes), int(images), round(int(changes) / hours, 1),
            _median(spent), len(spent),
        ))  # fmt: skip
    return sorted(out, key=lambda f: f.annotator)


def overlap_counts(rows: Rows, dataset_id: int) -> dict[str, int]:
    """Overlap images of the dataset: marked, finished by every annotator, in progress."""
    p = {"ds": dataset_id}
    done = {int(i): int(n) for i, n in rows(OVERLAP_DONE, p)}
    marked = [(int(i), int(k)) for i, k in rows(OVERLAP_MARKED, p)]
    complete = sum(1 for i, k in marked if done.get(i, 0) >= k)
    started = sum(1 for i, k in marked if 0 < done.get(i, 0) < k)
    return {"marked": len(marked), "complete": complete, "started": started}


def _counts(rows: Rows, sql: str, params: Mapping[str, Any]) -> dict[str, int]:
    """{key: count} of a two-column GROUP BY, NULL as "none" first, then by key."""
    found = sorted(rows(sql, params), key=lambda r: (r[0] is not None, r[0] or ""))
    return {str(k) if k is not None else "none": int(v) for k, v in found}


def _by_dataset(rows: Rows, sql: str, params: Mapping[str, Any]) -> dict[int, int]:
    return {int(i): int(n) for i, n in rows(sql, params)}


def _median(values: list[float]) -> float | None:
    """The median to a tenth (None: no values); `statistics` is loaded only when needed."""
    if not values:
        return None
    import statistics

    return round(statistics.median(values), 1)


def _span_h(first: datetime | str, last: datetime | str) -> float:
    return max((_when(last) - _when(first)).total_seconds() / 3600, MIN_SPAN_H)


def _when(value: datetime | str) -> datetime:
    """A timestamp as read: a datetime (PostgreSQL) or its ISO text (SQLite)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
