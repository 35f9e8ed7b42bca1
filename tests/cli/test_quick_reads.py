"""`stats` and `datasets` as a user reads them, on the quick read of a SQLite file (sqlite3, no
SQLAlchemy) and through the store: the same figures, computed as a person would count them,
the same words on both paths and on both engines, the same refusals of a database whose schema
is not this annotator's, and a read that neither waits for a writer nor changes the file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from annotator.main import cli
from annotator.store import quick
from annotator.store.datasets import create_dataset
from annotator.store.db import open_store
from annotator.store.models import (
    Annotation,
    HistoryEvent,
    Image,
    ImageTime,
    ModelRun,
    OverlapDone,
    OverlapImage,
)
from tests.conftest import needs_postgres

ENGINES = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPLITS = (None, "train", "val", "test", "train", "train", None, "val", "train", "test")
FLAGS = {"i03.jpg": "box outside the image", "i07.jpg": "unknown class 'fox'"}
EXPECTED: dict[str, Any] = {
    "dataset": "pets", "task": "classification", "root": None, "images": 10, "annotations": 5,
    "classes": {"cat": 3, "dog": 2, "bird": 0},
    "split": {"none": 2, "test": 2, "train": 4, "val": 2},
    "status": {"labeled": 3, "unlabeled": 7},
    "source": {"human": 5, "resnet": 2},
    "review": {"accepted": 3, "pending": 1, "rejected": 1, "vote": 2},
    "flagged": 2, "flags": FLAGS,
    "annotators": [
        {"annotator": "ann", "changes": 3, "images": 3, "labels_per_hour": 6.0,
         "median_seconds": None, "timed_images": 0},
        {"annotator": "bob", "changes": 2, "images": 1, "labels_per_hour": 171.4,
         "median_seconds": 21.0, "timed_images": 2},
    ],
    "overlap": {"marked": 2, "complete": 1, "started": 1},
}  # fmt: skip


def _fill(url: str) -> None:
    """Dataset `pets` (10 images: splits, statuses, two flagged; labels by people, a model run
    and overlap votes; history of people, an import and a model; seconds recorded for bob) and
    an empty detection dataset `cars`."""
    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog", "bird"])
        create_dataset(s, "cars", "detection", ["car"])
        cat, dog = ds.classes[0].id, ds.classes[1].id
        images = [Image(dataset_id=ds.id, path=f"i{i:02d}.jpg", sha256=f"{i:064x}", width=9,
                        height=9, size_bytes=1, split=split, flag=FLAGS.get(f"i{i:02d}.jpg"),
                        status="labeled" if i < 3 else "unlabeled")
                  for i, split in enumerate(SPLITS)]  # fmt: skip
        s.add_all(images)
        run = ModelRun(dataset_id=ds.id, model="resnet", params={})
        s.add(run)
        s.flush()
        ids = [im.id for im in images]

        def ann(i: int, cls: int, **kw: Any) -> Annotation:
            return Annotation(dataset_id=ds.id, task=ds.task, image_id=ids[i], class_id=cls,
                              kind="label", author="x", **kw)  # fmt: skip

        s.add_all([ann(0, cat), ann(1, dog), ann(2, cat),
                   ann(4, dog, source="model", run_id=run.id, review="pending"),
                   ann(5, cat, source="model", run_id=run.id, review="rejected"),
                   ann(8, cat, review="vote", layer="ann"), ann(8, dog, review="vote", layer="bob"),
                   OverlapImage(image_id=ids[8], dataset_id=ds.id, annotators=2, marked_by="lead"),
                   OverlapImage(image_id=ids[9], dataset_id=ds.id, annotators=2, marked_by="lead")])  # fmt: skip
        s.flush()
        s.add_all([OverlapDone(image_id=ids[8], annotator="ann"),
                   OverlapDone(image_id=ids[8], annotator="bob"),
                   OverlapDone(image_id=ids[9], annotator="ann"),
                   ImageTime(dataset_id=ds.id, image_id=ids[1], author="bob", seconds=12.0),
                   ImageTime(dataset_id=ds.id, image_id=ids[2], author="bob", seconds=30.0)])  # fmt: skip

        def event(who: str, i: int, minutes: float, kind: str = "do") -> HistoryEvent:
            return HistoryEvent(dataset_id=ds.id, image_id=ids[i], action="create", author=who,
                                created_at=T0 + timedelta(minutes=minutes), group_id=f"g{i}",
                                group_kind=kind)  # fmt: skip

        s.add_all([event("ann", 0, 0), event("ann", 1, 10), event("ann", 2, 30),
                   event("ann", 2, 40, kind="undo"), event("bob", 1, 0), event("bob", 1, 0.2),
                   event("ann (import)", 3, 1), event("model:resnet", 4, 2)])  # fmt: skip
        s.commit()
    store.close()


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("pg_url"))


def _run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args])


@pytest.fixture
def quick_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The files read by sqlite3 (the quick read), as they are opened."""
    opened: list[Path] = []
    connect = quick._connect

    def spy(path: Path) -> sqlite3.Connection | None:
        conn = connect(path)
        if conn is not None:
            opened.append(path)
        return conn

    monkeypatch.setattr(quick, "_connect", spy)
    yield opened


