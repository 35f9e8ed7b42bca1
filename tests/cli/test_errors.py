"""Ordinary mistakes as a user makes them: each ends in one `error:` line naming the thing and
the reason, exit code 2, no traceback, and nothing half-written (no database file created by a
read, no partial export, the import's failed batch rolled back)."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE_DATA, write_jpeg

Run = Callable[..., Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a database with dataset `p` (4 images, split), a file that is not a
    database, and the bad inputs the cases below name."""
    from click.testing import CliRunner

    from annotator.main import cli

    root = tmp_path_factory.mktemp("world")
    for i in range(4):
        write_jpeg(root / "imgs" / f"{i}.jpg", color=(i * 50, 10, 10))
    db = str(root / "t.db")
    for args in (("init", "p", "--task", "classification", "--classes", "a,b"),
                 ("add", "p", str(root / "imgs")), ("split", "p")):  # fmt: skip
        result = CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    (root / "notdb.txt").write_text("this is a text file, not a database\n" * 50)
    yolo = root / "yolo"
    write_jpeg(yolo / "images" / "train" / "a.jpg")
    (yolo / "labels" / "train").mkdir(parents=True)
    (yolo / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (yolo / "data.yaml").write_bytes(b"names:\n  0: caf\xe9\n")
    (root / "latin1.yaml").write_bytes(b"name: caf\xe9\ntask: detection\n")
    return root


# (arguments after `annotator`, a fragment of the one error line); {root} is the world folder
CASES = [
    (["--db", "{root}/notdb.txt", "stats", "p"], "{root}/notdb.txt: file is not a database"),
    (["--db", "{root}/notdb.txt", "db", "current"], "{root}/notdb.txt: file is not a database"),
    (["--db", "{root}/notdb.txt", "db", "upgrade"], "{root}/notdb.txt: file is not a database"),
    (["--db", "nosuchdialect://x", "stats", "p"], "unknown kind of database 'nosuchdialect'"),
    (["--db", "postgresql+psycopg://u:pw@localhost:99999999/d", "stats", "p"],
     "port 99999999 is out of range"),
    (["--db", "postgresql+psycopg://u:pw@localhost:abc/d", "stats", "p"],
     "the port is not a number"),
    (["init", "q", "--task", "detection", "--classes", "a,b,a"], "duplicate class names: a"),
    (["init", "--config", "{root}/latin1.yaml"], "{root}/latin1.yaml: not UTF-8 text"),
    (["import", "yolo", "{root}/yolo", "-d", "y"], "{root}/yolo/data.yaml: not UTF-8 text"),
    (["export", "coco", "p", "/proc/out", "--media", "none"],
     "cannot write the export to /proc/out"),
    (["--db", "{root}/absent.db", "stats", "p"], "no database at {root}/absent.db"),
    (["--db", "{root}/absent.db", "datasets"], "no database at {root}/absent.db"),
    (["--db", "{root}/absent.db", "db", "current"], "no database at {root}/absent.db"),
    (["label", "p"], "annotator label needs a terminal"),
    (["prelabel", "p", "--model", "os:system"], "--model os:system: not a model factory"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "fragment"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_mistake_is_one_error_line(world: Path, args: list[str], fragment: str) -> None:
    argv = [a.format(root=world) for a in args]
    if "--db" not in argv:
        argv = ["--db", str(world / "t.db"), *argv]
    proc = subprocess.run(
        [sys.executable, "-m", "annotator", *argv], cwd=world, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert fragment.format(root=world) in lines[0]
    assert ":pw@" not in proc.stderr  # a password never shows
    assert not (world / "absent.db").exists()  # a read never creates a database


@pytest.fixture
def labelled(run_cli: Run, tmp_path: Path) -> Path:
    """Dataset `p` with a few split images in the test's database."""
    for i in range(3):
        write_jpeg(tmp_path / "imgs" / f"{i}.jpg", color=(10, i * 60, 10))
    for args in (("init", "p", "--task", "classification", "--classes", "a"),
                 ("add", "p", str(tmp_path / "imgs")), ("split", "p")):  # fmt: skip
        assert run_cli(*args).exit_code == 0
    return tmp_path


def _one_error(result: Any, fragment: str) -> None:
    """Exit 2 and one error line holding `fragment` (after a progress bar, when one ran)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert result.stderr.rstrip().endswith(errors[0])  # the last word


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_export_onto_a_full_disk_leaves_nothing(
    run_cli: Run, labelled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.formats import exporting

    def full(folder: Path, *_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "manifest.json"))

    monkeypatch.setattr(exporting, "write_manifest", full)
    out = labelled / "exports"
    out.mkdir()
    result = run_cli("export", "coco", "p", str(out / "ds"), "--media", "copy")
    _one_error(result, f"cannot write the export to {out / 'ds'}: No space left on device")
    assert f"({out / 'ds' / 'manifest.json'})" in result.stderr  # named where it would go
    assert not (out / "ds").exists() and _leftovers(out) == []


def test_export_into_a_folder_it_cannot_write(
    run_cli: Run, labelled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.formats import exporting

    def refused(**kwargs: Any) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs["dir"])

    monkeypatch.setattr(exporting.tempfile, "mkdtemp", refused)
    result = run_cli("export", "yolo", "p", str(labelled / "ro" / "ds"))
    _one_error(result, f"cannot write the export to {labelled / 'ro' / 'ds'}: Permission denied")


def test_two_exports_into_one_new_folder_never_both_win(
    run_cli: Run, labelled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second export finishes while the first is still writing: the first must fail
    instead of replacing what the second wrote."""
    from annotator.formats import exporting

    dest = labelled / "ds"
    original = exporting.write_manifest
    inner: list[Any] = []

    def meanwhile(folder: Path, manifest: Any, *listed: Any) -> None:
        if not inner:  # the first export, about to finish: a second one runs to its end
            inner.append(None)
            inner[0] = run_cli("export", "imagefolder", "p", str(dest), "--media", "none")
        original(folder, manifest, *listed)

    monkeypatch.setattr(exporting, "write_manifest", meanwhile)
    result = run_cli("export", "coco", "p", str(dest), "--media", "none")
    assert inner[0].exit_code == 0, inner[0].output
    _one_error(result, f"{dest} was written by another export meanwhile: pass --overwrite")
    assert '"format": "imagefolder"' in (dest / "manifest.json").read_text()
    assert _leftovers(labelled) == []
    again = run_cli("export", "coco", "p", str(dest), "--media", "none", "--overwrite")
    assert again.exit_code == 0 and '"format": "coco"' in (dest / "manifest.json").read_text()


def test_the_store_filling_up_during_an_import(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's max_page_count makes the database 'full' part way through the import: one error
    line, the failed batch rolled back, the database whole, and a re-run completes it."""
    from annotator.store import db as dbmod

    assert run_cli("init", "other", "--task", "detection").exit_code == 0
    path = tmp_path / "test.db"
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    pragmas = dbmod._sqlite_pragmas

    def small_disk(conn: sqlite3.Connection, record: Any) -> None:
        pragmas(conn, record)
        conn.execute(f"PRAGMA max_page_count={pages}")  # not one page more: the import needs 3

    monkeypatch.setattr(dbmod, "_sqlite_pragmas", small_disk)
    args = ("import", "coco", str(SAMPLE_DATA / "annotations" / "detection.json"), "--dataset",
            "scenes", "--images", str(SAMPLE_DATA / "images"))  # fmt: skip
    result = run_cli(*args)
    _one_error(result, f"database {path}: database or disk is full: the last change was rolled")
    monkeypatch.setattr(dbmod, "_sqlite_pragmas", pragmas)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.stderr


def test_label_on_an_absent_database_creates_none(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.tui import command

    monkeypatch.setattr(command, "_require_terminal", lambda: None)  # as if in a terminal
    result = run_cli("label", "pets")
    _one_error(result, f"no database at {tmp_path / 'test.db'}")
    assert not (tmp_path / "test.db").exists()


def test_corrupt_exif_warning_names_the_file(tmp_path: Path) -> None:
    from tests.store.test_add_images import corrupt_exif_jpeg

    bad = corrupt_exif_jpeg(tmp_path / "imgs" / "odd.jpg")
    write_jpeg(tmp_path / "imgs" / "fine.jpg")
    db = str(tmp_path / "x.db")
    for args in (["init", "p", "--task", "classification"], ["add", "p", str(bad.parent)]):
        proc = subprocess.run([sys.executable, "-m", "annotator", "--db", db, *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert f"warning: {bad}: Corrupt EXIF data" in proc.stderr
    assert "added 2," in proc.stdout
    assert "Traceback" not in proc.stderr and "UserWarning" not in proc.stderr


def test_add_reports_a_directory_symlink_loop(run_cli: Run, tmp_path: Path) -> None:
    write_jpeg(tmp_path / "photos" / "sub" / "a.jpg")
    os.symlink("..", tmp_path / "photos" / "sub" / "up")
    assert run_cli("init", "p", "--task", "classification").exit_code == 0
    result = run_cli("add", "p", str(tmp_path / "photos"))
    assert result.exit_code == 0 and "added 1, duplicates 0, rejected 1" in result.stdout
    loop = tmp_path / "photos" / "sub" / "up"
    assert f"rejected {loop}: directory symlink loop (leads back to {loop.parent.parent})" in (
        result.stderr
    )


def test_what_the_machine_refuses_is_one_line_and_a_bug_keeps_its_traceback() -> None:
    from annotator.main import user_error

    full = user_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x.json"), None)
    assert full is not None and full.message == "/data/x.json: No space left on device"
    denied = user_error(PermissionError(errno.EACCES, os.strerror(errno.EACCES)), None)
    assert denied is not None and denied.message == "Permission denied"
    assert user_error(ValueError("a bug"), None) is None
    assert user_error(FileNotFoundError(errno.ENOENT, "gone", "/x"), None) is None


def test_a_database_error_is_one_line_unless_it_is_a_bug(tmp_path: Path) -> None:
    from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

    from annotator.store.db import database_error

    url = f"sqlite:///{tmp_path / 'x.db'}"
    full = database_error(
        url, OperationalError("INSERT", {}, Exception("database or disk is full"))
    )
    assert full is not None and full.message.startswith(f"database {tmp_path / 'x.db'}: database")
    not_db = database_error(url, DatabaseError("SELECT", {}, Exception("file is not a database")))
    assert not_db is not None and "file is not a database" in not_db.message
    bug = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: images.path"))
    assert database_error(url, bug) is None
