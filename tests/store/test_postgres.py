"""The same store on PostgreSQL: migrations, integrity constraints, labels, undo, adding images.
Runs against the server `make test` starts (ANNOTATOR_TEST_PG_URL); each test gets its own
database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from annotator.annotation import Box
from annotator.store import labels
from annotator.store.datasets import create_dataset, stats
from annotator.store.db import open_store
from annotator.store.images import add_images
from annotator.store.models import Base, Image
from annotator.store.undo import undo
from tests.conftest import needs_postgres

pytestmark = needs_postgres


def test_migrations_match_models_on_postgres(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    store.close()


def test_labels_undo_and_constraints_on_postgres(pg_url: str, make_images) -> None:  # type: ignore[no-untyped-def]
    paths = make_images(3)
    store = open_store(pg_url)
    with store.session() as s:
        ds = create_dataset(s, "scenes", "detection", ["car", "person"])
        report = add_images(s, ds, [paths[0].parent])
        assert report.added == 3
        image_id = s.scalars(select(Image.id).order_by(Image.path)).first()
        car = ds.classes[0].id
        labels.add_box(s, image_id, car, Box(1.5, 2.5, 10, 20), "ann")
        assert stats(s, ds)["classes"] == {"car": 1, "person": 0}
        assert undo(s, ds.id, "ann") == [image_id]
        assert stats(s, ds)["annotations"] == 0
        with pytest.raises(IntegrityError):
            s.execute(
                text(
                    "INSERT INTO annotations (dataset_id, task, image_id, class_id, kind, x, y,"
                    " w, h, iscrowd, source, review, author, created_at, updated_at, revision)"
                    f" VALUES ({ds.id}, 'detection', {image_id}, {car}, 'box', 0, 0, -5, 5,"
                    " false, 'human', 'accepted', 'x', now(), now(), 1)"
                )
            )
    store.close()


def test_readd_is_noop_on_postgres(pg_url: str, make_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = make_images(4)
    store = open_store(pg_url)
    with store.session() as s:
        ds = create_dataset(s, "d", "classification", ["a"])
        assert add_images(s, ds, [paths[0].parent]).added == 4
        again = add_images(s, ds, [paths[0].parent])
        assert (again.added, again.duplicates) == (0, 4)
    store.close()
