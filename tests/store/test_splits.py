"""Splits: ratio parsing, only unassigned images, seeded and stratified assignment, history."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.annotation import Label, Sample
from annotator.errors import InvalidInputError
from annotator.store.bulk import Incoming, import_samples
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import Store
from annotator.store.models import HistoryEvent, Image
from annotator.store.splits import assign_splits, parse_ratios, stratified
from tests.conftest import write_jpeg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=0.8,val=0.1", "must add up to 1"),
        ("train=0.8,dev=0.2", "NAME in train, val, test"),
        ("train=x,val=1", "'x' is not a number"),
        ("train", "expected NAME=FRACTION"),
        ("train=1.5,val=-0.5", "a fraction lies in [0, 1]"),
    ],
)
def test_bad_ratios(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_ratios(text)


def test_ratios_parse() -> None:
    assert parse_ratios(" train=0.8, val=0.1,test=0.1 ") == {"train": 0.8, "val": 0.1, "test": 0.1}


def _dataset(store: Store, tmp_path: Path, per_class: dict[str, int]) -> None:
    """A classification dataset with per_class[c] images of class c (tiny distinct JPEGs)."""
    items = []
    n = 0
    for cls, count in per_class.items():
        for _ in range(count):
            path = write_jpeg(tmp_path / "img" / f"{n}.jpg", (16 + n % 7, 16 + n // 7 % 9),
                              (n % 256, n // 256 * 40 % 256, 99))  # fmt: skip
            items.append(Incoming(Sample(str(path), labels=[Label(cls)]), "test", label_where=[""]))
            n += 1
    with store.session() as s:
        ds = create_dataset(s, "ds", "classification", list(per_class), tmp_path)
        report = import_samples(s, ds, items)
        assert report.images == n, report.problems


def _splits(store: Store) -> dict[int, str | None]:
    with store.session() as s:
        return dict(s.execute(select(Image.id, Image.split)).tuples().all())


def test_stratified_seeded_and_stable(store: Store, tmp_path: Path) -> None:
    _dataset(store, tmp_path, {"common": 40, "rare": 10})
    ratios = {"train": 0.8, "val": 0.2}
    with store.session() as s:
        report = assign_splits(s, get_dataset(s, "ds"), ratios, seed=3)
    assert report.assigned == {"train": 40, "val": 10} and report.kept == 0
    first = _splits(store)
    from tests.formats.conftest import store_labels

    per_class: Counter[tuple[str, str | None]] = Counter()
    with store.session() as s:
        names = {r.id: Path(r.path).name for r in s.scalars(select(Image))}
    labels = store_labels(store, "ds")
    for image_id, split in first.items():
        per_class[(labels[names[image_id]][0][0], split)] += 1
    assert per_class == {("common", "train"): 32, ("common", "val"): 8, ("rare", "train"): 8,
                         ("rare", "val"): 2}  # fmt: skip
    with store.session() as s:
        again = assign_splits(s, get_dataset(s, "ds"), {"train": 0.5, "val": 0.5}, seed=9)
    assert again.assigned == {} and again.kept == 50 and _splits(store) == first
    with store.session() as s:
        redo = assign_splits(s, get_dataset(s, "ds"), ratios, seed=3, reassign=True)
    assert redo.assigned == {} and _splits(store) == first  # same seed: same assignment
    with store.session() as s:
        other = assign_splits(s, get_dataset(s, "ds"), ratios, seed=4, reassign=True)
    assert sum(other.assigned.values()) > 0 and Counter(_splits(store).values()) == {
        "train": 40, "val": 10}  # fmt: skip


def test_only_new_images_are_assigned_and_history_records_it(store: Store, tmp_path: Path) -> None:
    _dataset(store, tmp_path, {"a": 6})
    with store.session() as s:
        ds = get_dataset(s, "ds")
        s.execute(Image.__table__.update().where(Image.id <= 2).values(split="test"))
        s.commit()
        report = assign_splits(s, ds, {"train": 1.0})
        events = s.scalars(select(HistoryEvent).where(HistoryEvent.action == "split")).all()
    assert report.assigned == {"train": 4} and report.kept == 2
    assert report.totals == {"test": 2, "train": 4}
    assert sorted(e.image_id for e in events) == [3, 4, 5, 6]
    assert {(str(e.before), str(e.after), e.author) for e in events} == {
        ("{'split': None}", "{'split': 'train'}", "tester (split)")
    }  # fmt: skip


def test_detection_strata_use_the_rarest_class() -> None:
    groups = {"rare": list(range(10)), "None": [100 + i for i in range(5)]}
    out = stratified(groups, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    rare = Counter(out[i] for i in range(10))
    assert rare == {"train": 6, "val": 2, "test": 2}
    assert Counter(out.values()) == {"train": 9, "val": 3, "test": 3}


def test_detection_images_are_stratified_by_their_rarest_class(
    store: Store, tmp_path: Path
) -> None:
    from annotator.annotation import Box

    items = []
    for n in range(20):
        path = write_jpeg(tmp_path / "img" / f"{n}.jpg", (30 + n, 30), (n * 12, 50, 50))
        labels = [Label("common", Box(1, 1, 5, 5))] + ([Label("rare", Box(2, 2, 5, 5))] * (n < 10))
        items.append(Incoming(Sample(str(path), labels=labels), "test"))
    with store.session() as s:
        ds = create_dataset(s, "det", "detection", ["common", "rare"], tmp_path)
        assert import_samples(s, ds, items).images == 20
        ids = sorted(s.scalars(select(Image.id)))
    rare_ids = set(ids[:10])
    for seed in range(5):
        with store.session() as s:
            assign_splits(s, get_dataset(s, "det"), {"train": 0.8, "val": 0.2}, seed=seed,
                          reassign=True)  # fmt: skip
        rare = Counter(split for i, split in _splits(store).items() if i in rare_ids)
        assert rare == {"train": 8, "val": 2}


def test_assignment_is_the_seeded_rule_over_accepted_labels(store: Store, tmp_path: Path) -> None:
    """The splits follow the documented rule exactly: each image's stratum is its rarest class
    among accepted labels (images per class; ties by class id), each stratum is shuffled with
    `seed:stratum` from SHA-256 order, and the strata are dealt by largest deficit. Pending
    labels play no part."""
    import random

    from annotator.annotation import Box
    from annotator.store.models import SPLIT_NAMES, Annotation

    items = []
    for n in range(60):
        path = write_jpeg(tmp_path / "img" / f"{n}.jpg", (20 + n, 24), (n * 4, 90, 30))
        labels = [Label("a", Box(1, 1, 4, 4))] * (n % 2 == 0) + [Label("b", Box(2, 2, 4, 4))] * (
            n % 3 == 0
        ) + [Label("c", Box(3, 3, 4, 4))] * (n % 7 == 0)  # fmt: skip
        items.append(Incoming(Sample(str(path), labels=labels), "test"))
    ratios = {"train": 0.7, "val": 0.2, "test": 0.1}
    with store.session() as s:
        ds = create_dataset(s, "det", "detection", ["a", "b", "c"], tmp_path)
        import_samples(s, ds, items)
        some = s.scalars(select(Annotation).order_by(Annotation.id).limit(9)).all()
        for ann in some:  # pending labels are not the image's classes
            ann.review = "pending"
        s.commit()
        rows = s.execute(select(Image.id, Image.sha256)).tuples().all()
        labels = (
            s.execute(
                select(Annotation.image_id, Annotation.class_id).where(
                    Annotation.review == "accepted"
                )
            )
            .tuples()
            .all()
        )
        assign_splits(s, get_dataset(s, "det"), ratios, seed=3)
    classes: dict[int, set[int]] = {}
    for image_id, class_id in labels:
        classes.setdefault(image_id, set()).add(class_id)
    frequency = Counter(c for found in classes.values() for c in found)
    groups: dict[str, list[tuple[str, int]]] = {}
    for image_id, sha in rows:
        found = classes.get(image_id)
        key = min(found, key=lambda c: (frequency[c], c)) if found else None
        groups.setdefault(str(key), []).append((sha, image_id))
    expected: dict[int, str] = {}
    counts: Counter[str] = Counter()
    for key in sorted(groups):
        members = sorted(groups[key])
        random.Random(f"3:{key}").shuffle(members)
        for _, image_id in members:
            best = max(SPLIT_NAMES, key=lambda n: ratios[n] * (len(expected) + 1) - counts[n])
            counts[best] += 1
            expected[image_id] = best
    assert _splits(store) == expected
    assert len(set(expected.values())) == 3
