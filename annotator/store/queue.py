"""The labelling queue: which images of a dataset are to be shown, in which order, and where one
stands in it. A queue is a filter (unlabeled, needs review = images with pending prelabels,
flagged = images an import refused labels of, one class, all) and an order (file path, time
added, model uncertainty with the least confident first and images without a score last). Every
move is a keyset query on an index (the next key after the current one, LIMIT 1): showing an
image never scans the dataset. Two filters bring their own order, whatever order is chosen:
suspect labels (images with an open suspect flag, worst label quality first) and duplicates
(images in a near-duplicate group, a group's images one after another); they walk a short list
of flagged or grouped images by a computed key. The statement of a move is built once per kind
of queue, its values bound at execution (a move costs the client little more than its round
trip). Also reads what the labelling screen shows of one image. Read-only; depends only on the
store's models."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import Session, aliased, object_session

from annotator.annotation import Box, Label, Sample, Split
from annotator.errors import InvalidInputError, NotFoundError
from annotator.store.datasets import get_dataset
from annotator.store.images import resolve_path
from annotator.store.leases import LABEL_SCOPE, held_by_others, note_locked
from annotator.store.models import (
    VOTE,
    Annotation,
    Dataset,
    DuplicateMember,
    Image,
    LabelClass,
    ModelRun,
    SuspectFlag,
    utcnow,
)
from annotator.store.overlap import visible
from annotator.store.suspects import describe

FILTERS = ("unlabeled", "review", "flagged", "class", "all", "suspects", "duplicates")
ORDERS = ("path", "added", "uncertainty")
FILTER_NAMES = {"unlabeled": "unlabeled", "review": "needs review",
                "flagged": "needs review (flagged)", "class": "class",
                "all": "all images", "suspects": "suspect labels",
                "duplicates": "duplicates"}  # fmt: skip
ORDER_NAMES = {"path": "by file", "added": "by time added", "uncertainty": "least confident"}
OWN_ORDERS = {"suspects": "worst first", "duplicates": "by group"}  # filters with their order


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Which images, in which order. `class_id` is required by (and only used by) "class"."""

    filter: str = "unlabeled"
    order: str = "path"
    class_id: int | None = None
    holder: str | None = None  # set: skip images another holder has leased for labelling

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise InvalidInputError(f"unknown queue {self.filter!r}: choose {', '.join(FILTERS)}")
        if self.order not in ORDERS:
            raise InvalidInputError(f"unknown order {self.order!r}: choose {', '.join(ORDERS)}")
        if (self.filter == "class") != (self.class_id is not None):
            raise InvalidInputError("a class queue needs a class (and only a class queue has one)")

    def describe(self, class_name: str | None = None) -> str:
        what = f"class {class_name}" if self.filter == "class" else FILTER_NAMES[self.filter]
        return f"{what} · {OWN_ORDERS.get(self.filter) or ORDER_NAMES[self.order]}"


@dataclass(frozen=True, slots=True)
class ClassInfo:
    id: int
    name: str
    position: int
    color: str


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What the labelling screen keeps of a dataset: plain values, safe across threads."""

    id: int
    name: str
    task: str
    root: str | None
    classes: tuple[ClassInfo, ...]

    def class_by_name(self, name: str) -> ClassInfo | None:
        return next((c for c in self.classes if c.name == name), None)


@dataclass(frozen=True, slots=True)
class ImageView:
    """One image as the labelling screen shows it: the sample (labels with the store's ids,
    boxes in displayed pixels), where its file is, its status and the revision edits cite."""

    sample: Sample
    file: Path
    status: str
    revision: int
    uncertainty: float | None
    labels: tuple[Label, ...] = field(default=())
    flag: str | None = None  # why a person must look at it (an import refused labels)
    suspect: str | None = None  # an open suspect flag: the class given and the one suggested
    duplicate: str | None = None  # its near-duplicate group, when it is in one

    @property
    def id(self) -> int:
        assert self.sample.id is not None
        return self.sample.id


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of the order: rows matching `where`, sorted by `keys` (all ascending or all
    descending), so that a keyset comparison on `keys` walks an index."""

    where: ColumnElement[bool]
    keys: tuple[Any, ...]
    descending: bool = False
    computed: bool = False  # keys are expressions, not the image's own columns


