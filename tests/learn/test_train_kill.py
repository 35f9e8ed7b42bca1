"""`annotator train` killed with SIGKILL while it writes its run, as a real process.

The dataset is big enough that writing the proposals takes many batches: 60 images labelled by
hand and 1,500 unlabeled ones, with made-up embeddings stored directly (three clusters, one per
class), so no backbone runs. A first train finishes; a second one, started as a subprocess, is
killed once the database shows it has committed at least one batch of its run and not finished
it. If the process got past the writing before the kill landed (a fast machine), the test tries
again, killing as soon as the run's row exists; if no try was killed in the middle, it fails.

What it proves about how train writes: not in one transaction but one transaction per batch of
proposals (`WRITE_BATCH` images). So a killed train leaves whole batches under a run that is
never marked finished: every unlabeled image still has exactly one pending proposal (the
finished run's or the killed run's), the killed run counts exactly the images it holds, the
newest finished run (what the labelling app's status bar reports) is still the first one, and
accepted labels are untouched. A re-run finishes and proposes for every unlabeled image. On
SQLite, `PRAGMA integrity_check` passes after the kill and after the re-run; the test runs on
PostgreSQL too (the server `make test` starts), where the server keeps its own files whole."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from annotator.learn.train import WRITE_BATCH, TrainOptions, train
from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.embeddings import write_embeddings
from annotator.store.models import Annotation, Dataset, Image, ModelRun, RunImage
from annotator.store.training import latest_trained_run
from tests.conftest import REPO, needs_postgres

CLASSES = ["red", "green", "blue"]
LABELLED = 20  # per class
UNLABELED = 1500
MODEL = "fake-backbone"
TRAINED = f"train:{MODEL}"
DEADLINE_S = 300.0  # for one try: the subprocess's start-up on a loaded machine included


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'test.db'}"


def _build(store: Store, tmp_path: Path) -> int:
    """The dataset: image rows (train reads no pixels), vectors, and the labels by hand."""
    rng = np.random.default_rng(0)
    count = LABELLED * len(CLASSES) + UNLABELED
    with store.session() as s:
        ds = create_dataset(s, "k", "classification", CLASSES, tmp_path)
        rows = [{"dataset_id": ds.id, "path": f"img{i:05d}.png", "sha256": f"{i:064x}",
                 "width": 40, "height": 30, "size_bytes": 100} for i in range(count)]  # fmt: skip
        s.execute(insert(Image), rows)
        s.commit()
        ids = list(s.scalars(select(Image.id).where(Image.dataset_id == ds.id).order_by(Image.id)))
        centres = rng.normal(size=(len(CLASSES), 16)) * 3
        truth = [k % len(CLASSES) for k in range(count)]
        vectors = centres[truth] + rng.normal(size=(count, 16))
        write_embeddings(s, MODEL, None, list(zip(ids, vectors.astype(np.float32), strict=True)))
        class_ids = {c.name: c.id for c in ds.classes}
        dataset_id = ds.id
    for image_id, k in zip(ids[: LABELLED * len(CLASSES)], truth, strict=False):
        with store.session() as s:
            labels.assign_class(s, image_id, class_ids[CLASSES[k]], "tester")
    return dataset_id


def _accepted(store: Store) -> list[tuple[int, int, int, str, str, int]]:
    """Every label a person gave or accepted, as the store holds it."""
    with store.session(readonly=True) as s:
        stmt = select(Annotation).where(Annotation.review != "pending").order_by(Annotation.id)
        return [(a.id, a.image_id, a.class_id, a.source, a.review, a.revision)
                for a in s.scalars(stmt)]  # fmt: skip


@dataclass
class RunState:
    id: int
    image_count: int
    finished: bool


def _newest_run(store: Store) -> RunState | None:
    with store.session(readonly=True) as s:  # never waits for, nor holds up, the writer
        stmt = select(ModelRun).where(ModelRun.model == TRAINED).order_by(ModelRun.id.desc())
        run = s.scalars(stmt.limit(1)).first()
        if run is None:
            return None
        return RunState(run.id, run.image_count, run.finished_at is not None)


@dataclass
class Train:
    """`annotator train` in a process of its own, its output going to files (a pipe nobody
    reads while it runs could fill and stall it)."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @classmethod
    def start(cls, db_url: str, folder: Path) -> Train:
        cmd = [sys.executable, "-m", "annotator", "--db", db_url, "train", "k", "--embeddings",
               MODEL, "--json"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out, err = folder / "train.out", folder / "train.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        return cls(proc, out, err)

    def wait(self) -> int:
        return self.proc.wait(timeout=DEADLINE_S)


def _kill_when(store: Store, db_url: str, after: int, min_images: int, folder: Path
               ) -> tuple[RunState | None, str]:  # fmt: skip
    """Start a train and SIGKILL it once a run newer than `after` has committed at least
    `min_images` images and is unfinished. Returns the run as the kill left it, or None when
    the process was not killed in the middle of writing (it finished, or wrote it all first),
    and what happened."""
    started = Train.start(db_url, folder)
    proc, deadline = started.proc, time.monotonic() + DEADLINE_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            run = _newest_run(store)
            writing = run is not None and run.id > after and not run.finished
            if writing and run is not None and run.image_count >= min_images:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait()
    assert time.monotonic() < deadline, "train neither wrote nor finished in time"
    if proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, started.err.read_text()
        return None, f"not killed: it finished first ({_newest_run(store)})"
    run = _newest_run(store)
    assert run is not None and run.id > after, "killed before it opened its run"
    if run.finished or run.image_count >= UNLABELED:
        return None, f"killed after it wrote its run ({run})"
    return run, f"killed while writing ({run})"


def _pending_by_image(store: Store, ds_id: int) -> dict[int, list[int]]:
    """Each unlabeled image -> the runs of its pending trained proposals."""
    with store.session(readonly=True) as s:
        unlabeled = s.scalars(
            select(Image.id).where(Image.dataset_id == ds_id, Image.status == "unlabeled")
        )
        out: dict[int, list[int]] = {i: [] for i in unlabeled}
        stmt = (
            select(Annotation.image_id, Annotation.run_id)
            .join(ModelRun, ModelRun.id == Annotation.run_id)
            .where(ModelRun.model == TRAINED, Annotation.review == "pending")
        )
        for image_id, run_id in s.execute(stmt):
            out[image_id].append(run_id)
    return out


def _check_integrity(db_url: str) -> None:
    """SQLite's own check of its file (PostgreSQL's server keeps its files itself)."""
    if db_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_train_killed_while_writing_its_run_leaves_the_store_intact(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    ds_id = _build(store, tmp_path)
    with store.session() as s:
        first = train(s, s.get_one(Dataset, ds_id), TrainOptions(embeddings=MODEL))
    assert first.proposed == UNLABELED
    accepted = _accepted(store)
    assert len(accepted) == LABELLED * len(CLASSES)
    killed, after, tries = None, first.run_id, []
    for min_images in (WRITE_BATCH, WRITE_BATCH, 0):  # the last try kills at an earlier point
        killed, outcome = _kill_when(store, db_url, after, min_images, tmp_path)
        tries.append(outcome)
        if killed is not None:
            break
        after = max(after, _newest_run(store).id)  # type: ignore[union-attr]
    if killed is None:
        pytest.fail(f"no try was killed while writing its run: {'; '.join(tries)}")
    assert 0 <= killed.image_count < UNLABELED and not killed.finished
    assert killed.image_count % WRITE_BATCH == 0  # whole batches only

    _check_integrity(db_url)
    assert _accepted(store) == accepted
    with store.session() as s:
        marks = s.scalar(select(func.count()).select_from(RunImage)
                         .where(RunImage.run_id == killed.id))  # fmt: skip
        proposals = s.scalar(select(func.count()).select_from(Annotation)
                             .where(Annotation.run_id == killed.id))  # fmt: skip
        assert marks == proposals == killed.image_count
        newest_finished = latest_trained_run(s, s.get_one(Dataset, ds_id))
        assert newest_finished is not None and newest_finished.id < killed.id
    pending = _pending_by_image(store, ds_id)
    assert len(pending) == UNLABELED
    assert all(len(runs) == 1 for runs in pending.values())  # the old proposal or the new one
    assert sum(runs == [killed.id] for runs in pending.values()) == killed.image_count

    rerun = Train.start(db_url, tmp_path)
    assert rerun.wait() == 0, rerun.err.read_text()
    report = json.loads(rerun.out.read_text())
    assert (report["proposed"], report["predictions"]) == (UNLABELED, UNLABELED)
    _check_integrity(db_url)
    assert _accepted(store) == accepted
    assert set(map(tuple, _pending_by_image(store, ds_id).values())) == {(report["run_id"],)}
    with store.session() as s:
        newest_finished = latest_trained_run(s, s.get_one(Dataset, ds_id))
        assert newest_finished is not None and newest_finished.id == report["run_id"]
