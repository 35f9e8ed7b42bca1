"""Prelabelling on PostgreSQL: a run's predictions, their replacement and the evaluation, on the
server `make test` starts (ANNOTATOR_TEST_PG_URL); the test gets its own database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.annotation import Box
from annotator.prelabel.evaluate import evaluate
from annotator.prelabel.pipeline import PrelabelOptions, prelabel
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Image, RunImage
from tests.conftest import needs_postgres, write_jpeg

pytestmark = needs_postgres


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
