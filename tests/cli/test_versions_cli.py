"""Versions as a user runs them: snapshot, snapshots, diff, export --at, restore, merge, rm, mv
(SQLite, and the main flow on PostgreSQL), and kill -9 during merge and restore."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from annotator.annotation import Box
from annotator.main import cli
from annotator.store import labels as L
from annotator.store.datasets import get_dataset
from annotator.store.db import open_store
from annotator.store.models import Annotation, Dataset, Image
from tests.conftest import needs_postgres


def runner(url: str) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)

    return run


def labelled(url: str, make_images: Callable[..., list[Path]], name: str = "pets") -> Any:
    """A detection dataset of 6 images, 2 boxes each, split; returns the CLI runner."""
    run = runner(url)
    assert run("init", name, "--task", "detection", "--classes", "cat,dog").exit_code == 0
    paths = make_images(6, folder=name)
    assert run("add", name, str(paths[0].parent)).exit_code == 0
    store = open_store(url)
    with store.session() as s:
        ds = get_dataset(s, name)
        cat, dog = (c.id for c in ds.classes)
        for image in s.scalars(select(Image).where(Image.dataset_id == ds.id)).all():
            L.add_box(s, image.id, cat, Box(1, 1, 20, 20), "tester")
            L.add_box(s, image.id, dog, Box(30, 10, 10, 10), "tester")
    store.close()
    assert run("split", name, "--ratios", "train=0.5,val=0.5").exit_code == 0
    return run


def edit(url: str, name: str = "pets") -> None:
    store = open_store(url)
    with store.session() as s:
        ds = get_dataset(s, name)
        anns = list(s.scalars(select(Annotation).where(Annotation.dataset_id == ds.id)
                              .order_by(Annotation.id)))  # fmt: skip
        L.delete_annotation(s, anns[0].id, "tester")
        L.edit_annotation(s, anns[1].id, "tester", box=Box(35, 20, 10, 10))
        L.edit_annotation(s, anns[2].id, "tester", class_id=anns[3].class_id)
    store.close()


def manifest(dest: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((dest / "manifest.json").read_text())
    return data


def coco_without_date(dest: Path) -> list[Any]:
    out = []
    for path in sorted((dest / "annotations").glob("*.json")):
        data = json.loads(path.read_text())
        data["info"].pop("date_created")
        out.append(data)
    return out


def main_flow(url: str, tmp_path: Path, make_images: Callable[..., list[Path]]) -> None:
    run = labelled(url, make_images)
    result = run("snapshot", "pets", "v1", "-m", "first version")
    assert result.exit_code == 0, result.stderr
    assert "12 labels" in result.stdout
    for fmt in ("yolo", "coco"):
        first = tmp_path / f"{fmt}-v1"
        assert run("export", fmt, "pets", str(first), "--media", "none").exit_code == 0
        assert manifest(first)["snapshot"] == "v1"
    edit(url)
    for fmt in ("yolo", "coco"):
        first, at = tmp_path / f"{fmt}-v1", tmp_path / f"{fmt}-at"
        result = run("export", fmt, "pets", str(at), "--media", "none", "--at", "v1")
        assert result.exit_code == 0, result.stderr
        old, new = manifest(first), manifest(at)
        if fmt == "yolo":
            assert new["files"] == old["files"]  # the label files' SHA-256, byte for byte
        else:  # COCO's info.date_created is the time of the export; the rest is the same
            assert coco_without_date(first) == coco_without_date(at)
        assert new["splits"] == old["splits"]
        assert {k: old["left_out"][k] for k in new["left_out"]} == new["left_out"]
        assert (new["snapshot"], new["history_position"]) == ("v1", old["history_position"])
    out = json.loads(run("diff", "pets", "--json").stdout)
    assert (out["from"], out["to"]) == ("v1", "now")
    assert out["classes"]["cat"] == {"boxes_removed": 1}
    assert out["classes"]["dog"] == {"boxes_moved": 1, "changed_class": 1}
    assert "boxes_moved" in run("diff", "pets", "v1", "now").stdout
    listed = json.loads(run("snapshots", "pets", "--json").stdout)
    assert [(s["tag"], s["message"], s["author"]) for s in listed] == [
        ("v1", "first version", "tester")]  # fmt: skip
    result = run("restore", "pets", "--to", "v1")
    assert result.exit_code == 0 and "1 brought back, 2 changed back" in result.stdout
    assert json.loads(run("diff", "pets", "v1", "now", "--json").stdout)["classes"] == {}
    again = tmp_path / "after-restore"
    assert run("export", "yolo", "pets", str(again), "--media", "none").exit_code == 0
    assert manifest(again)["files"] == manifest(tmp_path / "yolo-v1")["files"]


def test_snapshot_export_at_diff_restore(db_url: str, tmp_path: Path, make_images: Any) -> None:
    main_flow(db_url, tmp_path, make_images)


@needs_postgres[0]
@needs_postgres[1]
def test_main_flow_on_postgres(pg_url: str, tmp_path: Path, make_images: Any) -> None:
    main_flow(pg_url, tmp_path, make_images)


def test_version_errors_are_one_line(db_url: str, make_images: Any) -> None:
    run = labelled(db_url, make_images)
    run("init", "tags", "--task", "multilabel", "--classes", "a")
    cases = [
        (("snapshot", "pets", "now"), "would read as a history position"),
        (("export", "yolo", "pets", "/tmp/x-never", "--at", "v9"), "has no snapshot 'v9'"),
        (("restore", "pets", "--to", "v9"), "has no snapshot 'v9'"),
        (("diff", "pets", "999999"), "is beyond now"),
        (("merge", "pets", "tags"), "tasks differ"),
        (("merge", "pets", "pets"), "into itself"),
        (("merge", "pets", "pets", "--map", "x"), "expected SRC_CLASS=DEST_CLASS"),
        (("rm", "pets"), "name IMAGES or give --where"),
        (("rm", "pets", "nope.jpg"), "has no image 'nope.jpg'"),
        (("mv", "pets", "tags"), "already exists"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, args
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, args


def counts(url: str, name: str) -> dict[str, int]:
    store = open_store(url)
    with store.session() as s:
        ds = get_dataset(s, name)
        rows = s.execute(select(Annotation.review, func.count())
                         .where(Annotation.dataset_id == ds.id).group_by(Annotation.review))  # fmt: skip
        out = {str(k): int(v) for k, v in rows}
        out["images"] = int(s.scalar(select(func.count()).where(Image.dataset_id == ds.id)) or 0)
        out["flagged"] = int(s.scalar(select(func.count()).where(
            Image.dataset_id == ds.id, Image.flag.is_not(None))) or 0)  # fmt: skip
    store.close()
    return out


MODES = [
    ("keep", {"accepted": 12, "flagged": 0}),  # SRC: 11 labels (one deleted), dog->hound
    ("theirs", {"accepted": 11, "flagged": 0}),
    ("both", {"pending": 23, "flagged": 0}),
    ("review", {"accepted": 12, "pending": 11, "flagged": 6}),
]


@pytest.mark.parametrize(("mode", "expected"), MODES)
def test_merge_maps_classes_and_settles_conflicts(
    mode: str, expected: dict[str, int], tmp_path: Path, make_images: Any
) -> None:
    merge_flow(f"sqlite:///{tmp_path}/dest.db", tmp_path, make_images, mode, expected)


@needs_postgres[0]
@needs_postgres[1]
@pytest.mark.parametrize(("mode", "expected"), [MODES[1], MODES[2], MODES[3]])
def test_merge_into_postgres_from_sqlite(
    pg_url: str, mode: str, expected: dict[str, int], tmp_path: Path, make_images: Any
) -> None:
    merge_flow(pg_url, tmp_path, make_images, mode, expected)


def merge_flow(
    dest_url: str, tmp_path: Path, make_images: Any, mode: str, expected: dict[str, int]
) -> None:
    """Dest and an SQLite source with the same photos; the source's labels edited."""
    src_url = f"sqlite:///{tmp_path}/src.db"
    labelled(dest_url, make_images)
    labelled(src_url, make_images)  # the same photos (same bytes), labelled the same
    edit(src_url)
    run = runner(dest_url)
    args = ("merge", "pets", "pets", "--from-db", src_url, "--map", "dog=hound")
    result = run(*args, "--on-conflict", mode)
    assert result.exit_code == 0, result.stderr
    assert "classes added to pets: hound" in result.stderr
    assert "0 images added, 6 already there" in result.stdout
    assert counts(dest_url, "pets") == {"images": 6, **expected}
    again = run(*args, "--on-conflict", mode).stdout  # a re-run finds nothing left to do
    assert "0 labels added" in again


