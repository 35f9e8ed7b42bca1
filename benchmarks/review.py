"""Benchmark: pushing a store dataset to FiftyOne, full and incremental.

Inserts N images with --boxes boxes each (default 10,000 images, 100,000 boxes: 70% human,
30% pending model predictions) straight into a temporary SQLite store with Core executemany,
times a full `push`, then makes --edits box edits through annotator.store.labels (each one
transaction and one history group, as the labelling UI makes them) and times the incremental
push that follows. Prints both times and their ratio; the target is incremental < 5% of full.
FiftyOne's database lives in a temporary folder (but FiftyOne attaches to a database service
already running on the machine, if any): the mirror gets a unique name and is deleted after.

    .venv/bin/python benchmarks/review.py
    .venv/bin/python benchmarks/review.py --n 2000 --boxes 5
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH, HEIGHT = 640, 480
CLASSES = [f"class_{i}" for i in range(10)]
TARGET = 0.05


def fill(store: Any, n: int, boxes: int, seed: int = 0) -> tuple[Any, list[int]]:
    """A detection dataset of n images and n * boxes annotations; returns it and the ids of
    its human boxes."""
    from sqlalchemy import insert, select

    from annotator.store.datasets import create_dataset
    from annotator.store.models import Annotation, Image, ModelRun, utcnow

    rng = random.Random(seed)
    with store.session() as s:
        ds = create_dataset(s, "bench", "detection", CLASSES, root="/data/bench")
        run = ModelRun(dataset_id=ds.id, model="bench-detector")
        s.add(run)
        s.flush()
        now = utcnow()
        s.execute(insert(Image), [
            {"dataset_id": ds.id, "path": f"img{i:06d}.jpg", "sha256": f"{i:064x}",
             "width": WIDTH, "height": HEIGHT, "orientation": 1, "size_bytes": 50_000,
             "status": "labeled", "revision": 1, "added_at": now, "updated_at": now}
            for i in range(n)
        ])  # fmt: skip
        image_ids = list(s.scalars(select(Image.id).where(Image.dataset_id == ds.id)))
        class_ids = [c.id for c in ds.classes]
        rows = [_annotation(ds.id, run.id, image_id, class_ids, rng, now)
                for image_id in image_ids for _ in range(boxes)]  # fmt: skip
        s.execute(insert(Annotation), rows)
        s.commit()
        human = list(s.scalars(select(Annotation.id).where(Annotation.source == "human")))
    return ds, human


def _annotation(ds_id: int, run_id: int, image_id: int, class_ids: list[int],
                rng: random.Random, now: Any) -> dict[str, Any]:  # fmt: skip
    w, h = rng.uniform(10, 200), rng.uniform(10, 150)
    model = rng.random() < 0.3
    return {
        "dataset_id": ds_id, "task": "detection", "image_id": image_id,
        "class_id": rng.choice(class_ids), "kind": "box", "x": rng.uniform(0, WIDTH - w),
        "y": rng.uniform(0, HEIGHT - h), "w": w, "h": h, "iscrowd": False,
        "source": "model" if model else "human", "run_id": run_id if model else None,
        "score": rng.uniform(0.05, 1.0) if model else None,
        "review": "pending" if model else "accepted", "author": "bench",
        "created_at": now, "updated_at": now, "revision": 1,
    }  # fmt: skip


def edit(store: Any, ann_ids: list[int], seed: int = 1) -> None:
    """One box move per annotation, each through the labelling use case."""
    from annotator.annotation import Box
    from annotator.store.labels import edit_annotation

    rng = random.Random(seed)
    for ann_id in ann_ids:
        with store.session() as s:
            x, y = rng.uniform(0, 400), rng.uniform(0, 300)
            edit_annotation(s, ann_id, "bench", box=Box(x, y, 50, 40))


def timed_push(store: Any, fo_name: str) -> tuple[float, Any]:
    from annotator.review.push import push
    from annotator.store.datasets import get_dataset

    with store.session() as s:
        started = time.perf_counter()
        report = push(s, get_dataset(s, "bench"), fo_name=fo_name)
        return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images")
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image")
    parser.add_argument("--edits", type=int, default=100, help="edits before the second push")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="annotator-bench-review-"))
    os.environ["FIFTYONE_DATABASE_DIR"] = str(tmp / "fiftyone")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    from annotator.review.backend import require_fiftyone
    from annotator.store.db import open_store

    fo = require_fiftyone()
    fo.list_datasets()  # import and database start-up are not part of either push
    store = open_store(str(tmp / "bench.db"))
    fo_name = f"annotator-bench-{uuid.uuid4().hex[:8]}"
    try:
        run(store, fo_name, args)
    finally:
        if fo.dataset_exists(fo_name):
            fo.delete_dataset(fo_name)
        store.close()


def run(store: Any, fo_name: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    _, human = fill(store, args.n, args.boxes)
    print(f"store: {args.n:,} images, {args.n * args.boxes:,} boxes inserted in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    full, report = timed_push(store, fo_name)
    print(f"full push:        {full:8.2f}s  ({report.added:,} samples added)")
    edit(store, random.Random(2).sample(human, args.edits))
    incremental, report = timed_push(store, fo_name)
    print(f"incremental push: {incremental:8.2f}s  ({report.updated:,} samples updated "
          f"after {args.edits} edits)")  # fmt: skip
    ratio = incremental / full
    verdict = "OK" if ratio < TARGET else "OVER TARGET"
    print(f"ratio incremental/full: {ratio:.2%}  (target < {TARGET:.0%}: {verdict})")


if __name__ == "__main__":
    main()
