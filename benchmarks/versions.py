"""Versions at scale: snapshot, diff between two snapshots EDITS apart, export --at against a
plain export, and merge of two datasets of half the images. Prints seconds and ratios.

    .venv/bin/python benchmarks/versions.py [IMAGES] [BOXES_PER_IMAGE] [EDITS] [--only SECTIONS]

e.g. `100000 10 --only snapshot` (snapshot at 100k images, 1M boxes) or `20000 10 --only merge`
(10,000 images into 10,000).

Targets (100,000 images, 1,000,000 boxes): snapshot < 1 s, diff 5,000 edits apart <= 10 s,
export --at <= 1.5x a plain export, merge of two 50,000-image datasets <= 30 s."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import select

from annotator.annotation import Box
from annotator.formats.exporting import export_dataset
from annotator.store import labels as L
from annotator.store.bulk import HISTORY_COLUMNS, IMAGE_COLUMNS, now_param
from annotator.store.bulk_sql import executemany
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import open_store
from annotator.store.history import ANNOTATION_FIELDS
from annotator.store.merge import merge
from annotator.store.models import Annotation, HistoryEvent, Image
from annotator.store.versions import create_snapshot, diff, resolve_point


def build(store: object, name: str, n: int, boxes: int, offset: int = 0) -> None:
    """`n` images with `boxes` boxes each and their import history, written as plain rows."""
    with store.session() as s:  # type: ignore[attr-defined]
        ds = create_dataset(s, name, "detection", ["cat", "dog"])
        conn = s.connection()
        now = now_param(conn)
        executemany(conn, Image.__table__, IMAGE_COLUMNS, [  # type: ignore[arg-type]
            (ds.id, f"/nowhere/{i}.jpg", f"{i:064d}", 640, 480, 1, 1, ("train", "val")[i % 2],
             "labeled", None, 1, now, now)
            for i in range(offset, offset + n)])  # fmt: skip
        ids = list(s.scalars(select(Image.id).where(Image.dataset_id == ds.id)))
        cls = ds.classes[0].id
        columns = ("dataset_id", "task", "image_id", "class_id", "kind", "x", "y", "w", "h",
                   "iscrowd", "source", "review", "author", "revision", "created_at",
                   "updated_at")  # fmt: skip
        executemany(conn, Annotation.__table__, columns, [  # type: ignore[arg-type]
            (ds.id, "detection", i, cls, "box", 10.0 * b, 5.0, 8.0, 8.0, False, "human",
             "accepted", "bench", 1, now, now)
            for i in ids for b in range(boxes)])  # fmt: skip
        t = Annotation.__table__.c
        rows = s.execute(select(t.id, t.image_id, t.x).where(t.dataset_id == ds.id)).tuples()
        base = {k: None for k in ANNOTATION_FIELDS} | {
            "dataset_id": ds.id, "task": "detection", "class_id": cls, "kind": "box", "y": 5.0,
            "w": 8.0, "h": 8.0, "iscrowd": False, "source": "human", "review": "accepted",
            "author": "bench", "revision": 1}  # fmt: skip
        group = uuid.uuid4().hex
        events = [(ds.id, image_id, ann_id, "create",
                   orjson.dumps(base | {"id": ann_id, "image_id": image_id, "x": x}).decode(),
                   "bench (import)", now, group, "do") for ann_id, image_id, x in rows]  # fmt: skip
        executemany(conn, HistoryEvent.__table__, HISTORY_COLUMNS, events)  # type: ignore[arg-type]
        s.commit()


def timed(label: str, fn: object) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    took = time.perf_counter() - start
    print(f"{label:<40} {took:8.2f} s  (CPU {time.process_time() - cpu:.2f} s)")
    return took


def main(n: int, boxes: int, edits: int, only: set[str]) -> None:
    tmp = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{tmp / 'bench.db'}")
    try:
        if only & {"snapshot", "diff", "export"}:
            timed(f"build {n} images x {boxes} boxes", lambda: build(store, "big", n, boxes))
            versions(store, tmp, edits, only)
        if "merge" in only:
            merging(store, n // 2, boxes)
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def versions(store: object, tmp: Path, edits: int, only: set[str]) -> None:
    with store.session() as s:  # type: ignore[attr-defined]
        ds = get_dataset(s, "big")
        timed("snapshot", lambda: create_snapshot(s, ds, "v1", "bench"))
        if not only & {"diff", "export"}:
            return
        ids = list(s.scalars(select(Annotation.id).where(Annotation.dataset_id == ds.id)))
        step = max(1, len(ids) // edits)
        timed(f"{edits} edits (one transaction each)", lambda: [
            L.edit_annotation(s, ids[i * step], "bench", box=Box(100, 100, 20, 20))
            for i in range(edits)])  # fmt: skip
        timed("snapshot after the edits", lambda: create_snapshot(s, ds, "v2", "bench"))
        res: dict[str, object] = {}
        timed("diff v1..v2", lambda: res.update(diff(s, ds, resolve_point(s, ds, "v1"),
                                                      resolve_point(s, ds, "v2")).as_dict()))  # fmt: skip
        print(f"diff counts: {json.dumps(res['classes'])}")
        if "export" in only:
            plain = timed("export yolo (plain)", lambda: export_dataset(
                s, "yolo", "big", tmp / "plain", media="none"))  # fmt: skip
            at = timed("export yolo --at v1", lambda: export_dataset(
                s, "yolo", "big", tmp / "at", media="none", at="v1"))  # fmt: skip
            print(f"export --at / plain: {at / plain:.2f}x")


def merging(store: object, half: int, boxes: int) -> None:
    """Two datasets of `half` images (different photos) merged, then the same merge again
    (every image found by SHA-256, labels the same: nothing to write)."""
    build(store, "a", half, boxes, offset=10**7)
    build(store, "b", half, boxes, offset=2 * 10**7)
    for label in (f"merge {half} into {half} images", "merge again (all matched)"):
        with store.session() as s:  # type: ignore[attr-defined]  # one database: one session
            took = timed(label, lambda: merge(s, get_dataset(s, "a"), s, get_dataset(s, "b")))
        print(f"  {half * boxes / took:,.0f} labels/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="IMAGES BOXES_PER_IMAGE EDITS")
    parser.add_argument("--only", default="snapshot,diff,export,merge",
                        help="comma-separated sections: snapshot, diff, export, merge")  # fmt: skip
    args = parser.parse_args()
    sizes = args.sizes + [10_000, 10, 1_000][len(args.sizes) :]
    main(sizes[0], sizes[1], sizes[2], set(args.only.split(",")))
