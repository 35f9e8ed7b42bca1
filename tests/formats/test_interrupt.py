"""Killed half-way (SIGKILL): an import leaves whole batches (every stored image with all its
labels and their history) and a re-run completes it without duplicates; an export leaves no
half-written DEST and an existing one untouched."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.formats.conftest import write_coco

N_IMAGES = 600
BOXES = 3
BATCH = 25

# the CLI in a child process, with small batches and a pause in the slow step, to be killed
CHILD = """
import sys, time
import annotator.store.bulk as bulk
import annotator.formats.media as media
bulk.BATCH = {batch}
write, place = bulk._Writer.write, media.MediaPlacer.place
def slow_write(self, rows, report):
    time.sleep(0.02)
    write(self, rows, report)
def slow_place(self, sample, target):
    time.sleep(0.002)
    place(self, sample, target)
bulk._Writer.write, media.MediaPlacer.place = slow_write, slow_place
from annotator.main import main
main(sys.argv[1:])
"""


def _source(folder: Path) -> Path:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(N_IMAGES):
        img = Image.new("RGB", (24, 16), (i % 200, 30, 60))
        for bit in range(10):
            value = 255 if (i >> bit) & 1 else 0
            img.paste((value, value, value), ((bit % 5) * 4, (bit // 5) * 4, (bit % 5) * 4 + 3,
                                              (bit // 5) * 4 + 3))  # fmt: skip
        img.save(folder / "images" / f"{i:04d}.jpg", quality=80)
        images.append({"id": i + 1, "file_name": f"{i:04d}.jpg", "width": 24, "height": 16})
        anns += [{"id": i * BOXES + b + 1, "image_id": i + 1, "category_id": 1 + b % 2,
                  "bbox": [b, b, 5, 5]} for b in range(BOXES)]  # fmt: skip
    return write_coco(folder / "annotations" / "instances_train.json", images, anns)


def _child(db: Path, *args: str) -> subprocess.Popen[bytes]:
    code = CHILD.format(batch=BATCH)
    return subprocess.Popen([sys.executable, "-c", code, "--db", str(db), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the child finished before it could be interrupted"
        assert time.monotonic() < deadline, "the child never got going"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def _state(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "integrity": one("PRAGMA integrity_check"),
            "images": one("SELECT count(*) FROM images"),
            "distinct": one("SELECT count(DISTINCT sha256) FROM images"),
            "annotations": one("SELECT count(*) FROM annotations"),
            "history": one("SELECT count(*) FROM history WHERE action = 'create'"),
            "bare": one("SELECT count(*) FROM images i WHERE NOT EXISTS "
                        "(SELECT 1 FROM annotations a WHERE a.image_id = i.id)"),
            "classes": one("SELECT count(*) FROM classes"),
        }  # fmt: skip


@pytest.mark.slow
def test_killed_import_then_rerun(tmp_path: Path, run_cli: Callable[..., Any], db_url: str) -> None:
    source = _source(tmp_path / "src")
    db = Path(db_url.removeprefix("sqlite:///"))
    proc = _child(db, "import", "coco", str(source), "--dataset", "big")
    _kill_when(proc, lambda: _count(db, "SELECT count(*) FROM images") >= 4 * BATCH)
    state = _state(db)
    assert state["integrity"] == "ok"
    assert 0 < state["images"] < N_IMAGES and state["images"] % BATCH == 0  # whole batches
    assert state["annotations"] == state["history"] == BOXES * state["images"]
    assert state["bare"] == 0 and state["classes"] == 2
    result = run_cli("import", "coco", str(source), "--dataset", "big")
    assert result.exit_code == 0, result.stderr
    assert f"{state['images']} images already in the dataset (skipped)" in result.stdout
    final = _state(db)
    assert final == {"integrity": "ok", "images": N_IMAGES, "distinct": N_IMAGES,
                     "annotations": BOXES * N_IMAGES, "history": BOXES * N_IMAGES, "bare": 0,
                     "classes": 2}  # fmt: skip

    dest = tmp_path / "export"
    partial = lambda: any(p.name.startswith(".export.") for p in tmp_path.iterdir())  # noqa: E731
    proc = _child(db, "export", "yolo", "big", str(dest))
    _kill_when(proc, lambda: partial() and _exported(tmp_path) > 50)
    assert not dest.exists()
    dest.mkdir()
    (dest / "v1.txt").write_text("the previous export")
    proc = _child(db, "export", "yolo", "big", str(dest), "--overwrite")
    _kill_when(proc, lambda: _exported(tmp_path) > 50)
    assert [p.name for p in dest.iterdir()] == ["v1.txt"]
    assert run_cli("export", "yolo", "big", str(dest), "--overwrite").exit_code == 0
    assert len(list((dest / "labels" / "train").iterdir())) == N_IMAGES


def _exported(folder: Path) -> int:
    """Images already placed in a partial export folder beside DEST."""
    total = 0
    for partial in folder.glob(".export.*"):
        images = partial / "images" / "train"
        total += len(os.listdir(images)) if images.is_dir() else 0
    return total