def _open_flag(revision_now: bool) -> ColumnElement[bool]:
    """The image's suspect flags still open; `revision_now`: raised on the image as it is (an
    edit since then settles the flag, even before `suspects` records that it did)."""
    cond = and_(SuspectFlag.image_id == Image.id, SuspectFlag.cleared_at.is_(None))
    return and_(cond, SuspectFlag.image_revision == Image.revision) if revision_now else cond


def _worst_score() -> Any:
    """The lowest label quality among the image's open flags (the queue's key)."""
    stmt = select(func.min(SuspectFlag.score)).where(_open_flag(revision_now=False))
    return stmt.correlate(Image).scalar_subquery()


def _group_of() -> Any:
    stmt = select(DuplicateMember.group_id).where(DuplicateMember.image_id == Image.id)
    return stmt.correlate(Image).scalar_subquery()


def _segments_of(spec: QueueSpec) -> tuple[_Segment, ...]:
    """The order's runs; suspect labels and duplicates bring their own order."""
    if spec.filter == "suspects":
        return (_Segment(true(), (_worst_score(), Image.id), computed=True),)
    if spec.filter == "duplicates":
        return (_Segment(true(), (_group_of(), Image.id), computed=True),)
    return _segments(spec.order)


def _segments(order: str) -> tuple[_Segment, ...]:
    if order == "path":
        return (_Segment(true(), (Image.path,)),)
    if order == "added":  # ids grow as images are added: the insertion order
        return (_Segment(true(), (Image.id,)),)
    return (
        _Segment(Image.uncertainty.is_not(None), (Image.uncertainty, Image.id), descending=True),
        _Segment(Image.uncertainty.is_(None), (Image.id,)),
    )


@dataclass(frozen=True, slots=True)
class _Values:
    """What a queue's condition compares with: plain values, or bound parameters (a statement
    built once and executed with the values)."""

    dataset_id: Any
    holder: Any
    now: Any
    class_id: Any


_BOUND = _Values(bindparam("dataset_id", type_=Integer), bindparam("holder", type_=String),
                 bindparam("now", type_=DateTime(timezone=True)),
                 bindparam("class_id", type_=Integer))  # fmt: skip


def _filter(dataset_id: int, spec: QueueSpec, walking: bool = False) -> ColumnElement[bool]:
    """The queue's rows. `walking`: for a keyset walk in time-added order, keep SQLite on the
    primary key (rowid range) rather than on an index by dataset that would sort every row."""
    return _filter_of(spec, _Values(dataset_id, spec.holder, utcnow(), spec.class_id), walking)


def _filter_of(spec: QueueSpec, v: _Values, walking: bool) -> ColumnElement[bool]:
    dataset_id = v.dataset_id
    base = Image.dataset_id == dataset_id
    if walking and spec.order == "added" and spec.filter not in ("unlabeled", *OWN_ORDERS):
        base = (Image.dataset_id + 0) == dataset_id  # not indexable: walk the rowid instead
    if spec.holder is not None:
        base = and_(base, ~held_by_others(LABEL_SCOPE, v.holder, v.now))
    if spec.filter == "unlabeled":
        return and_(base, Image.status == "unlabeled")
    if spec.filter == "review":
        pending = exists().where(Annotation.image_id == Image.id, Annotation.review == "pending")
        return and_(base, pending)
    if spec.filter == "flagged":
        return and_(base, Image.flag.is_not(None))
    if spec.filter in OWN_ORDERS:
        return and_(base, _listed(dataset_id, spec.filter))
    if spec.filter == "class":
        has = exists().where(
            Annotation.image_id == Image.id,
            Annotation.class_id == v.class_id,
            Annotation.review.not_in(("rejected", VOTE)),
        )
        return and_(base, has)
    return base


