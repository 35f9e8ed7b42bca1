"""The reads of a bulk export: the samples of a split streamed in chunks of images in id order
(bounded memory at any size) with their human and accepted labels (pending ones on request);
images marked near-duplicates and flagged images stay out.

Two shapes: `export_rows` gives each image as a `Sample` without labels and its labels as the
driver's plain tuples (`ExportRow`: no object per label; the fast path of the COCO and YOLO
writers), `export_samples` the same with `Label` objects. Store-only."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from annotator.annotation import Box, Label, Sample
from annotator.store.bulk_sql import fetch_all
from annotator.store.dupes import marked_duplicates
from annotator.store.models import Annotation, Dataset, Image, ModelRun

EXPORTED_STATUSES = ("labeled", "reviewed")  # images kept as negatives when they hold no label
CHUNK = 2000

# image id, annotation id, class id (`class_index` gives its position), x, y, w, h (None: a
# whole-image label), iscrowd (as the driver gives it: 0/1 or a bool)
ExportRow = tuple[int, int, int, Any, Any, Any, Any, Any]
# an `ExportRow` followed by the label's run id, score and review
FullRow = tuple[int, int, int, Any, Any, Any, Any, Any, Any, Any, str]


def export_rows(
    session: Session,
    ds: Dataset,
    split: str | None,
    *,
    include_pending: bool = False,
    chunk: int = CHUNK,
    full: bool = False,
) -> Iterator[tuple[Sample, list[Any]]]:
    """The images of `split` (None: those without a split) that go into an export, in id
    order, each with its label rows in id order. An image with no label goes out as a negative
    only when its status says a person looked at it (labeled or reviewed); a flagged image (an
    import refused labels of it) stays out until a person labels it. `Sample.path` is the
    absolute file; `Sample.labels` is left empty. `full`: `FullRow`s (for `Label`s)."""
    reviews = reviews_for(include_pending)
    root = ds.root.rstrip("/") if ds.root else None  # resolve_path, by string operations
    none: list[Any] = []
    for images in _image_chunks(session, ds, split, chunk):
        labels = _label_rows(session, [row[0] for row in images], reviews, full)
        for image_id, path, width, height, split_, sha, orientation, status in images:
            found = labels.get(image_id, none)
            if found or status in EXPORTED_STATUSES:
                file = path if root is None or path.startswith("/") else f"{root}/{path}"
                yield Sample(file, width, height, [], split_, image_id, sha, orientation), found


def export_samples(
    session: Session,
    ds: Dataset,
    split: str | None,
    *,
    include_pending: bool = False,
    chunk: int = CHUNK,
) -> Iterator[Sample]:
    """`export_rows` with each image's labels as `Label`s (a model's labels name the model)."""
    names = {c.id: c.name for c in ds.classes}
    models = dict(
        session.execute(select(ModelRun.id, ModelRun.model).where(ModelRun.dataset_id == ds.id))
        .tuples()
        .all()
    )
    for sample, rows in export_rows(
        session, ds, split, include_pending=include_pending, chunk=chunk, full=True
    ):
        sample.labels = [
            Label(names[cid], None if x is None else Box(x, y, w, h), score,
                  "human" if run is None else models.get(run, "model"), review, bool(crowd), aid)
            for _, aid, cid, x, y, w, h, crowd, run, score, review in rows
        ]  # fmt: skip
        yield sample


def class_index(ds: Dataset) -> dict[int, int]:
    """Each class id of `ds` and its position in the class order (COCO ids 1..N, YOLO 0..N-1)."""
    return {c.id: i for i, c in enumerate(sorted(ds.classes, key=lambda c: c.position))}


def reviews_for(include_pending: bool) -> tuple[str, ...]:
    return ("accepted", "pending") if include_pending else ("accepted",)


def count_exportable(session: Session, ds: Dataset) -> int:
    """How many images of `ds` have a split: the most an export can write."""
    stmt = select(func.count()).where(Image.dataset_id == ds.id, Image.split.is_not(None))
    return int(session.scalar(stmt) or 0)


def export_left_out(session: Session, ds: Dataset, include_pending: bool = False) -> dict[str, int]:
    """How many images no export takes, by reason: no split at all (though labelled), neither
    labels nor a status saying a person looked at them, or flagged (labels refused on import)."""
    no_split = sum(1 for _ in export_rows(session, ds, None, include_pending=include_pending))
    labelled = select(Annotation.image_id).where(
        Annotation.dataset_id == ds.id, Annotation.review.in_(reviews_for(include_pending))
    )
    in_split = (Image.dataset_id == ds.id, Image.split.is_not(None))
    unlabeled = select(func.count()).where(
        *in_split,
        Image.status.not_in(EXPORTED_STATUSES),
        Image.id.not_in(labelled),
        Image.flag.is_(None),
    )
    flagged = select(func.count()).where(*in_split, Image.flag.is_not(None))
    dupes = select(func.count()).where(Image.id.in_(marked_duplicates(ds.id)))
    counts = {"unlabeled": unlabeled, "flagged": flagged, "duplicate": dupes}
    return {"no_split": no_split} | {k: int(session.scalar(q) or 0) for k, q in counts.items()}


def _image_chunks(
    session: Session, ds: Dataset, split: str | None, chunk: int
) -> Iterator[list[Any]]:
    last = 0
    where = Image.split.is_(None) if split is None else Image.split == split
    where = and_(where, Image.flag.is_(None))  # a flagged image waits for a person
    t = Image.__table__.c
    cols = (t.id, t.path, t.width, t.height, t.split, t.sha256, t.orientation, t.status)
    while True:
        stmt = (
            select(*cols)
            # `dataset_id + 0`: no index on it, so the planner walks the primary key from
            # `last` and stops at `chunk` rows (with the index, every chunk sorted the whole
            # dataset: quadratic in its size)
            .where(Image.dataset_id + 0 == ds.id, where, Image.id > last)
            .where(Image.id.not_in(marked_duplicates(ds.id)))
            .order_by(Image.id)
            .limit(chunk)
        )
        images = fetch_all(session.connection(), stmt)
        if not images:
            return
        yield images
        last = images[-1][0]


def _label_rows(
    session: Session,
    image_ids: list[int],
    reviews: tuple[str, ...],
    full: bool,
) -> dict[int, list[Any]]:
    """The label rows of `image_ids` by image, each image's in id order (`ExportRow`s, or
    `FullRow`s when `full`)."""
    t = Annotation.__table__.c
    columns = [t.image_id, t.id, t.class_id, t.x, t.y, t.w, t.h, t.iscrowd]
    if full:
        columns += [t.run_id, t.score, t.review]
    stmt = (
        select(*columns)
        .where(t.image_id.in_(image_ids), t.review.in_(reviews))
        .order_by(t.image_id, t.id)
    )
    rows = fetch_all(session.connection(), stmt)
    return {image_id: list(group) for image_id, group in groupby(rows, itemgetter(0))}
