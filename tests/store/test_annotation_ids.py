"""Annotation ids are never handed out twice: a label made after a delete never gets the deleted
label's id (a FiftyOne mirror or an export that cites the old id must not hit the new label), on
SQLite (fresh or upgraded) and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from annotator.annotation import Box
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import make_engine, open_store, upgrade
from annotator.store.images import add_images
from tests.conftest import needs_postgres
from tests.store.test_migrations import _fill_first_revision, _revisions


def _delete_newest_then_label(url: str, images: list[Path]) -> tuple[list[int], int, int]:
    """Three boxes, the newest deleted, then a box on another image and one on the same image:
    (ids before, the deleted id, the highest id after)."""
    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, f"ids{len(images)}", "detection", ["cat", "dog"])
        ids_of = sorted(add_images(s, ds, [images[0].parent]).added_ids)
        cat = ds.classes[0].id
        made = [labels.add_box(s, ids_of[0], cat, Box(1, 1, 5, 5), "ann").id for _ in range(3)]
        newest = max(made)
        labels.delete_annotation(s, newest, "ann")
        other = labels.add_box(s, ids_of[1], cat, Box(2, 2, 6, 6), "ann").id
        labels.delete_annotation(s, other, "ann")
        same = labels.add_box(s, ids_of[0], cat, Box(3, 3, 7, 7), "ann").id
    store.close()
    assert newest < other < same
    return made, newest, same


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_a_deleted_labels_id_is_never_given_to_a_new_label(
    engine: str, tmp_path: Path, make_images: Any, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'ids.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    made, deleted, last = _delete_newest_then_label(url, make_images(2))
    assert last > deleted and last not in made


def test_an_upgraded_sqlite_database_never_reuses_ids(tmp_path: Path, make_images: Any) -> None:
    """A database made before ids were kept unique: after `db upgrade` they are."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, _revisions(engine)[0])
    _fill_first_revision(engine)  # annotation 1 on image 1 of dataset 'pets'
    upgrade(engine)
    engine.dispose()
    made, deleted, last = _delete_newest_then_label(f"sqlite:///{tmp_path / 'old.db'}",
                                                    make_images(2))  # fmt: skip
    assert min(made) > 1 and last > deleted
