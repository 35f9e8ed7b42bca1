"""Several programs writing one SQLite file at once: three people labelling through the TUI's
use cases, an import, a prelabel run, two `add`s, a `split` beside an import. Writers wait their
turn: no "database is locked", no traceback, every edit and every image accounted for.

Each program is a process of its own. The assertions are on errors and on the final data, never
on timing (the suite runs on a loaded two-core machine)."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from annotator.errors import AnnotatorError, DatabaseBusyError
from annotator.store import busy, db
from annotator.store.datasets import create_dataset, get_dataset, list_datasets
from annotator.store.db import Store, open_store
from annotator.store.images import add_images, resolve_path
from annotator.store.models import Annotation, Dataset, Image, ModelRun
from tests.conftest import REPO, write_jpeg
from tests.formats.conftest import write_coco

EDITORS = 3
MIN_EDITS = 8  # each editor keeps going at least this long, whatever the others do
DEADLINE_S = 120.0
THINK_S = 0.02  # a person's pause between edits (and the import's share of two cores)
MAX_ERRORS = 20  # an editor that keeps failing stops early: the errors are the test's answer  # a hung writer fails the test instead of hanging the suite
EDITOR = "import sys; from tests.store.test_concurrency import edit_loop; edit_loop(*sys.argv[1:])"
STUB_MODEL = "tests.prelabel.stub_models:fixed_boxes"


def _lock(path: str) -> sqlite3.Connection:
    """Another program's connection, holding the write lock until it commits."""
    other = sqlite3.connect(path, isolation_level=None, timeout=60)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_writer_that_read_first_waits_for_the_other_writer(store: Store, db_url: str) -> None:
    """The case that failed with "database is locked": read, someone else writes, then write."""
    with store.session() as s:
        create_dataset(s, "pets", "detection", ["cat"])
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=60,
                            check_same_thread=False)  # fmt: skip
    theirs = threading.Thread(target=other.executescript, args=(
        "BEGIN IMMEDIATE; UPDATE datasets SET root = 'theirs'; COMMIT;",))  # fmt: skip
    with store.session() as s:
        ds = get_dataset(s, "pets")  # this transaction holds the write lock from here
        theirs.start()
        theirs.join(timeout=1.0)  # their write waits for ours (without the lock, it went in)
        ds.root = "mine"
        s.commit()
    theirs.join(timeout=DEADLINE_S)
    assert not theirs.is_alive()
    other.close()
    with store.session(readonly=True) as s:
        assert get_dataset(s, "pets").root == "theirs"  # it waited, then wrote after us


def test_reading_never_waits_for_a_writer(store: Store, db_url: str) -> None:
    with store.session() as s:
        create_dataset(s, "pets", "detection", ["cat"])
    other = _lock(db_url.removeprefix("sqlite:///"))
    other.execute("UPDATE datasets SET root = 'not yet committed'")
    try:
        with store.session(readonly=True) as s:
            assert [d.root for d in list_datasets(s)] == [None]
    finally:
        other.rollback()
        other.close()


def test_a_reading_phase_takes_no_lock_and_the_next_write_does(store: Store, db_url: str) -> None:
    """`reading(session)`: a long read (push, pull) keeps no writer waiting; its commit ends it."""
    path = db_url.removeprefix("sqlite:///")
    with store.session() as s:
        ds = create_dataset(s, "pets", "detection", ["cat"])
        db.reading(s)
        other = _lock(path)  # another writer gets the lock while this session reads
        try:
            assert get_dataset(s, "pets").root is None
        finally:
            other.rollback()
        s.commit()
        ds.root = "/data/pets"
        s.commit()
        other.execute("BEGIN IMMEDIATE")  # would wait (60 s) if this session still held the lock
        other.rollback()
        other.close()
    with store.session(readonly=True) as s:
        assert get_dataset(s, "pets").root == "/data/pets"


def test_a_second_write_session_in_one_thread_is_refused_at_once(store: Store) -> None:
    """It would wait for the first (which waits for it) until every try ran out."""
    with store.session() as s:
        create_dataset(s, "pets", "detection", ["cat"])
        get_dataset(s, "pets")  # holds the write lock
        with pytest.raises(RuntimeError, match="already writes to"), store.session() as inner:
            get_dataset(inner, "pets")
        with store.session(readonly=True) as inner:  # reading beside it is fine
            assert get_dataset(inner, "pets").name == "pets"
        s.commit()
    with store.session() as s:  # once the first is over, writing works again
        get_dataset(s, "pets").root = "/data"
        s.commit()


def test_a_read_only_session_refuses_to_write(store: Store) -> None:
    with store.session() as s:
        create_dataset(s, "pets", "detection", ["cat"])
    with (
        pytest.raises(AnnotatorError, match="read-only session"),
        store.session(readonly=True) as s,
    ):
        get_dataset(s, "pets").root = "changed"
        s.flush()


