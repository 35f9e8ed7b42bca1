"""Use case: assign images to train/val/test. Splits live in the store, so an image keeps its
split across exports: only images without one are assigned, unless `reassign`. The assignment is
seeded (the same seed and images give the same splits) and stratified by class: an image's
stratum is its class (classification) or its rarest class (multilabel, detection: the class on
the fewest images); images without labels form a stratum of their own. Each change is written to
the history as a 'split' event (what incremental mirrors read), under a bulk author so the
label app's undo does not reverse it. A group of near-duplicates (`dupes`) goes to one split."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.bulk import bulk_author, executemany, now_param
from annotator.store.dupes import keep_groups_together
from annotator.store.models import SPLIT_NAMES, Annotation, Dataset, HistoryEvent, Image
from annotator.store.types import ProgressFn

RATIO_TOLERANCE = 1e-3
STREAM_ROWS = 50_000  # label rows fetched at a time, history rows written at a time


@dataclass
class SplitReport:
    assigned: dict[str, int] = field(default_factory=dict)  # newly assigned, per split
    totals: dict[str, int] = field(default_factory=dict)  # all images, per split ("none")
    kept: int = 0  # images that already had a split


def parse_ratios(text: str) -> dict[str, float]:
    """`train=0.8,val=0.1,test=0.1` -> {"train": 0.8, ...}; must sum to 1."""
    ratios: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SPLIT_NAMES:
            raise InvalidInputError(
                f"--ratios {part!r}: expected NAME=FRACTION with NAME in {', '.join(SPLIT_NAMES)}"
            )
        try:
            ratios[name] = float(value)
        except ValueError:
            raise InvalidInputError(f"--ratios {part!r}: {value!r} is not a number") from None
        if not 0 <= ratios[name] <= 1:
            raise InvalidInputError(f"--ratios {part!r}: a fraction lies in [0, 1]")
    if not ratios or abs(sum(ratios.values()) - 1) > RATIO_TOLERANCE:
        raise InvalidInputError(f"--ratios {text!r}: the fractions must add up to 1")
    return ratios


def assign_splits(
    session: Session,
    ds: Dataset,
    ratios: dict[str, float],
    *,
    seed: int = 0,
    reassign: bool = False,
    progress: ProgressFn | None = None,
) -> SplitReport:
    """Assign a split to every image of `ds` that has none (every image with `reassign`).
    Memory holds a few values per image (its id, split and stratum), never its labels."""
    stmt = (
        select(Image.id, Image.split)
        .where(Image.dataset_id == ds.id)
        .order_by(Image.sha256, Image.id)  # the stable order each stratum is shuffled from
        .execution_options(yield_per=STREAM_ROWS)
    )
    current: dict[int, str | None] = {i: old for i, old in session.execute(stmt)}
    todo = [i for i, old in current.items() if reassign or old is None]
    report = SplitReport(kept=len(current) - len(todo))
    chosen = stratified(_strata(session, ds, todo), ratios, seed)
    chosen = keep_groups_together(session, ds.id, current, chosen)
    changes = [(i, current[i], chosen[i]) for i in todo if current[i] != chosen[i]]
    _write(session, ds, changes, progress)
    dealt = Counter(new for _, _, new in changes)  # reported in the order the splits were given
    report.assigned = {name: dealt[name] for name in [*ratios, *dealt] if dealt[name]}
    totals = Counter(chosen.get(i, old) for i, old in current.items())
    report.totals = {str(k) if k else "none": v for k, v in sorted(totals.items(), key=str)}
    return report


def _strata(session: Session, ds: Dataset, todo: list[int]) -> dict[str, list[int]]:
    """Image ids to assign (`todo`, in SHA-256 order: a stable order), grouped by stratum. The
    labels are counted in SQL (images per class) and then streamed, keeping only each image's
    rarest class so far."""
    accepted = (Annotation.dataset_id == ds.id, Annotation.review == "accepted")
    counts = session.execute(
        select(Annotation.class_id, func.count(distinct(Annotation.image_id)))
        .where(*accepted)
        .group_by(Annotation.class_id)
    ).tuples()
    rank = {class_id: (n, class_id) for class_id, n in counts}
    rarest: dict[int, int] = {}
    stmt = select(Annotation.image_id, Annotation.class_id).where(*accepted)
    for image_id, class_id in session.execute(stmt.execution_options(yield_per=STREAM_ROWS)):
        have = rarest.get(image_id)
        if have is None or rank[class_id] < rank[have]:
            rarest[image_id] = class_id
    groups: dict[str, list[int]] = defaultdict(list)
    for image_id in todo:
        groups[str(rarest.get(image_id))].append(image_id)
    return groups


def stratified(groups: dict[str, list[int]], ratios: dict[str, float], seed: int) -> dict[int, str]:
    """Shuffle each stratum (seeded, from the stable order it is given in), line the strata
    up, and deal the images out by largest deficit: the whole follows the ratios exactly (to a
    whole image) and each stratum, being a contiguous run, follows them to within one image per
    split."""
    names = [n for n in SPLIT_NAMES if ratios.get(n, 0) > 0]
    counts: Counter[str] = Counter()
    out: dict[int, str] = {}
    dealt = 0
    for key in sorted(groups):
        members = list(groups[key])
        random.Random(f"{seed}:{key}").shuffle(members)
        for image_id in members:
            dealt += 1
            best = max(names, key=lambda s: ratios[s] * dealt - counts[s])
            counts[best] += 1
            out[image_id] = best
    return out


def _write(
    session: Session,
    ds: Dataset,
    changes: list[tuple[int, str | None, str]],
    progress: ProgressFn | None,
) -> None:
    """One UPDATE per split and chunk, plus a history 'split' event per image (written
    `STREAM_ROWS` at a time); one commit."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for image_id, _, new in changes:
        by_split[new].append(image_id)
    for split, ids in by_split.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            session.execute(update(Image).where(Image.id.in_(chunk)).values(split=split))
    conn = session.connection()
    now, group, author = now_param(conn), uuid.uuid4().hex, bulk_author("split")
    states = {name: _state(name) for name in (None, *SPLIT_NAMES)}
    tail = (author, now, group, "do")
    for start in range(0, len(changes), STREAM_ROWS):
        rows = [
            (ds.id, image_id, None, "split", states.get(old) or _state(old), states[new], *tail)
            for image_id, old, new in changes[start : start + STREAM_ROWS]
        ]
        executemany(conn, HistoryEvent.__table__, SPLIT_COLUMNS, rows)  # type: ignore[arg-type]
    session.commit()
    if progress:
        progress(len(changes), len(changes))


def _state(split: str | None) -> str:
    return orjson.dumps({"split": split}).decode()


SPLIT_COLUMNS = (
    "dataset_id", "image_id", "annotation_id", "action", "before", "after", "author",
    "created_at", "group_id", "group_kind",
)  # fmt: skip