def _listed(dataset_id: Any, filt: str) -> ColumnElement[bool]:
    """Images with an open suspect flag, or in a duplicate group: looked up from the short
    list of flags or group members, never by a pass over the dataset's images."""
    if filt == "duplicates":
        members = select(DuplicateMember.image_id).where(DuplicateMember.dataset_id == dataset_id)
        return Image.id.in_(members)
    flagged = select(SuspectFlag.image_id).where(SuspectFlag.dataset_id == dataset_id,
                                                 SuspectFlag.cleared_at.is_(None))  # fmt: skip
    return and_(Image.id.in_(flagged), exists().where(_open_flag(revision_now=True)))


def _key(seg: _Segment, row: Image) -> tuple[Any, ...]:
    if seg.computed:
        session = object_session(row)
        assert session is not None
        return tuple(session.execute(select(*seg.keys).where(Image.id == row.id)).one())
    return tuple(getattr(row, col.key) for col in seg.keys)


def _cmp(seg: _Segment, row: Image, after: bool) -> ColumnElement[bool]:
    """Rows of `seg` strictly after (or before) `row` in the queue's direction."""
    left = seg.keys[0] if len(seg.keys) == 1 else tuple_(*seg.keys)
    right = _key(seg, row)
    value = right[0] if len(right) == 1 else tuple_(*right)
    forward = after != seg.descending
    return left > value if forward else left < value


def _ordered(seg: _Segment, forward: bool) -> list[Any]:
    asc = forward != seg.descending
    return [col.asc() if asc else col.desc() for col in seg.keys]


def _first_in(session: Session, spec: QueueSpec, dataset_id: int, seg: int, forward: bool,
              after: tuple[Any, ...] | None = None) -> int | None:  # fmt: skip
    """The first row of the queue's segment `seg` (past the keys `after`, when given). A
    person's queue (a holder) on PostgreSQL locks the row, passing over rows other people are
    claiming right now (FOR UPDATE SKIP LOCKED), so two people moving at once are led to
    different images."""
    lock = spec.holder is not None and session.get_bind().dialect.name == "postgresql"
    key = replace(spec, holder="" if spec.holder is not None else None,
                  class_id=0 if spec.class_id is not None else None)  # fmt: skip
    stmt = _walk(key, seg, forward, None if after is None else len(after), lock)
    params = {"dataset_id": dataset_id, "holder": spec.holder, "now": utcnow(),
              "class_id": spec.class_id}  # fmt: skip
    params.update((f"key{i}", value) for i, value in enumerate(after or ()))
    found = session.scalar(stmt, params)
    if lock and found is not None:
        note_locked(session, found)
    return found


@lru_cache(maxsize=256)
def _walk(spec: QueueSpec, seg: int, forward: bool, keys: int | None, lock: bool) -> Select[Any]:
    """The statement of one move (built once per kind of queue; values bound at execution):
    the first row of segment `seg`, past bound keys `key0`.. when `keys` is their number."""
    segment = _segments_of(spec)[seg]
    cond = and_(_filter_of(spec, _BOUND, walking=True), segment.where)
    if keys is not None:
        cols = segment.keys
        bound = [bindparam(f"key{i}", type_=col.type) for i, col in enumerate(cols)]
        left, right = (cols[0], bound[0]) if keys == 1 else (tuple_(*cols), tuple_(*bound))
        cond = and_(cond, left > right if forward != segment.descending else left < right)
    stmt = select(Image.id).where(cond).order_by(*_ordered(segment, forward)).limit(1)
    return stmt.with_for_update(skip_locked=True, of=Image) if lock else stmt


def _segment_of(segs: tuple[_Segment, ...], row: Image) -> int:
    if len(segs) == 1:
        return 0
    return 0 if row.uncertainty is not None else 1


def _image(session: Session, image_id: int) -> Image:
    row = session.get(Image, image_id)
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist (deleted?)")
    return row


