"""Prelabelling on PostgreSQL: a run's predictions, their replacement and the evaluation, on the
server `make test` starts (ANNOTATOR_TEST_PG_URL); the test gets its own database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from annotator.annotation import Box
from annotator.prelabel.evaluate import evaluate
from annotator.prelabel.pipeline import PrelabelOptions, prelabel
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Image, RunImage
from tests.conftest import write_jpeg

BASE_URL = os.environ.get("ANNOTATOR_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not BASE_URL, reason="no PostgreSQL server (make test starts one)"),
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    assert BASE_URL
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(BASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_prelabel_replace_and_evaluate_on_postgres(pg_url: str, tmp_path: Path) -> None:
    for i in range(2):
        write_jpeg(tmp_path / "imgs" / f"{i}.jpg", (400, 300), (30 * i, 0, 0))
    store = open_store(pg_url)
    options = PrelabelOptions("tests.prelabel.stub_models:fixed_boxes", workers=0)
    with store.session() as s:
        ds = create_dataset(s, "street", "detection", ["cat", "dog"])
        add_images(s, ds, [tmp_path / "imgs"])
        first = prelabel(s, ds, options)
        image_id = min(s.scalars(select(Image.id)))
        cat = ds.classes[0].id
        labels.add_box(s, image_id, cat, Box(40, 80, 200, 200), "ann")
        forced = prelabel(s, ds, PrelabelOptions(options.model, workers=0, force=True))
        runs = {a.run_id for a in s.scalars(select(Annotation).where(Annotation.source == "model"))}
        assert runs == {forced.run_id} and first.run_id != forced.run_id
        assert len(list(s.scalars(select(RunImage)))) == 4
        result = evaluate(s, ds)
    store.close()
    assert result["images"] == 1
    ap = {c["class"]: c["ap"] for c in result["classes"]}
    assert ap["cat"] == pytest.approx(1.0) and ap["dog"] is None