def test_stats_counts_what_a_person_would_count(url: str) -> None:
    _fill(url)
    result = _run(url, "stats", "pets", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == EXPECTED
    assert json.loads(_run(url, "stats", "cars", "--json").stdout)["classes"] == {"car": 0}


def test_datasets_lists_each_with_its_counts(url: str) -> None:
    _fill(url)
    text = _run(url, "datasets").stdout
    rows = [[cell.strip() for cell in line.split("│")[1:6]] for line in text.splitlines()
            if "│" in line]  # fmt: skip
    assert rows == [
        ["cars", "detection", "0", "0", "1"],
        ["pets", "classification", "10", "5", "3"],
    ]


COMMANDS = [("stats", "pets"), ("stats", "pets", "--json"), ("stats", "cars"), ("datasets",),
            ("stats", "nope")]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_the_quick_read_prints_what_the_store_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_reads: list[Path],
    args: tuple[str, ...],
) -> None:  # fmt: skip
    db = tmp_path / "t.db"
    _fill(f"sqlite:///{db}")
    fast = _run(str(db), *args)
    assert quick_reads == [db]
    monkeypatch.setattr(quick, "_connect", lambda path: None)
    slow = _run(str(db), *args)
    assert (fast.exit_code, fast.stdout, fast.stderr) == (slow.exit_code, slow.stdout, slow.stderr)
    assert "cat" in fast.output or "cars" in fast.output or "no dataset named 'nope'" in fast.output


@pytest.mark.parametrize("engine", [pytest.param("postgresql", marks=needs_postgres)])
def test_sqlite_and_postgresql_print_the_same(tmp_path: Path, engine: str,
                                              request: pytest.FixtureRequest) -> None:  # fmt: skip
    pg_url = str(request.getfixturevalue("pg_url"))
    lite = f"sqlite:///{tmp_path / 't.db'}"
    for url in (lite, pg_url):
        _fill(url)
    for args in COMMANDS:
        assert _run(lite, *args).output == _run(pg_url, *args).output, args


def _set_revision(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


SCHEMAS = [
    ("UPDATE alembic_version SET version_num = '0001'", "at revision 0001, this annotator needs"),
    ("UPDATE alembic_version SET version_num = 'f00d'", "written by a newer annotator"),
    ("DROP TABLE alembic_version", "is not an annotator database"),
    ("DELETE FROM alembic_version", "is not an annotator database"),
]


@pytest.mark.parametrize(("sql", "says"), SCHEMAS, ids=[s[1] for s in SCHEMAS])
@pytest.mark.parametrize("args", [("stats", "pets"), ("datasets",)], ids=" ".join)
def test_a_schema_not_this_annotators_is_refused_as_the_store_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str, says: str, args: tuple[str, ...]
) -> None:
    db = tmp_path / "t.db"
    _fill(str(db))
    _set_revision(db, sql)
    fast = _run(str(db), *args)
    monkeypatch.setattr(quick, "_connect", lambda path: None)
    slow = _run(str(db), *args)
    assert fast.exit_code == 2 and says in fast.stderr, fast.output
    assert fast.stderr == slow.stderr and fast.stderr.count("\n") == 1
    if "needs" in says:
        assert fast.stderr.rstrip().endswith("run: annotator db upgrade")


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_a_file_that_is_no_annotator_database_is_one_error_line(
    tmp_path: Path, content: bytes
) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(content)
    result = _run(str(db), "stats", "pets")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: ") and str(db) in result.stderr
    assert db.read_bytes() == content


def test_a_read_neither_waits_for_a_writer_nor_changes_the_file(
    tmp_path: Path, quick_reads: list[Path]
) -> None:
    db = tmp_path / "t.db"
    _fill(str(db))
    before = db.read_bytes()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO datasets (name, task, created_at) VALUES ('zoo', 'detection', "
                   "'2026-01-01 00:00:00')")  # fmt: skip
    listing = _run(str(db), "datasets")
    writer.execute("ROLLBACK")
    writer.close()
    assert listing.exit_code == 0 and "pets" in listing.stdout and "zoo" not in listing.stdout
    assert quick_reads == [db]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.db"]
    assert db.read_bytes() == before


def test_an_absent_database_is_refused_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    result = _run(f"sqlite:///{db}", "datasets")
    assert result.exit_code == 2 and f"no database at {db}" in result.stderr
    assert not db.exists()