def first(session: Session, dataset_id: int, spec: QueueSpec) -> int | None:
    """The id of the queue's first image (None when the queue is empty)."""
    for seg in range(len(_segments_of(spec))):
        found = _first_in(session, spec, dataset_id, seg, forward=True)
        if found is not None:
            return found
    return None


def last(session: Session, dataset_id: int, spec: QueueSpec) -> int | None:
    for seg in reversed(range(len(_segments_of(spec)))):
        found = _first_in(session, spec, dataset_id, seg, forward=False)
        if found is not None:
            return found
    return None


def step(session: Session, spec: QueueSpec, image_id: int, forward: bool = True) -> int | None:
    """The id of the queue's image after (or before) `image_id`, which need not be in the
    queue itself (an image just labelled leaves the unlabeled queue). None at the end."""
    row = _image(session, image_id)
    segs = _segments_of(spec)
    here = _segment_of(segs, row)
    keys = _key(segs[here], row)
    if segs[here].computed and None in keys:  # its flag or group is gone
        return first(session, row.dataset_id, spec) if forward else None
    found = _first_in(session, spec, row.dataset_id, here, forward, keys)
    if found is not None:
        return found
    others = range(here + 1, len(segs)) if forward else reversed(range(here))
    for seg in others:
        found = _first_in(session, spec, row.dataset_id, seg, forward)
        if found is not None:
            return found
    return None


def next_unlabeled(session: Session, spec: QueueSpec, image_id: int) -> int | None:
    """The next unlabeled image in the queue's order, whatever its filter; wraps around."""
    unlabeled = replace(spec, filter="unlabeled", class_id=None)
    found = step(session, unlabeled, image_id)
    if found is None:
        found = first(session, _image(session, image_id).dataset_id, unlabeled)
    return found if found != image_id else None


def _count(session: Session, cond: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Image).where(cond)) or 0)


def total(session: Session, dataset_id: int, spec: QueueSpec) -> int:
    """How many images the queue holds."""
    return _count(session, _filter(dataset_id, spec))


def position(session: Session, spec: QueueSpec, image_id: int) -> int:
    """1-based rank the image has (or would have) in the queue: 1 + the images before it."""
    row = _image(session, image_id)
    cond = _filter(row.dataset_id, spec)
    segs = _segments_of(spec)
    here = _segment_of(segs, row)
    before = sum(_count(session, and_(cond, seg.where)) for seg in segs[:here])
    seg = segs[here]
    return before + _count(session, and_(cond, seg.where, _cmp(seg, row, after=False))) + 1


def at_position(session: Session, dataset_id: int, spec: QueueSpec, rank: int) -> int | None:
    """The id of the image at 1-based `rank` (None when out of range)."""
    if rank < 1:
        return None
    walk, cond = _filter(dataset_id, spec, walking=True), _filter(dataset_id, spec)
    for seg in _segments_of(spec):
        stmt = select(Image.id).where(walk, seg.where).order_by(*_ordered(seg, True))
        found = session.scalar(stmt.offset(rank - 1).limit(1))
        if found is not None:
            return found
        rank -= _count(session, and_(cond, seg.where))
        if rank < 1:
            return None
    return None


def find(session: Session, dataset_id: int, text: str, after_id: int | None = None) -> int | None:
    """The first image (by path, after `after_id`'s path, wrapping around) whose path contains
    `text`, case-insensitively; an exact path is found through the index. Searches the whole
    dataset, not only the queue."""
    needle = text.strip()
    if not needle:
        return None
    exact = session.scalar(
        select(Image.id).where(Image.dataset_id == dataset_id, Image.path == needle)
    )
    if exact is not None:
        return exact
    cond = and_(Image.dataset_id == dataset_id, func.lower(Image.path).contains(needle.lower()))
    by_path = select(Image.id).order_by(Image.path).limit(1)
    if after_id is not None:
        here = _image(session, after_id).path
        found = session.scalar(by_path.where(cond, Image.path > here))
        if found is not None:
            return found
    return session.scalar(by_path.where(cond))


