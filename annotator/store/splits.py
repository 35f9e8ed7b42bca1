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
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.bulk import bulk_author, executemany, now_param
from annotator.store.dupes import keep_groups_together
from annotator.store.models import SPLIT_NAMES, Annotation, Dataset, HistoryEvent, Image
from annotator.store.types import ProgressFn

RATIO_TOLERANCE = 1e-3


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
    """Assign a split to every image of `ds` that has none (every image with `reassign`)."""
    rows = session.execute(
        select(Image.id, Image.split, Image.sha256).where(Image.dataset_id == ds.id)
    ).all()
    todo = [(i, old, sha) for i, old, sha in rows if reassign or old is None]
    report = SplitReport(kept=len(rows) - len(todo))
    chosen = stratified(_strata(session, ds, todo), ratios, seed)
    chosen = keep_groups_together(session, ds.id, {i: old for i, old, _ in rows}, chosen)
    changes = [(image_id, old, chosen[image_id]) for image_id, old, _ in todo]
    changes = [c for c in changes if c[1] != c[2]]
    _write(session, ds, changes, progress)
    report.assigned = dict(Counter(new for _, _, new in changes))
    totals = Counter(chosen.get(i, old) for i, old, _ in rows)
    report.totals = {str(k) if k else "none": v for k, v in sorted(totals.items(), key=str)}
    return report


def _strata(
    session: Session, ds: Dataset, todo: list[tuple[int, str | None, str]]
) -> dict[str, list[tuple[str, int]]]:
    """Images to assign, grouped by stratum, each as (sha256, id) for a stable order."""
    classes: dict[int, set[int]] = defaultdict(set)
    stmt = select(Annotation.image_id, Annotation.class_id).where(
        Annotation.dataset_id == ds.id, Annotation.review == "accepted"
    )
    for image_id, class_id in session.execute(stmt):
        classes[image_id].add(class_id)
    frequency = Counter(c for found in classes.values() for c in found)
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for image_id, _, sha in todo:
        found = classes.get(image_id)
        key = min(found, key=lambda c: (frequency[c], c)) if found else None
        groups[str(key)].append((sha, image_id))
    return groups


def stratified(
    groups: dict[str, list[tuple[str, int]]], ratios: dict[str, float], seed: int
) -> dict[int, str]:
    """Shuffle each stratum (seeded), line the strata up, and deal the images out by largest
    deficit: the whole follows the ratios exactly (to a whole image) and each stratum, being a
    contiguous run, follows them to within one image per split."""
    names = [n for n in SPLIT_NAMES if ratios.get(n, 0) > 0]
    counts: Counter[str] = Counter()
    out: dict[int, str] = {}
    dealt = 0
    for key in sorted(groups):
        members = sorted(groups[key])
        random.Random(f"{seed}:{key}").shuffle(members)
        for _, image_id in members:
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
    """One UPDATE per split and chunk, plus a history 'split' event per image; one commit."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for image_id, _, new in changes:
        by_split[new].append(image_id)
    for split, ids in by_split.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            session.execute(update(Image).where(Image.id.in_(chunk)).values(split=split))
    conn = session.connection()
    now, group, author = now_param(conn), uuid.uuid4().hex, bulk_author("split")
    rows = [
        (ds.id, image_id, None, "split", _state(old), _state(new), author, now, group, "do")
        for image_id, old, new in changes
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


def splits_present(session: Session, ds: Dataset) -> list[str]:
    """The split names images of `ds` carry, in train, val, test order."""
    found = set(session.scalars(select(Image.split).where(Image.dataset_id == ds.id).distinct()))
    return [s for s in SPLIT_NAMES if s in found]
