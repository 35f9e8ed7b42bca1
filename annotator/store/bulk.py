"""Bulk import of samples: the fast path the format importers use.

Import hashes and probes every image in a thread pool (overlapped with the database work),
drops files that are bad or already stored (by SHA-256), fits the labels to the displayed image
(boxes slightly outside are clipped, the rest refused with a reason) and writes images,
annotations and one history 'create' event per annotation with executemany, one transaction per
batch: a kill leaves whole batches, and a re-run skips what is stored, labels included.

The reads of an export are `annotator.store.export_reads` (plain SQL, no ORM). Depends on the
store only; no format knows the ORM."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from annotator.annotation import Box, Label
from annotator.store.bulk_sql import HISTORY_COLUMNS as HISTORY_COLUMNS  # for the store's writers
from annotator.store.bulk_sql import (
    constants,
    executemany,
    fetch_all,
    insert_labels,
    stored_values,
)
from annotator.store.datasets import current_user
from annotator.store.imagefile import BadImage, ImageInfo
from annotator.store.images import stored_path
from annotator.store.incoming import SHARED_EMPTY as SHARED_EMPTY
from annotator.store.incoming import Incoming as Incoming
from annotator.store.incoming import Problem as Problem
from annotator.store.incoming import gc_paused as gc_paused
from annotator.store.models import Dataset, Image, utcnow
from annotator.store.types import ProgressFn

BATCH = 2000
SWAPPED = frozenset({5, 6, 7, 8})


@dataclass
class BulkReport:
    """What an import did: counts, and the problems by file and record."""

    images: int = 0
    labels: int = 0
    crowd: int = 0
    negatives: int = 0
    clipped: int = 0
    existing: int = 0
    flagged: int = 0
    problems: list[Problem] = field(default_factory=list)


def bulk_author(kind: str = "import", user: str | None = None) -> str:
    """The history author of a bulk change ("tester (import)"): kept apart from the user's own
    labelling actions, so the label app's undo never reverses a whole import or split."""
    return f"{user or current_user()} ({kind})"


def now_param(conn: Connection) -> Any:
    """The current time as the driver takes it for a timestamp column (what SQLAlchemy sends)."""
    processor = DateTime(timezone=True).dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor(utcnow()) if processor else utcnow()


def import_samples(
    session: Session,
    ds: Dataset,
    items: Sequence[Incoming],
    *,
    progress: ProgressFn | None = None,
    workers: int = 2,
    batch: int | None = None,
    report: BulkReport | None = None,
    prepare: Callable[[Sequence[Incoming]], None] | None = None,
) -> BulkReport:
    """Import `items` into `ds` (whose classes must include every label's class name);
    commits after each batch of `batch` (default BATCH) images. `prepare` is given each batch
    before its labels are read (a streamed source attaches them then). Counts go to `report`
    (a new one by default), which is returned."""
    writer = _Writer(session, ds)
    report = report if report is not None else BulkReport()
    batch = batch or BATCH
    done = 0
    if progress:
        progress(0, len(items))
    with gc_paused():
        for chunk, infos in _probed(items, workers, batch):
            if prepare is not None:
                prepare(chunk)
            writer.lookup(chunk, infos)
            rows = [_accept(writer, it, inf, report) for it, inf in zip(chunk, infos, strict=True)]
            writer.write([r for r in rows if r is not None], report)
            done += len(chunk)
            if progress:
                progress(done, len(items))
    return report


def _probed(
    items: Sequence[Incoming], workers: int, batch: int
) -> Iterator[tuple[Sequence[Incoming], list[ImageInfo | BadImage]]]:
    """Batches of items with their probe results; the next batches are probed while the
    caller writes the current one."""
    from annotator.store.probing import probe_batches  # processes: only an import needs them

    starts = range(0, len(items), batch)  # each batch sliced as it is reached
    chunks = (items[i : i + batch] for i in starts)
    paths = ([it.sample.path for it in items[i : i + batch]] for i in starts)
    yield from zip(chunks, probe_batches(paths, len(items), workers), strict=True)


Row = tuple["Incoming", ImageInfo, list[Label], str]


def _accept(
    writer: _Writer, item: Incoming, info: ImageInfo | BadImage, report: BulkReport
) -> Row | None:
    """The item with its fitted labels and stored path, or None when it cannot (or need not)
    enter the store."""
    if not isinstance(info, BadImage) and info.sha256 in writer.stored:
        report.existing += 1
        return None
    path = "" if isinstance(info, BadImage) else writer.stored_path(item.sample.path)
    refused = _refusal(writer, item, info, path)
    if refused:
        report.problems.append(Problem(item.file, item.where, refused))
        return None
    assert isinstance(info, ImageInfo)
    writer.seen[info.sha256] = item.sample.path
    writer.paths.add(path)
    return item, info, fit_labels(item, info.width, info.height, report), path


