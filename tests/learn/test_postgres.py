"""embed and train on PostgreSQL (the server `make test` starts, ANNOTATOR_TEST_PG_URL): vectors
stored as bytea and read back, proposals written and replaced, and a SIGKILLed embed that a
re-run finishes. Every fixture's store is the test's own PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.store.db import Store
from annotator.store.embeddings import load_embeddings
from annotator.store.models import Annotation, Dataset, Image
from tests.conftest import needs_postgres
from tests.learn.conftest import COLOUR, MakeColoured, label_files
from tests.learn.test_embed import kill_and_rerun

pytestmark = needs_postgres


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


def test_embed_train_and_retrain_on_postgres(
    store: Store, coloured: MakeColoured, run_cli: Any
) -> None:
    ds_id, truth = coloured(4)
    label_files(store, ds_id, {f"{c}_{i:03d}.png": [c] for c in ("red", "green", "blue")
                               for i in range(2)})  # fmt: skip
    assert run_cli("embed", "c", "--model", COLOUR, "--workers", "0").exit_code == 0
    with store.session() as s:
        ids, matrix = load_embeddings(s, ds_id, COLOUR)
    assert (len(ids), matrix.shape, str(matrix.dtype)) == (12, (12, 3), "float32")
    runs = []
    for _ in range(2):
        result = run_cli("train", "c", "--embeddings", COLOUR, "--json")
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout)["run_id"])
    with store.session() as s:
        files = {i.id: Path(i.path).name for i in s.scalars(select(Image))}
        names = {c.id: c.name for c in s.get_one(Dataset, ds_id).classes}
        pending = [(files[a.image_id], a.class_id, a.run_id)
                   for a in s.scalars(select(Annotation).where(Annotation.review == "pending"))]  # fmt: skip
    assert len(pending) == 6 and {run for _, _, run in pending} == {runs[1]}
    assert all(truth[f] == names[c] for f, c, _ in pending)


def test_killed_embed_on_postgres(store: Store, coloured: MakeColoured, db_url: str) -> None:
    kill_and_rerun(store, coloured, db_url)
