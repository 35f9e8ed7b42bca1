"""Builds the large synthetic database `benchmarks/tui.py` measures: one detection dataset with
N image rows (a handful of real small JPEG files, each reused by many rows through its path) and
M boxes, inserted with plain executemany into a fresh SQLite file that carries the current
schema. About half the images hold accepted human boxes (status labeled), a third hold pending
model prelabels with an uncertainty, the rest nothing.

    .venv/bin/python benchmarks/tui_data.py /tmp/big.db [--images 100000] [--boxes 1000000]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from pathlib import Path

CLASSES = ("person", "car", "dog", "cat", "bird", "bicycle", "bus", "truck", "horse", "boat")
SIZE = (640, 480)
LINKS = 1000


SAMPLES = Path(__file__).resolve().parents[1] / "sample_data" / "images"


def write_files(folder: Path, count: int = 8) -> list[str]:
    """A few real small JPEGs to reuse for every row: photos from sample_data/images (scaled
    to 640x480, the size the rows claim), or drawn ones when those are absent."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    photos = sorted(SAMPLES.glob("*.jpg"))[:count] if SAMPLES.is_dir() else []
    for i, photo in enumerate(photos):
        with Image.open(photo) as img:
            img.convert("RGB").resize(SIZE).save(folder / f"base{i}.jpg", quality=85)
        names.append(f"base{i}.jpg")
    for i in range(len(names), count):
        img = Image.new("RGB", SIZE, (40 + 25 * i, 90, 200 - 20 * i))
        draw = ImageDraw.Draw(img)
        draw.ellipse((100 + 20 * i, 80, 400, 380), fill=(230, 200 - 15 * i, 40))
        draw.rectangle((420, 200 + 10 * i, 600, 460), fill=(20, 160, 60 + 20 * i))
        path = folder / f"base{i}.jpg"
        img.save(path, quality=85)
        names.append(path.name)
    for j in range(LINKS):  # s000 .. s999 -> the folder itself: many distinct paths, one file
        link = folder / f"s{j:03d}"
        if not link.is_symlink():
            link.symlink_to(".")
    return names


def build(db: Path, images: int, boxes: int, seed: int = 7) -> str:
    """Create the database; returns the dataset name."""
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store

    files = write_files(db.parent / f"{db.stem}_files")
    store = open_store(f"sqlite:///{db}")
    with store.session() as s:
        ds = create_dataset(s, "big", "detection", CLASSES, root=db.parent / f"{db.stem}_files")
        ds_id, class_ids = ds.id, [c.id for c in ds.classes]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        # a throwaway database of rows consistent by construction: skip the per-row checks
        for pragma in ("synchronous=OFF", "foreign_keys=OFF", "cache_size=-400000"):
            cur.execute(f"PRAGMA {pragma}")
        rng = random.Random(seed)
        run_id = _insert_run(cur, ds_id)
        indexes = _drop_indexes(cur)  # bulk load first, build the indexes once after
        kinds = _insert_images(cur, ds_id, images, files, rng)
        _insert_boxes(cur, ds_id, run_id, class_ids, kinds, boxes, rng)
        for ddl in indexes:
            cur.execute(ddl)
        raw.commit()
    finally:
        raw.close()
        store.close()
    return "big"


def _drop_indexes(cur: object) -> list[str]:
    """Drop the secondary indexes of images and annotations; returns their DDL."""
    rows = cur.execute(  # type: ignore[attr-defined]
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('images', 'annotations')"
    ).fetchall()
    for name, _sql in rows:
        cur.execute(f'DROP INDEX "{name}"')  # type: ignore[attr-defined]
    return [sql for _name, sql in rows]


def _now() -> str:
    return datetime.now(UTC).isoformat(sep=" ")


def _insert_run(cur: object, ds_id: int) -> int:
    cur.execute(  # type: ignore[attr-defined]
        "INSERT INTO model_runs (dataset_id, model, params, started_at, image_count,"
        " prediction_count) VALUES (?, 'synthetic', '{}', ?, 0, 0)",
        (ds_id, _now()),
    )
    return int(cur.lastrowid)  # type: ignore[attr-defined]


def _insert_images(cur: object, ds_id: int, n: int, files: list[str],
                   rng: random.Random) -> list[str]:  # fmt: skip
    """Rows whose path names one of the real files through folder links (unique per row)."""
    now = _now()
    kinds = [rng.choices(("human", "model", "none"), (50, 33, 17))[0] for _ in range(n)]
    rows = []
    for i, kind in enumerate(kinds):
        status = "labeled" if kind == "human" else "unlabeled"
        unc = round(rng.random(), 6) if kind == "model" else None
        a, b = divmod(i // len(files), LINKS)
        path = f"s{a % LINKS:03d}/s{b:03d}/{files[i % len(files)]}"  # unique path, shared file
        rows.append((ds_id, path, f"{i:064x}", SIZE[0], SIZE[1], 1, 40_000, None, status, unc, 1,
                     now, now))  # fmt: skip
    cur.executemany(  # type: ignore[attr-defined]
        "INSERT INTO images (dataset_id, path, sha256, width, height, orientation, size_bytes,"
        " split, status, uncertainty, revision, added_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return kinds


def _insert_boxes(cur: object, ds_id: int, run_id: int, class_ids: list[int], kinds: list[str],
                  total: int, rng: random.Random) -> None:  # fmt: skip
    now = _now()
    owners = [i + 1 for i, k in enumerate(kinds) if k != "none"]
    per, extra = divmod(total, max(1, len(owners)))
    batch: list[tuple[object, ...]] = []
    for n, image_id in enumerate(owners):
        human = kinds[image_id - 1] == "human"
        for _ in range(per + (1 if n < extra else 0)):
            x, y = rng.uniform(0, 500), rng.uniform(0, 380)
            w, h = rng.uniform(10, SIZE[0] - x), rng.uniform(10, SIZE[1] - y)
            batch.append((ds_id, "detection", image_id, rng.choice(class_ids), "box", x, y, w, h,
                          0, "human" if human else "model", None if human else run_id,
                          None if human else round(rng.random(), 4),
                          "accepted" if human else "pending", "bench", now, now, 1))  # fmt: skip
        if len(batch) >= 50_000:
            _flush(cur, batch)
    _flush(cur, batch)


def _flush(cur: object, batch: list[tuple[object, ...]]) -> None:
    cur.executemany(  # type: ignore[attr-defined]
        "INSERT INTO annotations (dataset_id, task, image_id, class_id, kind, x, y, w, h, iscrowd,"
        " source, run_id, score, review, author, created_at, updated_at, revision)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )
    batch.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes", type=int, default=1_000_000)
    args = parser.parse_args()
    args.db.unlink(missing_ok=True)
    started = time.perf_counter()
    build(args.db, args.images, args.boxes)
    print(f"built {args.db} ({args.images} images, {args.boxes} boxes) in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
