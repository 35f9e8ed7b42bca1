"""Leases: a team is served different images, expired leases return images to the queue, and
claimers racing on one database (threads, on SQLite and PostgreSQL) never get the same image."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotator.store import leases
from annotator.store import queue as q
from annotator.store.datasets import create_dataset
from annotator.store.db import Store, open_store
from annotator.store.models import Image, ModelRun, RunImage
from tests.conftest import needs_postgres

ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]


def _fill(store: Store, n: int) -> int:
    """A dataset with `n` image rows (no files needed: leases only look at rows)."""
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog"])
        s.add_all(Image(dataset_id=ds.id, path=f"img{i:05d}.jpg", sha256=f"{i:064x}", width=8,
                        height=8, size_bytes=1) for i in range(n))  # fmt: skip
        s.commit()
        return ds.id


@pytest.fixture(params=ENGINES)
def engine_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'l.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    st = open_store(url)
    yield st
    st.close()


def _ids(store: Store, dataset_id: int) -> list[int]:
    with store.session() as s:
        return [r.id for r in s.query(Image).filter_by(dataset_id=dataset_id).order_by(Image.id)]


def test_two_people_are_served_different_images(engine_store: Store) -> None:
    ds = _fill(engine_store, 6)
    ids = _ids(engine_store, ds)
    with engine_store.session() as s:
        assert leases.claim(s, ds, ids[:3], "alice") == ids[:3]
        assert leases.claim(s, ds, ids[1:5], "bob") == ids[3:5]
        spec = q.QueueSpec("all", "path", holder="carol")
        assert q.first(s, ds, spec) == ids[5]
        assert q.first(s, ds, q.QueueSpec("all", "path", holder="alice")) == ids[0]
        leases.release(s, ds, "alice")
        assert q.first(s, ds, spec) == ids[0]


def test_an_expired_lease_returns_the_image_and_a_heartbeat_keeps_it(engine_store: Store) -> None:
    ds = _fill(engine_store, 2)
    a, b = _ids(engine_store, ds)
    with engine_store.session() as s:
        assert leases.claim(s, ds, [a], "alice", ttl_s=0.4) == [a]
        assert leases.claim(s, ds, [b], "bob", ttl_s=0.4) == [b]
        assert leases.heartbeat(s, ds, "bob", ttl_s=60) == 1
        time.sleep(0.6)
        assert leases.claim(s, ds, [a, b], "carol") == [a]  # alice's expired, bob's kept alive
        held = {(h.holder, h.images) for h in leases.holders(s, ds)}
        assert held == {("bob", 1), ("carol", 1)}


def test_keep_only_releases_what_a_person_moved_past(engine_store: Store) -> None:
    ds = _fill(engine_store, 4)
    ids = _ids(engine_store, ds)
    with engine_store.session() as s:
        leases.claim(s, ds, ids[:3], "alice")
        leases.keep_only(s, ds, "alice", ids[1:3])
        assert leases.claim(s, ds, ids[:2], "bob") == ids[:1]


def _race(store: Store, ds: int, claimers: int, work: object) -> dict[str, list[int]]:
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(claimers)

    def claimer(name: str) -> None:
        try:
            barrier.wait()
            got[name] = work(name)  # type: ignore[operator]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return got


def test_racing_run_workers_take_each_image_exactly_once(engine_store: Store) -> None:
    ds = _fill(engine_store, 120)
    with engine_store.session() as s:
        run = ModelRun(dataset_id=ds, model="stub", params={})
        s.add(run)
        s.commit()
        run_id = run.id

    def work(name: str) -> list[int]:
        mine: list[int] = []
        with engine_store.session() as s:
            while batch := leases.claim_run_batch(s, ds, run_id, name, 7):
                s.add_all(RunImage(run_id=run_id, image_id=i) for i in batch)
                s.commit()
                leases.release(s, ds, name, leases.run_scope(run_id))
                mine += batch
        return mine

    got = _race(engine_store, ds, 4, work)
    taken = [i for batch in got.values() for i in batch]
    assert sorted(taken) == _ids(engine_store, ds)  # every image once, none twice
    with engine_store.session() as s:
        assert leases.remaining(s, ds, run_id) == 0


def test_racing_labellers_never_share_an_image(engine_store: Store) -> None:
    ds = _fill(engine_store, 60)

    def work(name: str) -> list[int]:
        mine: list[int] = []
        spec = q.QueueSpec("unlabeled", "path", holder=name)
        with engine_store.session() as s:
            for _ in range(10):
                found = q.first(s, ds, spec)
                if found is None:
                    break
                if leases.claim(s, ds, [found], name, ttl_s=600) == [found]:
                    mine.append(found)
                    image = s.get(Image, found)
                    assert image is not None
                    image.status = "labeled"  # done: it leaves the unlabeled queue
                    s.commit()
        return mine

    got = _race(engine_store, ds, 4, work)
    taken = [i for batch in got.values() for i in batch]
    assert len(taken) == len(set(taken))
    assert len(taken) >= 4


@pytest.mark.parametrize("engine", [pytest.param("postgresql", marks=needs_postgres)])
def test_the_person_whose_move_found_an_image_gets_it(engine: str, pg_url: str) -> None:
    st = open_store(pg_url)
    ds = _fill(st, 3)
    ids = _ids(st, ds)
    with st.session() as alice, st.session() as bob:
        found = q.first(alice, ds, q.QueueSpec("all", "added", holder="alice"))
        assert found == ids[0]  # alice's move holds the row until her claim commits
        assert q.first(bob, ds, q.QueueSpec("all", "added", holder="bob")) == ids[1]
        assert leases.claim(bob, ds, [ids[0]], "bob") == []
        assert leases.claim(alice, ds, [found], "alice") == [found]
        assert leases.claim(bob, ds, [ids[0], ids[1]], "bob") == [ids[1]]
        assert {(h.holder, h.images) for h in leases.holders(bob, ds)} == {("alice", 1),
                                                                           ("bob", 1)}  # fmt: skip
    st.close()