def test_merge_adds_new_images_and_classification_into_multilabel(db_url: str, make_images: Any) -> None:  # fmt: skip
    run = runner(db_url)
    run("init", "a", "--task", "classification", "--classes", "cat,dog")
    run("init", "b", "--task", "multilabel", "--classes", "cat")
    paths = make_images(3, folder="a")
    run("add", "a", str(paths[0].parent))
    store = open_store(db_url)
    with store.session() as s:
        ds = get_dataset(s, "a")
        for image in s.scalars(select(Image).where(Image.dataset_id == ds.id)).all():
            L.assign_class(s, image.id, ds.classes[1].id, "tester")
    store.close()
    result = run("merge", "a", "b")
    assert result.exit_code == 0 and "3 images added" in result.stdout
    assert counts(db_url, "b") == {"images": 3, "accepted": 3, "flagged": 0}
    assert json.loads(run("stats", "b", "--json").stdout)["classes"] == {"cat": 0, "dog": 3}


def test_rm_and_mv_go_through_history(db_url: str, make_images: Any) -> None:
    run = labelled(db_url, make_images)
    run("snapshot", "pets", "v1")
    store = open_store(db_url)
    with store.session() as s:
        path = s.scalar(select(Image.path).order_by(Image.id).limit(1))
    store.close()
    assert run("rm", "pets", str(path)).exit_code == 0
    out = json.loads(run("diff", "pets", "--json").stdout)
    assert out["images"] == {"images_removed": 1}
    assert out["classes"] == {"cat": {"boxes_removed": 1}, "dog": {"boxes_removed": 1}}
    assert run("mv", "pets", "animals").stdout.strip() == "renamed 'pets' to 'animals'"
    assert "v1" in run("snapshots", "animals").stdout
    assert run("restore", "animals", "--to", "v1").exit_code == 0
    assert counts(db_url, "animals") == {"images": 6, "accepted": 12, "flagged": 0}


