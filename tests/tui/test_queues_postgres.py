"""The suspect-labels and duplicates queues, and the retrain step, on PostgreSQL (the server
`make test` starts, ANNOTATOR_TEST_PG_URL): a person's queue locks the rows it finds (FOR UPDATE
SKIP LOCKED) while ordering by the flag's score or the group, and the app's backend serves and
leases the images in that order; retraining embeds and trains there as on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.store import labels
from annotator.store import queue as q
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.dupes import replace_groups
from annotator.store.images import add_images
from annotator.store.models import Dataset, Image
from annotator.store.suspects import NewFlag, write_flags
from annotator.tui.backend import Backend
from tests.conftest import needs_postgres
from tests.learn.conftest import HUES, write_coloured

pytestmark = needs_postgres


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


def _dataset(store: Store, tmp_path: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    folder = tmp_path / "c"
    write_coloured(folder, 3)
    with store.session() as s:
        ds = create_dataset(s, "c", "classification", list(HUES), folder)
        add_images(s, ds, [folder])
        ids = {Path(i.path).name: i.id for i in s.scalars(select(Image))}
        return ds.id, ids, {c.name: c.id for c in ds.classes}


def test_suspect_and_duplicate_queues_on_postgres(store: Store, tmp_path: Path) -> None:
    ds_id, ids, classes = _dataset(store, tmp_path)
    with store.session() as s:
        ds = s.get_one(Dataset, ds_id)
        write_flags(s, ds, [NewFlag(ids["red_001.png"], classes["red"], classes["blue"], 0.4),
                            NewFlag(ids["blue_002.png"], classes["blue"], classes["green"], 0.1)],
                    "tester")  # fmt: skip
        replace_groups(s, ds, [[(ids["green_000.png"], 0), (ids["red_002.png"], 3)]])
    backend = Backend(store, "ann")
    spec = q.QueueSpec("suspects", "path")
    first = backend.find_view(ds_id, spec, "first", None)
    assert first is not None and first.sample.path == "blue_002.png"
    assert first.suspect == "suspect: blue → green (quality 0.10)"
    after = backend.find_view(ds_id, spec, "step", first.id, 1)
    assert after is not None and after.sample.path == "red_001.png"
    dupes = q.QueueSpec("duplicates", "path", holder="ann")
    with store.session() as s:
        walk = [q.first(s, ds_id, dupes)]
        walk.append(q.step(s, dupes, walk[0]))  # type: ignore[arg-type]
    assert walk == sorted([ids["green_000.png"], ids["red_002.png"]])


def test_retrain_on_postgres(store: Store, tmp_path: Path, monkeypatch: Any) -> None:
    from annotator.learn import loop

    monkeypatch.setattr(loop, "DEFAULT_MODEL", "tests.learn.stub_backbones:colour")
    ds_id, ids, classes = _dataset(store, tmp_path)
    for name in HUES:
        for i in range(2):
            with store.session() as s:
                labels.assign_class(s, ids[f"{name}_{i:03d}.png"], classes[name], "ann")
    report = Backend(store, "ann").retrain(ds_id, lambda done, total: None)
    assert (report.embedded, report.train.proposed, report.train.cv_accuracy) == (9, 3, 1.0)
    assert Backend(store, "ann").accuracy(ds_id) == 1.0
