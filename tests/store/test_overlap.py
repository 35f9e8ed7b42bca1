"""Overlap: a reproducible sample labelled by k people, each person's votes kept apart and hidden
from the others until all k are done, the queue serving an overlap image to up to k people and
never twice to one; consensus written as one undoable group with the votes kept; agreement and
per-annotator figures. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.annotation import Box
from annotator.store import export_reads, labels, leases, overlap, pace
from annotator.store import queue as q
from annotator.store.bulk_sql import driver_rows
from annotator.store.consensus import consensus
from annotator.store.datasets import create_dataset, get_dataset, stats
from annotator.store.db import Store, open_store
from annotator.store.models import Annotation, Image, LabelClass
from annotator.store.undo import undo
from tests.conftest import needs_postgres

ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]


@pytest.fixture(params=ENGINES)
def st(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'o.db'}" if request.param == "sqlite" else (
        request.getfixturevalue("pg_url"))  # fmt: skip
    store = open_store(url)
    yield store
    store.close()


def _fill(store: Store, n: int, task: str = "classification") -> int:
    with store.session() as s:
        ds = create_dataset(s, "pets", task, ["cat", "dog", "bird"])
        s.add_all(Image(dataset_id=ds.id, path=f"img{i:04d}.jpg", sha256=f"{i:064x}", width=100,
                        height=80, size_bytes=1) for i in range(n))  # fmt: skip
        s.commit()
        return ds.id


def _mark(store: Store, fraction: float = 1.0, k: int = 2, seed: int = 7) -> list[int]:
    with store.session() as s:
        overlap.mark(s, get_dataset(s, "pets"), fraction, k, "lead", seed)
        return sorted(s.scalars(select(overlap.OverlapImage.image_id)))


def _cls(store: Store, name: str) -> int:
    with store.session() as s:
        return int(s.scalar(select(LabelClass.id).where(LabelClass.name == name)) or 0)


def _shown(store: Store, image_id: int, viewer: str | None) -> list[str]:
    with store.session() as s:
        return sorted(label.class_name for label in q.load_view(s, image_id, viewer).labels)


def test_the_sample_is_reproducible_and_sized(tmp_path: Path) -> None:
    picks = []
    for run in range(2):
        store = open_store(f"sqlite:///{tmp_path / f'r{run}.db'}")
        _fill(store, 50)
        picks.append(_mark(store, 0.1, 2, seed=3))
        assert _mark(store, 0.1, 2, seed=3) == picks[-1]  # marking again adds nothing
        store.close()
    assert picks[0] == picks[1] and len(picks[0]) == 5


def test_votes_do_not_leak_between_annotators_until_all_are_done(st: Store) -> None:
    ds = _fill(st, 1)
    (image,) = _mark(st)
    cat, dog = _cls(st, "cat"), _cls(st, "dog")
    with st.session() as s:
        shown_revision = q.load_view(s, image, "bob").revision
        labels.assign_class(s, image, cat, "alice", expected_revision=shown_revision)
    assert _shown(st, image, "alice") == ["cat"]
    assert _shown(st, image, "bob") == []  # alice's vote is hers until both are done
    assert _shown(st, image, None) == []
    with st.session() as s:  # bob's edit cites what he was shown: alice's vote refused nothing
        labels.assign_class(s, image, dog, "bob", expected_revision=shown_revision)
        assert s.get(Image, image).status == "unlabeled"  # votes are not the shared label
        rows = driver_rows(s)
        assert (
            list(export_reads.export_samples(rows, export_reads.dataset(rows, "pets"), None)) == []
        )
        assert stats(s, get_dataset(s, "pets"))["review"] == {"vote": 2}
    assert _shown(st, image, "alice") == ["cat", "dog"] == _shown(st, image, "bob")
    with st.session() as s:  # each sees their own vote as their label, the other's as a vote
        seen = {(x.class_name, x.review, x.source) for x in q.load_view(s, image, "bob").labels}
    assert seen == {("cat", "vote", "vote:alice"), ("dog", "accepted", "human")}
    with st.session() as s:  # votes done: nobody is served it again from the queue
        assert q.first(s, ds, q.QueueSpec(holder="carol")) is None


def test_an_overlap_image_is_served_to_k_people_and_never_twice(st: Store) -> None:
    ds = _fill(st, 2)
    (a,) = _mark(st, 0.5, k=2, seed=1)  # one overlap image
    cat = _cls(st, "cat")
    with st.session() as s:
        other = next(i for i in s.scalars(select(Image.id)) if i != a)
        assert leases.claim(s, ds, [a, other], "alice") == [a, other]
        assert leases.claim(s, ds, [a, other], "bob") == [a]  # a takes two people
        assert leases.claim(s, ds, [a], "carol") == []  # but not three
        assert q.first(s, ds, q.QueueSpec(holder="carol")) is None
        labels.assign_class(s, a, cat, "alice")
        leases.release(s, ds, "alice")
        assert q.first(s, ds, q.QueueSpec(holder="alice")) == other  # done with a: not again
        assert leases.claim(s, ds, [a], "carol") == []  # alice done + bob holding: full
        leases.release(s, ds, "bob")
        assert leases.claim(s, ds, [a], "carol") == [a]


def test_finishing_one_overlap_image_does_not_close_the_others(st: Store) -> None:
    """Each overlap image counts its own votes and holders: a person done with one is still
    served every other (the check is per image, not over all overlap images)."""
    ds = _fill(st, 3)
    marked = _mark(st, 1.0, k=2, seed=1)
    cat = _cls(st, "cat")
    with st.session() as s:
        assert leases.claim(s, ds, marked[:1], "alice") == marked[:1]
        labels.assign_class(s, marked[0], cat, "alice")
        leases.release(s, ds, "alice")
        assert leases.claim(s, ds, marked[1:], "alice") == marked[1:]
        leases.release(s, ds, "alice")
        assert q.first(s, ds, q.QueueSpec(holder="alice")) == marked[1]
        assert leases.claim(s, ds, marked, "bob") == marked  # alice's vote leaves one seat


def test_consensus_writes_the_majority_flags_ties_and_undoes(st: Store) -> None:
    ds = _fill(st, 2)
    one, two = _mark(st, 1.0, k=3)
    cat, dog = _cls(st, "cat"), _cls(st, "dog")
    with st.session() as s:
        for who, cls in (("a", cat), ("b", cat), ("c", dog)):
            labels.assign_class(s, one, cls, who)
        for who, cls in (("a", cat), ("b", dog)):
            labels.assign_class(s, two, cls, who)
        labels.set_status(s, two, "reviewed", "c")  # c is done with no label: abstains
        report = consensus(s, get_dataset(s, "pets"), "lead")
        assert (report.written, len(report.ties)) == (1, 1)
        assert s.get(Image, one).status == "labeled"
        assert s.get(Image, two).flag is not None  # cat 1, dog 1: left for a person
        shared = s.scalars(select(Annotation).where(Annotation.layer.is_(None))).all()
        assert [(a.image_id, a.class_id) for a in shared] == [(one, cat)]
        assert consensus(s, get_dataset(s, "pets"), "lead").written == 0  # once only
        assert undo(s, ds, "lead") == [one]
        assert s.get(Image, one).status == "unlabeled"
        assert s.scalars(select(Annotation).where(Annotation.layer.is_(None))).all() == []
        assert len(s.scalars(select(Annotation).where(Annotation.review == "vote")).all()) == 5


def test_boxes_fuse_by_majority_and_agreement_matches_them(st: Store) -> None:
    pytest.importorskip("ensemble_boxes")
    from annotator.learn.agreement import agreement

    _fill(st, 1, task="detection")
    (image,) = _mark(st, 1.0, k=3)
    cat, dog = _cls(st, "cat"), _cls(st, "dog")
    with st.session() as s:
        labels.add_box(s, image, cat, Box(10, 10, 40, 30), "a")
        labels.add_box(s, image, cat, Box(12, 10, 40, 30), "b")
        labels.add_box(s, image, dog, Box(60, 40, 20, 20), "c")  # only c sees a dog
        ds = get_dataset(s, "pets")
        figures = agreement(overlap.votes(s, ds), "detection", ["cat", "dog", "bird"])
        assert consensus(s, ds, "lead").labels == 1
        (fused,) = s.scalars(select(Annotation).where(Annotation.layer.is_(None))).all()
    assert fused.class_id == cat and 10 <= fused.x <= 12 and fused.w == pytest.approx(40, abs=1)
    assert figures["per_class"]["cat"]["matched"] == 1
    assert figures["per_class"]["cat"]["matched_fraction"] == pytest.approx(0.5)  # 2 of 4 boxes
    assert figures["per_class"]["dog"]["matched"] == 0
    assert figures["per_annotator"]["c"]["agreement"] == 0.0


def test_kappa_and_alpha_match_a_hand_count(st: Store) -> None:
    pytest.importorskip("krippendorff")
    from annotator.learn.agreement import agreement

    _fill(st, 4)
    ids = _mark(st, 1.0, k=2)
    cat, dog = _cls(st, "cat"), _cls(st, "dog")
    votes = [(cat, cat), (dog, dog), (cat, dog), (dog, dog)]
    with st.session() as s:
        for image, (x, y) in zip(ids, votes, strict=True):
            labels.assign_class(s, image, x, "ann")
            labels.assign_class(s, image, y, "bob")
        figures = agreement(overlap.votes(s, get_dataset(s, "pets")), "classification",
                            ["cat", "dog", "bird"])  # fmt: skip
    # observed agreement 3/4; ann says cat 2/4, bob 1/4: expected 1/2*1/4 + 1/2*3/4 = 1/2
    assert figures["overall"]["cohen_kappa"] == pytest.approx(0.5)
    assert figures["overall"]["fleiss_kappa"] is not None
    assert figures["overall"]["krippendorff_alpha"] is not None
    assert figures["per_annotator"]["ann"]["images"] == 4


def test_per_annotator_figures_read_the_recorded_seconds(st: Store) -> None:
    ds = _fill(st, 3)
    cat, dog = _cls(st, "cat"), _cls(st, "dog")
    with st.session() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        for image, seconds in zip(ids, (4.0, 10.0, 6.0), strict=True):
            labels.assign_class(s, image, cat, "ann")
            pace.record_time(s, ds, image, "ann", seconds)
        labels.assign_class(s, ids[0], dog, "bob")
        got = {f.annotator: f for f in pace.annotator_figures(s, ds)}
    assert got["ann"].median_seconds == 6.0 and got["ann"].images == 3
    assert got["ann"].labels_per_hour == pytest.approx(6 * 3600 / 20, rel=0.01)  # 6 changes
    assert got["bob"].median_seconds is None and got["bob"].changes == 2