def _refusal(writer: _Writer, item: Incoming, info: ImageInfo | BadImage, path: str) -> str | None:
    if isinstance(info, BadImage):
        return info.reason if info.path == item.file else f"image {info.path}: {info.reason}"
    first = writer.seen.get(info.sha256)
    if first is not None:
        return f"same image as {first} (identical bytes): skipped"
    if path in writer.paths:
        return f"a different image is already stored as {path} in this dataset"
    return _size_problem(item.declared, info)


def _size_problem(declared: tuple[int, int] | None, info: ImageInfo) -> str | None:
    if declared is None or declared == (info.width, info.height):
        return None
    if info.orientation in SWAPPED and declared == (info.height, info.width):
        return (
            f"size {declared[0]}x{declared[1]} is the stored size, but the image displays as "
            f"{info.width}x{info.height} (EXIF orientation {info.orientation}): "
            "labels must be given for the displayed image"
        )
    return (
        f"size {declared[0]}x{declared[1]} in the label file differs from the image's "
        f"{info.width}x{info.height}"
    )


def fit_labels(item: Incoming, width: int, height: int, report: BulkReport) -> list[Label]:
    """The labels that fit a width x height image: normalised boxes scaled to pixels, boxes
    overshooting by up to max(1 px, 1% of the side) clipped, the rest refused."""
    kept: list[Label] = []
    wheres = item.label_where
    if len(wheres) != len(item.sample.labels):
        wheres = [item.where] * len(item.sample.labels)
    for label, where in zip(item.sample.labels, wheres, strict=True):
        box = label.box
        if box is None:
            kept.append(label)
            continue
        if item.normalized:
            box = Box(box.x * width, box.y * height, box.w * width, box.h * height)
            label.points = _scaled(label.points, width, height)
        if (
            box.w > 0
            and box.h > 0
            and box.x >= 0
            and box.y >= 0
            and (box.x + box.w <= width and box.y + box.h <= height)
        ):
            fitted: Box | None = box  # the common case: inside, nothing to check further
        else:
            fitted, reason = fit_box(box, width, height)
            if fitted is None:
                item.refuse(report.problems, item.label_file or item.file, where, reason)
                continue
            report.clipped += 1
            label.points = _clipped(label.points, width, height)
        label.box = fitted
        kept.append(label)
    return kept


def _scaled(points: list[float] | None, width: int, height: int) -> list[float] | None:
    """Fractions of the image (x, y alternating) as pixels."""
    if points is None:
        return None
    return [v * (width if i % 2 == 0 else height) for i, v in enumerate(points)]


def _clipped(points: list[float] | None, width: int, height: int) -> list[float] | None:
    if points is None:
        return None
    return [min(max(v, 0.0), float(width if i % 2 == 0 else height)) for i, v in enumerate(points)]


def fit_box(box: Box, width: int, height: int) -> tuple[Box | None, str]:
    """The box clipped to the image, or None with the reason it cannot be stored."""
    shown = f"[{box.x:g}, {box.y:g}, {box.w:g}, {box.h:g}]"
    if not box.w > 0 or not box.h > 0:
        return None, f"box {shown} has zero or negative size"
    tol_x, tol_y = max(1.0, 0.01 * width), max(1.0, 0.01 * height)
    if (
        box.x < -tol_x
        or box.y < -tol_y
        or box.x + box.w > width + tol_x
        or (box.y + box.h > height + tol_y)
    ):
        return None, f"box {shown} lies outside the {width}x{height} image"
    fitted = box.clipped(width, height)
    if fitted.w <= 0 or fitted.h <= 0:
        return None, f"box {shown} has no area inside the {width}x{height} image"
    return fitted, ""


