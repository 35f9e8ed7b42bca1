"""Versions at scale: snapshot, diff between two snapshots EDITS apart, export --at against a
plain export, and merge of two datasets of half the images. Prints seconds and ratios.

    .venv/bin/python benchmarks/versions.py [IMAGES] [BOXES_PER_IMAGE] [EDITS]

Targets (100,000 images, 1,000,000 boxes): snapshot < 1 s, diff 5,000 edits apart <= 10 s,
export --at <= 1.5x a plain export, merge of two 50,000-image datasets <= 30 s."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import select

from annotator.annotation import Box
from annotator.formats.exporting import export_dataset
from annotator.store import labels as L
from annotator.store.bulk import HISTORY_COLUMNS, executemany, now_param
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import open_store
from annotator.store.history import ANNOTATION_FIELDS
from annotator.store.merge import merge
from annotator.store.models import Annotation, HistoryEvent, Image
from annotator.store.versions import create_snapshot, diff, resolve_point


def build(store: object, name: str, n: int, boxes: int, offset: int = 0) -> None:
    with store.session() as s:  # type: ignore[attr-defined]
        ds = create_dataset(s, name, "detection", ["cat", "dog"])
        s.execute(Image.__table__.insert(), [
            {"dataset_id": ds.id, "path": f"/nowhere/{i}.jpg", "sha256": f"{i:064d}", "width": 640,
             "height": 480, "orientation": 1, "size_bytes": 1, "status": "labeled",
             "split": ("train", "val")[i % 2], "revision": 1}
            for i in range(offset, offset + n)])  # fmt: skip
        ids = list(s.scalars(select(Image.id).where(Image.dataset_id == ds.id)))
        cls = ds.classes[0].id
        s.execute(Annotation.__table__.insert(), [
            {"dataset_id": ds.id, "task": "detection", "image_id": i, "class_id": cls,
             "kind": "box", "x": 10.0 * b, "y": 5.0, "w": 8.0, "h": 8.0, "iscrowd": False,
             "source": "human", "review": "accepted", "author": "bench", "revision": 1}
            for i in ids for b in range(boxes)])  # fmt: skip
        anns = s.execute(select(Annotation).where(Annotation.dataset_id == ds.id)).scalars()
        conn, group = s.connection(), uuid.uuid4().hex
        now = now_param(conn)
        rows = [(ds.id, a.image_id, a.id, "create",
                 orjson.dumps({k: getattr(a, k) for k in ANNOTATION_FIELDS}).decode(),
                 "bench (import)", now, group, "do") for a in anns]  # fmt: skip
        executemany(conn, HistoryEvent.__table__, HISTORY_COLUMNS, rows)  # type: ignore[arg-type]
        s.commit()


def timed(label: str, fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    took = time.perf_counter() - start
    print(f"{label:<40} {took:8.2f} s")
    return took


def main(n: int, boxes: int, edits: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{tmp / 'bench.db'}")
    timed(f"build {n} images x {boxes} boxes", lambda: build(store, "big", n, boxes))
    with store.session() as s:
        ds = get_dataset(s, "big")
        timed("snapshot", lambda: create_snapshot(s, ds, "v1", "bench"))
        ids = list(s.scalars(select(Annotation.id).where(Annotation.dataset_id == ds.id)))
        step = max(1, len(ids) // edits)
        timed(f"{edits} edits (one transaction each)", lambda: [
            L.edit_annotation(s, ids[i * step], "bench", box=Box(100, 100, 20, 20))
            for i in range(edits)])  # fmt: skip
        create_snapshot(s, ds, "v2", "bench")
        res: dict[str, object] = {}
        timed("diff v1..v2", lambda: res.update(diff(s, ds, resolve_point(s, ds, "v1"),
                                                      resolve_point(s, ds, "v2")).as_dict()))  # fmt: skip
        plain = timed("export yolo (plain)", lambda: export_dataset(
            s, "yolo", "big", tmp / "plain", media="none"))  # fmt: skip
        at = timed("export yolo --at v1", lambda: export_dataset(
            s, "yolo", "big", tmp / "at", media="none", at="v1"))  # fmt: skip
        print(f"diff counts: {json.dumps(res['classes'])}")
        print(f"export --at / plain: {at / plain:.2f}x")
    half = n // 2
    build(store, "a", half, boxes, offset=10**7)
    build(store, "b", half, boxes, offset=2 * 10**7)
    with store.session() as s:  # one database: one session, as the CLI does
        timed(f"merge {half} into {half} images", lambda: merge(
            s, get_dataset(s, "a"), s, get_dataset(s, "b")))  # fmt: skip
    store.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [10_000, 10, 1_000][len(args) :]))
