"""The reads of a bulk export, written once as plain SQL text that both engines run through a
`Rows` callable (`annotator.store.summary`): the standard library's sqlite3 on a SQLite file
(`annotator.store.quick`: an export loads no SQLAlchemy) and a session's connection elsewhere
(`annotator.store.bulk_sql.driver_rows`).

The samples of a split are streamed in chunks of images in id order (bounded memory at any
size) with their human and accepted labels (pending ones on request); images marked
near-duplicates and flagged images stay out. Two shapes: `export_rows` gives each image as a
`Sample` without labels and its labels as the driver's plain tuples (`ExportRow`: no object per
label; the fast path of the COCO and YOLO writers), `export_samples` the same with `Label`s.
Also what the manifest cites (history position, snapshot tag, what was left out and why) and
the refusal of train/val leakage. Standard library, `annotator.annotation` and
`annotator.errors` only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from annotator.annotation import SPLITS, Box, Label, Sample
from annotator.errors import InvalidInputError
from annotator.store.summary import Rows, get_dataset

EXPORTED_STATUSES = ("labeled", "reviewed")  # images kept as negatives when they hold no label
CHUNK = 2000
LEAKS_SHOWN = 5

# image id, annotation id, class id (`class_index` gives its position), x, y, w, h (None: a
# whole-image label), iscrowd (as the driver gives it: 0/1 or a bool)
ExportRow = tuple[int, int, int, Any, Any, Any, Any, Any]
# an `ExportRow` followed by the label's run id, score and review
FullRow = tuple[int, int, int, Any, Any, Any, Any, Any, Any, Any, str]

MARKED = "SELECT image_id FROM duplicates WHERE dataset_id = :ds AND NOT kept"
CHUNK_WHERE = (
    # `dataset_id + 0`: no index on it, so the planner walks the primary key from `last` and
    # stops at `chunk` rows (with the index, every chunk sorted the whole dataset: quadratic)
    "WHERE dataset_id + 0 = :ds AND {split} AND flag IS NULL AND id > :last "
    f"AND id NOT IN ({MARKED}) ORDER BY id LIMIT :chunk"
)
IMAGES = "SELECT id, path, width, height, split, sha256, orientation, status FROM images " + (
    CHUNK_WHERE
)
LABEL_COLUMNS = "image_id, id, class_id, x, y, w, h, iscrowd"
# the labels of the images of the same chunk, selected again by the database (no list of ids
# sent: binding thousands of parameters cost more than the query)
LABELS = (
    "SELECT {columns} FROM annotations WHERE image_id IN (SELECT id FROM images "
    f"{CHUNK_WHERE}) AND review IN ({{reviews}}) ORDER BY image_id, id"
)
CLASSES = "SELECT id, name, position FROM classes WHERE dataset_id = :ds"
MODELS = "SELECT id, model FROM model_runs WHERE dataset_id = :ds"
SPLITS_PRESENT = "SELECT DISTINCT split FROM images WHERE dataset_id = :ds"
EXPORTABLE = "SELECT count(*) FROM images WHERE dataset_id = :ds AND split IS NOT NULL"
IN_SPLIT = "FROM images WHERE dataset_id = :ds AND split IS NOT NULL"
UNLABELED = (  # NOT EXISTS: an index probe per candidate image, not a scan of every label
    f"SELECT count(*) {IN_SPLIT} AND status NOT IN ('labeled', 'reviewed') AND flag IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.image_id = images.id "
    "AND a.review IN ({reviews}))"
)
FLAGGED = f"SELECT count(*) {IN_SPLIT} AND flag IS NOT NULL"
DUPLICATES = f"SELECT count(*) FROM images WHERE id IN ({MARKED})"
# the newest event of a dataset, by one index seek per author on (dataset_id, author, id): a
# plain max(id) read every index entry of the dataset (10,000,000 for a million-image import)
POSITION = (
    "WITH RECURSIVE authors(author) AS ("
    "SELECT min(author) FROM history WHERE dataset_id = :ds "
    "UNION ALL SELECT (SELECT min(h.author) FROM history h "
    "WHERE h.dataset_id = :ds AND h.author > a.author) FROM authors a WHERE a.author IS NOT NULL) "
    "SELECT max((SELECT max(h.id) FROM history h WHERE h.dataset_id = :ds "
    "AND h.author = a.author)) FROM authors a WHERE a.author IS NOT NULL"
)
TAG_AT = (
    "SELECT tag FROM snapshots WHERE dataset_id = :ds AND position = :at ORDER BY id DESC LIMIT 1"
)
GROUPS = (
    "SELECT d.group_id, i.path, i.split, d.kept FROM duplicates d "
    "JOIN images i ON i.id = d.image_id WHERE d.dataset_id = :ds ORDER BY d.group_id, i.id"
)


@dataclass(frozen=True, slots=True)
class ExportClass:
    id: int
    name: str
    position: int


@dataclass(frozen=True)
class ExportDataset:
    """A dataset as an export needs it: what it is, where its images live, its classes."""

    id: int
    name: str
    task: str
    root: str | None
    classes: list[ExportClass] = field(default_factory=list)

    def class_names(self) -> list[str]:
        """The class names in their stable order (COCO ids 1..N, YOLO indices 0..N-1)."""
        return [c.name for c in sorted(self.classes, key=lambda c: c.position)]


def dataset(rows: Rows, name: str) -> ExportDataset:
    """Dataset `name` with its classes; NotFoundError (naming the others) when there is none."""
    found = get_dataset(rows, name)
    classes = [ExportClass(int(i), str(n), int(p)) for i, n, p in rows(CLASSES, {"ds": found.id})]
    return ExportDataset(found.id, found.name, found.task, found.root, classes)


def class_index(ds: ExportDataset) -> dict[int, int]:
    """Each class id of `ds` and its position in the class order (COCO ids 1..N, YOLO 0..N-1)."""
    return {c.id: i for i, c in enumerate(sorted(ds.classes, key=lambda c: c.position))}


def reviews_for(include_pending: bool) -> tuple[str, ...]:
    return ("accepted", "pending") if include_pending else ("accepted",)


def export_rows(
    rows: Rows,
    ds: ExportDataset,
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
    where = "split IS NULL" if split is None else "split = :split"
    sql, last = IMAGES.format(split=where), 0
    params: dict[str, Any] = {"ds": ds.id, "chunk": chunk} | ({"split": split} if split else {})
    columns = LABEL_COLUMNS + (", run_id, score, review" if full else "")
    labels_sql = LABELS.format(
        columns=columns, split=where, reviews=", ".join(f"'{r}'" for r in reviews)
    )
    while True:
        images = rows(sql, params | {"last": last})
        if not images:
            return
        found_rows = rows(labels_sql, params | {"last": last})
        labels = {i: list(group) for i, group in groupby(found_rows, itemgetter(0))}
        for image_id, path, width, height, split_, sha, orientation, status in images:
            found = labels.get(image_id, none)
            if found or status in EXPORTED_STATUSES:
                file = path if root is None or path.startswith("/") else f"{root}/{path}"
                yield Sample(file, width, height, [], split_, image_id, sha, orientation), found
        last = images[-1][0]


def export_samples(
    rows: Rows,
    ds: ExportDataset,
    split: str | None,
    *,
    include_pending: bool = False,
    chunk: int = CHUNK,
) -> Iterator[Sample]:
    """`export_rows` with each image's labels as `Label`s (a model's labels name the model)."""
    names = {c.id: c.name for c in ds.classes}
    models = {int(i): str(m) for i, m in rows(MODELS, {"ds": ds.id})}
    for sample, found in export_rows(
        rows, ds, split, include_pending=include_pending, chunk=chunk, full=True
    ):
        sample.labels = [
            Label(names[cid], None if x is None else Box(x, y, w, h), score,
                  "human" if run is None else models.get(run, "model"), review, bool(crowd), aid)
            for _, aid, cid, x, y, w, h, crowd, run, score, review in found
        ]  # fmt: skip
        yield sample


def splits_present(rows: Rows, ds: ExportDataset) -> list[str]:
    """The split names images of `ds` carry, in train, val, test order."""
    found = {split for (split,) in rows(SPLITS_PRESENT, {"ds": ds.id})}
    return [s for s in SPLITS if s in found]


def count_exportable(rows: Rows, ds: ExportDataset) -> int:
    """How many images of `ds` have a split: the most an export can write."""
    return int(rows(EXPORTABLE, {"ds": ds.id})[0][0] or 0)


def left_out(rows: Rows, ds: ExportDataset, include_pending: bool = False) -> dict[str, int]:
    """How many images no export takes, by reason: no split at all (though labelled), neither
    labels nor a status saying a person looked at them, or flagged (labels refused on import),
    or marked near-duplicates."""
    no_split = sum(1 for _ in export_rows(rows, ds, None, include_pending=include_pending))
    reviews = ", ".join(f"'{r}'" for r in reviews_for(include_pending))
    counts = {
        "unlabeled": UNLABELED.format(reviews=reviews),
        "flagged": FLAGGED,
        "duplicate": DUPLICATES,
    }
    return {"no_split": no_split} | {
        key: int(rows(sql, {"ds": ds.id})[0][0] or 0) for key, sql in counts.items()
    }


def position(rows: Rows, ds: ExportDataset) -> int:
    """The id of the newest history event of the dataset (0 when none): the point in time an
    export cites (as `annotator.store.history.position`)."""
    return int(rows(POSITION, {"ds": ds.id})[0][0] or 0)


def tag_at(rows: Rows, ds: ExportDataset, at: int) -> str | None:
    """The newest snapshot taken at history position `at`, if any (what a manifest cites)."""
    found = rows(TAG_AT, {"ds": ds.id, "at": at})
    return str(found[0][0]) if found else None


def check_leakage(rows: Rows, ds: ExportDataset) -> None:
    """Refuse (naming the images) when a near-duplicate group's exported images (those kept,
    with a split) lie in two splits."""
    leaking = []
    for _, members in groupby(rows(GROUPS, {"ds": ds.id}), itemgetter(0)):
        exported = [(path, split) for _, path, split, kept in members if kept and split]
        if len({split for _, split in exported}) > 1:
            leaking.append(exported)
    if not leaking:
        return
    shown = "; ".join(
        ", ".join(f"{path} ({split})" for path, split in group) for group in leaking[:LEAKS_SHOWN]
    )
    more = f" and {len(leaking) - LEAKS_SHOWN} more groups" if len(leaking) > LEAKS_SHOWN else ""
    raise InvalidInputError(
        f"{len(leaking)} near-duplicate groups span two splits (train/val leakage): {shown}"
        f"{more}. Keep one image of each (annotator dupes {ds.name} --keep IMAGE_ID), re-split "
        "(annotator split --reassign), or pass --allow-leakage"
    )