class _Writer:
    """Writes whole batches (images, annotations, history) in one transaction each."""

    def __init__(self, session: Session, ds: Dataset) -> None:
        self.session, self.ds = session, ds
        self.class_ids = {c.name: c.id for c in ds.classes}
        self.author, self.history_author = current_user(), bulk_author()
        # of the batch being written: the SHA-256s and paths the dataset already holds, and
        # the first image of each SHA-256 in the batch (nothing here grows with the dataset)
        self.stored: set[str] = set()
        self.paths: set[str] = set()
        self.seen: dict[str, str] = {}
        self.root = ds.root.rstrip("/") + "/" if ds.root else None

    def lookup(self, chunk: Sequence[Incoming], infos: Sequence[ImageInfo | BadImage]) -> None:
        """Read which of the batch's images (by SHA-256) and stored paths the dataset holds,
        in the transaction that will write the batch (so no other writer comes between)."""
        shas, paths = [], []
        for item, info in zip(chunk, infos, strict=True):
            if not isinstance(info, BadImage):
                shas.append(info.sha256)
                paths.append(self.stored_path(item.sample.path))
        conn = self.session.connection()
        self.stored = stored_values(conn, "sha256", self.ds.id, shas)
        self.paths = stored_values(conn, "path", self.ds.id, paths)
        self.seen = {}

    def stored_path(self, path: str) -> str:
        """`images.stored_path`, by string operations for absolute normalised paths."""
        if path != os.path.normpath(path) or not os.path.isabs(path):
            return stored_path(self.ds, Path(path))
        if self.root and path.startswith(self.root):
            return path[len(self.root) :]
        return path

    def write(self, rows: list[Row], report: BulkReport) -> None:
        if not rows:
            self.session.commit()  # ends the lookup's transaction (and its write lock)
            return
        conn = self.session.connection()
        now = now_param(conn)
        image_ids = self._images(conn, rows, now, report)
        anns = _label_rows(image_ids, rows, self.class_ids)
        consts = constants(self.ds.id, self.ds.task, self.author, now)
        insert_labels(conn, consts, anns, self.history_author)
        self.session.commit()
        report.images += len(rows)
        report.labels += len(anns)
        report.crowd += sum(1 for a in anns if a[7])

    def _images(self, conn: Connection, rows: list[Row], now: Any, report: BulkReport) -> list[int]:
        values = []
        for item, info, labels, path in rows:
            flag = item.flag()
            negative = item.labelled and not item.sample.labels and flag is None
            report.negatives += negative
            report.flagged += flag is not None
            status = "labeled" if (labels or negative) and flag is None else "unlabeled"
            size = (info.width, info.height, info.orientation, info.size_bytes)
            split = item.sample.split
            values.append((self.ds.id, path, info.sha256, *size, split, status, flag, 1, now, now))
        executemany(conn, Image.__table__, IMAGE_COLUMNS, values)  # type: ignore[arg-type]
        if conn.dialect.name == "sqlite":
            return _sqlite_new_ids(conn, self.ds.id, len(values))
        ids: dict[str, int] = {}
        shas = [info.sha256 for _, info, _, _ in rows]
        for start in range(0, len(shas), 500):
            part = shas[start : start + 500]
            stmt = select(Image.sha256, Image.id).where(
                Image.dataset_id == self.ds.id, Image.sha256.in_(part)
            )
            ids.update(fetch_all(conn, stmt))
        return [ids[sha] for sha in shas]


def _label_rows(image_ids: list[int], rows: list[Row], ids: dict[str, int]) -> list[Any]:
    """The `bulk_sql.VARYING` tuple of every label of `rows` (a polygon's points as the JSON
    text the driver takes for `annotations.points`)."""
    out: list[Any] = []
    add = out.append
    for image_id, (_, _, labels, _) in zip(image_ids, rows, strict=True):
        for lb in labels:
            box, points = lb.box, lb.points
            shape = None if points is None else orjson.dumps(points).decode()
            if box is None:
                add((image_id, ids[lb.class_name], "label", None, None, None, None,
                     bool(lb.iscrowd), shape))  # fmt: skip
            else:
                add((image_id, ids[lb.class_name], "box", box.x, box.y, box.w, box.h,
                     bool(lb.iscrowd), shape))  # fmt: skip
    return out


def _sqlite_new_ids(conn: Connection, dataset_id: int, n: int) -> list[int]:
    """The ids of the `n` images the last executemany inserted, in order: SQLite gives the
    rows of a write transaction (one writer at a time) consecutive ids above every other
    one; checked by counting them."""
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar() or 0)
    first = last - n + 1
    count = conn.exec_driver_sql(
        "SELECT count(*) FROM images WHERE id BETWEEN ? AND ? AND dataset_id = ?",
        (first, last, dataset_id),
    ).scalar()
    if count != n:  # pragma: no cover - would mean ids are not consecutive
        raise RuntimeError(f"bulk insert: {count} images in ids {first}..{last}, {n} sent")
    return list(range(first, last + 1))


IMAGE_COLUMNS = (
    "dataset_id", "path", "sha256", "width", "height", "orientation", "size_bytes", "split",
    "status", "flag", "revision", "added_at", "updated_at",
)  # fmt: skip