# ---------------------------------------------------------------- kill -9


def bulk_dataset(url: str, name: str, n: int, boxes: int) -> None:
    """`n` images (rows only: merge and restore never open the files) with `boxes` each."""
    runner(url)("init", name, "--task", "detection", "--classes", "cat,dog")
    store = open_store(url)
    with store.session() as s:
        ds = s.scalar(select(Dataset).where(Dataset.name == name))
        assert ds is not None
        s.execute(Image.__table__.insert(), [
            {"dataset_id": ds.id, "path": f"/nowhere/{i}.jpg", "sha256": f"{i:064d}", "width": 99,
             "height": 99, "orientation": 1, "size_bytes": 1, "status": "labeled", "revision": 1}
            for i in range(n)])  # fmt: skip
        ids = list(s.scalars(select(Image.id).where(Image.dataset_id == ds.id)))
        s.execute(Annotation.__table__.insert(), [
            {"dataset_id": ds.id, "task": "detection", "image_id": i, "class_id": ds.classes[0].id,
             "kind": "box", "x": 1.0 + b, "y": 1.0, "w": 5.0, "h": 5.0, "iscrowd": False,
             "source": "human", "review": "accepted", "author": "t", "revision": 1}
            for i in ids for b in range(boxes)])  # fmt: skip
        s.commit()
    store.close()


def kill_during(
    url: str, args: list[str], delay: float, until: Callable[[], bool] | None = None
) -> None:
    """Run the command and kill -9 it after `delay` s, or once `until()` holds (checked for
    up to 60 s)."""
    env = {**os.environ, "ANNOTATOR_DB": url}
    proc = subprocess.Popen([sys.executable, "-m", "annotator", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    deadline = time.monotonic() + 60
    while until is not None and not until() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def integrity(url: str) -> None:
    store = open_store(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []
    store.close()


def test_kill_during_merge_then_rerun_finishes(db_url: str) -> None:
    bulk_dataset(db_url, "src", 12000, 3)
    runner(db_url)("init", "dest", "--task", "detection")
    kill_during(db_url, ["merge", "src", "dest"], 0.5, lambda: _images_in(db_url, "dest") > 0)
    integrity(db_url)
    partial = counts(db_url, "dest")
    assert 0 < partial["images"] < 12000 and partial["images"] % 1000 == 0  # whole batches
    assert partial.get("accepted", 0) == 3 * partial["images"]
    result = runner(db_url)("merge", "src", "dest")
    assert result.exit_code == 0, result.stderr
    assert counts(db_url, "dest") == {"images": 12000, "accepted": 36000, "flagged": 0}


def _images_in(url: str, name: str) -> int:
    """Images of dataset `name`, read by plain sqlite3 (never waits for the writer)."""
    path = url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM images JOIN datasets ON datasets.id = images.dataset_id"
            " WHERE datasets.name = ?",
            (name,),
        ).fetchone()
    return int(row[0])


def test_kill_during_restore_then_rerun_finishes(db_url: str) -> None:
    bulk_dataset(db_url, "big", 4000, 2)
    run = runner(db_url)
    run("snapshot", "big", "v1")
    assert run("rm", "big", "--where", "status=labeled").exit_code == 0  # history: 8000 deletes
    emptied = counts(db_url, "big")
    assert emptied == {"images": 0, "flagged": 0}
    kill_during(db_url, ["restore", "big", "--to", "v1"], 1.5)
    integrity(db_url)
    restored = {"images": 4000, "accepted": 8000, "flagged": 0}
    assert counts(db_url, "big") in (emptied, restored)  # all or nothing
    assert run("restore", "big", "--to", "v1").exit_code == 0
    assert counts(db_url, "big") == restored
