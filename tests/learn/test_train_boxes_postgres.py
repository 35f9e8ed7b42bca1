"""Training on a detection dataset with the store on PostgreSQL (the server `make test` starts,
ANNOTATOR_TEST_PG_URL): the detector's boxes re-classed by a trained run, accepted with `space`,
and a retrain that replaces the pending proposals only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.store import edits
from annotator.store.db import Store
from annotator.store.models import Annotation
from tests.conftest import needs_postgres
from tests.learn.conftest import COLOUR
from tests.learn.test_train_boxes import (
    boxes,
    draw_truth,
    images_by_file,
    make_scenes,
    prelabel,
    scene_classes,
)

pytestmark = needs_postgres


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


def test_train_on_boxes_accept_and_retrain_on_postgres(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ds_id = make_scenes(store, tmp_path)
    draw_truth(store, ds_id, range(6))
    detector = prelabel(run_cli)
    runs = []
    for _ in range(2):
        result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["source_run"], report["proposed"], report["cv_accuracy"]) == (
            detector, 12 - 2 * len(runs), 1.0)  # fmt: skip
        runs.append(report["run_id"])
        if len(runs) == 1:  # `space` on scene 06
            with store.session() as s:
                image = images_by_file(store, ds_id)["scene_06"]
                pending = s.scalars(select(Annotation.id).where(
                    Annotation.image_id == image, Annotation.review == "pending"))  # fmt: skip
                edits.apply(s, edits.Review(tuple(pending), "accepted"), "tester", None)
    found = boxes(store, ds_id)
    assert [(c, r, run) for c, r, run, _ in found["scene_06"]] == [
        (name, "accepted", runs[0]) for name in scene_classes(6)]  # fmt: skip
    for k in range(7, 12):
        assert [(c, r, run) for c, r, run, _ in found[f"scene_{k:02d}"]] == [
            (name, "pending", runs[1]) for name in scene_classes(k)]  # fmt: skip