def test_a_lock_held_past_every_try_is_one_clear_error(
    run_cli: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("init", "pets", "--task", "detection", "--classes", "cat").exit_code == 0
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(busy, "FIRST_PAUSE_S", 0.01)
    other = _lock(db_url.removeprefix("sqlite:///"))
    try:
        result = run_cli("classes", "pets", "--add", "dog")
    finally:
        other.rollback()
        other.close()
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the database stayed busy while waiting to write")
    assert "Traceback" not in result.stderr
    assert run_cli("classes", "pets", "--add", "dog").exit_code == 0  # once free, it works


def test_a_busy_step_is_retried_with_growing_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(busy.time, "sleep", slept.append)
    answers = [sqlite3.OperationalError("database is locked")] * 2 + ["done"]

    def step() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert busy.retry_busy(step, "testing", tries=3) == "done"
    assert len(slept) == 2 and slept[0] < slept[1] <= busy.LONGEST_PAUSE_S * 1.5
    with pytest.raises(DatabaseBusyError, match=r"stayed busy while testing \(3 tries\)"):
        busy.retry_busy(busy_step, "testing", tries=3)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        busy.retry_busy(_no_table, "testing")  # only "busy" is retried


def busy_step() -> None:
    raise sqlite3.OperationalError("database is locked")


def _no_table() -> None:
    raise sqlite3.OperationalError("no such table: x")


def edit_loop(db: str, author: str, out: str, stop: str) -> None:
    """One person labelling dataset `pets` as the TUI does (a view read, then a change sent with
    the revision it showed), until the file `stop` exists. Writes what happened to `out`."""
    from annotator.annotation import Box
    from annotator.errors import ConflictError
    from annotator.store import edits
    from annotator.tui.backend import Backend, Change

    store = open_store(db, create=False)
    backend = Backend(store, author)
    info = backend.dataset("pets")
    with store.session(readonly=True) as s:
        ids = list(s.scalars(select(Image.id).where(Image.dataset_id == info.id)))
    rng = random.Random(author)
    seen: dict[str, Any] = {"added": 0, "deleted": 0, "conflicts": 0, "errors": []}
    mine: set[int] = set()
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S and len(seen["errors"]) < MAX_ERRORS:
        if Path(stop).exists() and seen["added"] >= MIN_EDITS:
            break
        time.sleep(THINK_S)
        image_id = rng.choice(ids)
        try:
            _one_edit(backend, image_id, info.classes[0].id, mine, rng, seen, Box, Change, edits)
        except ConflictError:  # someone else changed the image: the screen shows it afresh
            seen["conflicts"] += 1
            backend.forget(image_id)
        except Exception as exc:  # every other failure is what the test counts
            seen["errors"].append(f"{type(exc).__name__}: {exc}")
    store.close()
    Path(out).write_text(json.dumps(seen))


def _one_edit(backend: Any, image_id: int, class_id: int, mine: set[int], rng: random.Random,
              seen: dict[str, Any], box: Any, change: Any, edits: Any) -> None:  # fmt: skip
    """Delete one of my boxes on the image (one time in four), else draw a new one."""
    view = backend.view(image_id)
    shown = {label.id for label in view.labels}
    if shown & mine and rng.random() < 0.25:
        gone = min(shown & mine)
        backend.apply(change(image_id, view.revision, "delete", edits.Delete(gone)))
        mine.discard(gone)
        seen["deleted"] += 1
        return
    drawn = box(rng.uniform(0, 20), rng.uniform(0, 20), 10.0, 8.0)
    after = backend.apply(
        change(image_id, view.revision, "box", edits.AddBox(image_id, class_id, drawn))
    )
    # nobody changed the image between the view and this edit (else: ConflictError), so the
    # oldest label the view did not show is this edit's box
    mine.add(min({label.id for label in after.labels} - shown))
    seen["added"] += 1


def _cli(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "annotator", "--db", str(db), *args], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finished(proc: subprocess.Popen[str], what: str) -> str:
    """The program's stdout, after checking it ended well and said nothing of a lock."""
    out, errors = proc.communicate(timeout=DEADLINE_S * 2)
    assert proc.returncode == 0, f"{what} failed:\n{errors}"
    assert "Traceback" not in errors and "locked" not in errors, f"{what}:\n{errors}"
    return out


def _images(folder: Path, n: int, shade: int = 0) -> Path:
    for i in range(n):
        write_jpeg(folder / f"img{i:04d}.jpg", (48, 40), (i % 256, (i // 256) * 40 + shade, 90))
    return folder


def _coco(root: Path, n: int) -> Path:
    """A COCO file with `n` fresh 48x40 images, one cat box on every other one."""
    _images(root / "images", n, shade=7)
    images = [{"id": i + 1, "file_name": f"img{i:04d}.jpg", "width": 48, "height": 40}
              for i in range(n)]  # fmt: skip
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2, 2, 20, 16],
             "area": 320, "iscrowd": 0} for i in range(0, n, 2)]  # fmt: skip
    return write_coco(root / "annotations" / "instances_train.json", images, anns)


def _new_store(db: Path, name: str, folder: Path | None) -> None:
    store = open_store(str(db))
    with store.session() as s:
        ds = create_dataset(s, name, "detection", ["cat", "dog"], folder)
        if folder is not None:
            add_images(s, ds, [folder])
    store.close()


def _count(store: Store, stmt: Any) -> int:
    with store.session(readonly=True) as s:
        return int(s.scalar(stmt) or 0)


def _in(dataset: str) -> Any:
    return Image.dataset_id == select(Dataset.id).where(Dataset.name == dataset).scalar_subquery()


def _editors(db: Path, tmp_path: Path) -> list[tuple[str, Path, subprocess.Popen[str]]]:
    started = []
    for n in range(EDITORS):
        author, out = f"editor{n}", tmp_path / f"editor{n}.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", EDITOR, str(db), author, str(out), str(tmp_path / "stop")],
            cwd=REPO, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append((author, out, proc))
    return started


