"""`annotator prelabel --worker`: several processes share one run through the database's lease
table, every image is prelabelled exactly once, and a worker killed with SIGKILL loses nothing
(its leases expire and another worker takes its images). On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.images import add_images
from annotator.store.models import Annotation, ModelRun, RunImage
from tests.conftest import REPO, needs_postgres, write_jpeg

TINY = "tests.prelabel.stub_models:tiny_classifier"
SLOW = "tests.prelabel.stub_models:slow_classifier"
ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    return str(request.getfixturevalue("pg_url"))


def _dataset(url: str, folder: Path, n: int) -> None:
    for i in range(n):
        write_jpeg(folder / f"{i:03d}.jpg", (32, 24), (i, 40, 90))
    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog", "bird"], folder)
        add_images(s, ds, [folder])
    store.close()


def _worker(url: str, model: str, ttl: str = "60") -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANNOTATOR_LEASE_TTL_S": ttl, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "annotator", "--db", url, "prelabel", "pets", "--model", model,
           "--batch-size", "2", "--workers", "0", "--worker"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _check_once(url: str, n: int) -> None:
    store = open_store(url)
    with store.session() as s:
        runs = list(s.scalars(select(ModelRun)))
        assert len(runs) == 1 and runs[0].finished_at is not None
        per_image = Counter(s.scalars(select(RunImage.image_id)))
        assert len(per_image) == n and set(per_image.values()) == {1}
        preds = Counter(s.scalars(select(Annotation.image_id).where(Annotation.source == "model")))
        assert len(preds) == n and set(preds.values()) == {1}  # one pending label per image
    store.close()


def test_two_workers_prelabel_every_image_exactly_once(url: str, tmp_path: Path) -> None:
    _dataset(url, tmp_path / "imgs", 40)
    workers = [_worker(url, TINY) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err.decode()
        assert b"Traceback" not in err
    _check_once(url, 40)


def test_a_killed_worker_loses_nothing(url: str, tmp_path: Path) -> None:
    _dataset(url, tmp_path / "imgs", 12)
    victim = _worker(url, SLOW, ttl="3")  # 8 images per claim, 1 s per claim
    store = open_store(url)
    deadline = time.monotonic() + 120
    with store.session() as s:  # wait until the victim holds a batch and has written one
        while not s.scalars(select(RunImage)).first() and time.monotonic() < deadline:
            time.sleep(0.2)
            s.rollback()
    store.close()
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    survivor = _worker(url, SLOW, ttl="3")
    _, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err.decode()
    _check_once(url, 12)


def test_a_worker_that_comes_after_the_run_finished_joins_it(url: str, tmp_path: Path) -> None:
    """Workers started apart: the late one finds the finished run and nothing left to do (one
    run, each image once), as when one machine is quicker to start than another."""
    _dataset(url, tmp_path / "imgs", 6)
    for _ in range(2):
        worker = _worker(url, TINY)
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()
    _check_once(url, 6)
