"""The history position (the newest event of a dataset, which exports and review pushes cite)
is found by one index seek per author: it must still be the dataset's newest event whoever
wrote it, with other datasets' events interleaved, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotator.store import export_reads
from annotator.store.bulk_sql import driver_rows
from annotator.store.datasets import create_dataset
from annotator.store.db import Store, open_store
from annotator.store.history import position
from annotator.store.models import HistoryEvent
from tests.conftest import needs_postgres

ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]
AUTHORS = ["alice", "bob", "bulk import", "Zoë", "train:resnet18", "a"]


@pytest.fixture(params=ENGINES)
def engine_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'p.db'}" if request.param == "sqlite" else None
    st = open_store(url or request.getfixturevalue("pg_url"))
    yield st
    st.close()


def _event(dataset_id: int, author: str) -> HistoryEvent:
    return HistoryEvent(dataset_id=dataset_id, action="status", author=author, group_id="g")


def test_position_is_the_newest_event_of_the_dataset(engine_store: Store) -> None:
    rng = random.Random(5)
    with engine_store.session() as s:
        names = {create_dataset(s, n, "detection", ["car"]).id: n for n in ("d0", "d1", "empty")}
        d0, d1, empty = names
        for _ in range(300):  # interleaved datasets and authors
            s.add(_event(rng.choice([d0, d1]), rng.choice(AUTHORS)))
            s.flush()
        s.add(_event(d1, "a"))  # d1's newest event, by the author sorting first
        s.commit()
        rows = driver_rows(s)
        for dataset_id, name in names.items():
            newest = s.scalar(
                select(func.max(HistoryEvent.id)).where(HistoryEvent.dataset_id == dataset_id)
            )
            expected = int(newest or 0)
            assert position(s, dataset_id) == expected
            assert export_reads.position(rows, export_reads.dataset(rows, name)) == expected
        assert position(s, empty) == 0
        assert position(s, d1) > position(s, d0) > 0