def test_editors_an_import_and_a_prelabel_run_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    _new_store(db, "pets", _images(tmp_path / "pets", 24))
    editors = _editors(db, tmp_path)
    importer = _cli(db, "import", "coco", str(_coco(tmp_path / "src", 200)), "-d", "imported")
    prelabel = _cli(db, "prelabel", "pets", "--model", STUB_MODEL, "--batch-size", "2",
                    "--workers", "0", "--device", "cpu")  # fmt: skip
    _finished(importer, "import")
    _finished(prelabel, "prelabel")
    (tmp_path / "stop").touch()
    results = {}
    for author, out, proc in editors:
        _, errors = proc.communicate(timeout=DEADLINE_S * 2)
        assert proc.returncode == 0, errors
        results[author] = json.loads(out.read_text())

    assert {a: r["errors"] for a, r in results.items()} == {a: [] for a in results}
    store = open_store(str(db), create=False)
    try:
        for author, seen in results.items():
            boxes = select(func.count()).select_from(Annotation).where(Annotation.author == author)
            assert seen["added"] >= MIN_EDITS
            assert _count(store, boxes) == seen["added"] - seen["deleted"], author  # none lost
        assert _count(store, select(func.count()).where(_in("imported"))) == 200
        labelled = select(func.count()).select_from(Annotation).join(Image).where(_in("imported"))
        assert _count(store, labelled) == 100
        runs = select(func.count()).where(ModelRun.finished_at.is_not(None),
                                          ModelRun.image_count == 24)  # fmt: skip
        assert _count(store, runs) == 1
    finally:
        store.close()


def _run_together(*procs: tuple[subprocess.Popen[str], str]) -> list[str]:
    return [_finished(proc, what) for proc, what in procs]


def test_two_adds_at_once_both_complete(tmp_path: Path) -> None:
    """Both into a dataset with no root yet: each sets it when it starts, so the second must see
    the first's (else its stored paths point at the wrong files)."""
    db = tmp_path / "adds.db"
    _new_store(db, "pets", None)
    first, second = _images(tmp_path / "a", 600), _images(tmp_path / "b", 600, shade=3)
    outs = _run_together((_cli(db, "add", "pets", str(first)), "add a"),
                         (_cli(db, "add", "pets", str(second)), "add b"))  # fmt: skip
    assert all(out.startswith("added 600, duplicates 0, rejected 0") for out in outs), outs
    store = open_store(str(db), create=False)
    try:
        with store.session(readonly=True) as s:
            ds = get_dataset(s, "pets")
            files = {resolve_path(ds, p) for p in s.scalars(select(Image.path))}
        assert files == {*first.iterdir(), *second.iterdir()}
    finally:
        store.close()


def test_a_split_beside_an_import_both_complete(tmp_path: Path) -> None:
    db = tmp_path / "split.db"
    _new_store(db, "pets", _images(tmp_path / "pets", 400))
    coco = _coco(tmp_path / "src", 600)
    outs: Sequence[str] = _run_together(
        (_cli(db, "import", "coco", str(coco), "-d", "pets"), "import"),
        (_cli(db, "split", "pets", "--seed", "3"), "split"),
    )  # fmt: skip
    assert outs[1].startswith("assigned ")
    store = open_store(str(db), create=False)
    try:
        assert _count(store, select(func.count()).select_from(Image)) == 1000
        no_split = select(func.count()).where(Image.split.is_(None), Image.id <= 400)
        assert _count(store, no_split) == 0  # the images there before the split all got one
    finally:
        store.close()