def dataset_info(session: Session, name: str) -> DatasetInfo:
    ds = get_dataset(session, name)
    return _info(ds)


def _info(ds: Dataset) -> DatasetInfo:
    classes = tuple(
        ClassInfo(c.id, c.name, c.position, c.color)
        for c in sorted(ds.classes, key=lambda c: c.position)
    )
    return DatasetInfo(ds.id, ds.name, ds.task, ds.root, classes)


def load_view(session: Session, image_id: int, viewer: str | None = None) -> ImageView:
    """The image and its labels (boxes in displayed pixels), in creation order. On an overlap
    image not every annotator has finished, only the shared layer and `viewer`'s own votes."""
    row = _image(session, image_id)
    ds = session.get(Dataset, row.dataset_id)
    assert ds is not None
    stmt = (
        select(Annotation, LabelClass.name, ModelRun.model)
        .join(LabelClass, LabelClass.id == Annotation.class_id)
        .outerjoin(ModelRun, ModelRun.id == Annotation.run_id)
        .where(Annotation.image_id == image_id, visible(session, image_id, viewer))
        .order_by(Annotation.id)
    )
    found = session.execute(stmt)
    labels = tuple(_label(ann, name, model, viewer) for ann, name, model in found)
    split = cast(Split | None, row.split)
    sample = Sample(path=row.path, width=row.width, height=row.height, labels=list(labels),
                    split=split, id=row.id, sha256=row.sha256,
                    orientation=row.orientation)  # fmt: skip
    return ImageView(sample, resolve_path(ds, row.path), row.status, row.revision,
                     row.uncertainty, labels, row.flag, _suspicion(session, row),
                     _duplicate(session, row))  # fmt: skip


def _suspicion(session: Session, row: Image) -> str | None:
    """The worst open suspect flag of the image as it is: the class given, the one suggested
    and the label's quality; None when there is none."""
    given, suggested = aliased(LabelClass), aliased(LabelClass)
    stmt = (
        select(given.name, suggested.name, SuspectFlag.score, SuspectFlag.kind)
        .outerjoin(given, given.id == SuspectFlag.class_id)
        .outerjoin(suggested, suggested.id == SuspectFlag.suggested_class_id)
        .where(SuspectFlag.image_id == row.id, SuspectFlag.cleared_at.is_(None),
               SuspectFlag.image_revision == row.revision)
        .order_by(SuspectFlag.score, SuspectFlag.id)
        .limit(1)
    )  # fmt: skip
    found = session.execute(stmt).first()
    if found is None:
        return None
    was, instead, score, kind = found
    return describe(kind, was, instead, score)


def _duplicate(session: Session, row: Image) -> str | None:
    """The image's near-duplicate group (how many images, whether this one is kept)."""
    member = session.get(DuplicateMember, row.id)
    if member is None:
        return None
    size = _count_members(session, member.group_id, row.dataset_id)
    state = "kept" if member.kept else "marked duplicate"
    return f"duplicate group {member.group_id} ({size} images, {state})"


def _count_members(session: Session, group_id: int, dataset_id: int) -> int:
    stmt = select(func.count()).select_from(DuplicateMember).where(
        DuplicateMember.dataset_id == dataset_id, DuplicateMember.group_id == group_id)  # fmt: skip
    return int(session.scalar(stmt) or 0)


def _label(ann: Annotation, class_name: str, model: str | None, viewer: str | None) -> Label:
    """The label as shown; an overlap vote is the viewer's own label (accepted) when it is
    theirs, else someone's vote (review "vote", source "vote:<person>")."""
    box = None
    if ann.kind == "box":
        assert ann.x is not None and ann.y is not None and ann.w is not None and ann.h is not None
        box = Box(ann.x, ann.y, ann.w, ann.h)
    source = "human" if ann.source == "human" else (model or "model")
    review = ann.review
    if review == VOTE and ann.layer == viewer:
        review = "accepted"
    elif review == VOTE:
        source = f"vote:{ann.layer}"
    return Label(class_name, box, ann.score, source, review, ann.iscrowd, ann.id)
