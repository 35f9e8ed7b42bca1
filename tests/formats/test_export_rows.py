"""The COCO and YOLO writers' fast path (the store's label rows, no object per label) writes
exactly what their `Label` path writes (the one an export at a snapshot takes): boxes, crowd
regions, whole-image labels and boxes overshooting the image alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from annotator.formats.coco import CocoWriter
from annotator.formats.common import UniqueNames
from annotator.formats.yolo import YoloWriter
from annotator.store import export_reads as reads
from annotator.store.bulk_sql import driver_rows
from annotator.store.datasets import get_class, get_dataset
from annotator.store.db import Store
from annotator.store.models import Annotation
from tests.formats.conftest import image_rows


def _add(store: Store, image: str, **fields: Any) -> None:
    with store.session() as s:
        ds = get_dataset(s, "scenes")
        row = image_rows(store, "scenes")[image]
        s.add(Annotation(dataset_id=ds.id, task="detection", image_id=row.id,
                         class_id=get_class(ds, "dog").id, author="t", **fields))  # fmt: skip
        s.commit()


def _write(store: Store, make: Any, dest: Path, fast: bool) -> None:
    with store.session() as s:
        source = driver_rows(s)
        ds = reads.dataset(source, "scenes")
        writer = make(dest, ds.class_names())
        names = UniqueNames()
        for split in ("train", "val"):
            writer.begin(split)
            if fast:
                index = reads.class_index(ds)
                for sample, rows in reads.export_rows(source, ds, split, chunk=2):
                    writer.add_rows(split, sample, names.name(sample), rows, index)
            else:
                for sample in reads.export_samples(source, ds, split, chunk=2):
                    writer.add(split, sample, names.name(sample))
            writer.end(split)
        writer.close(["train", "val"])


def _contents(dest: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".json":
            parsed = orjson.loads(data)
            parsed.pop("info")  # its date may differ by a second
            out[str(path.relative_to(dest))] = parsed
        else:
            out[str(path.relative_to(dest))] = data
    return out


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_rows_write_what_labels_write(sample_store: Store, tmp_path: Path, fmt: str) -> None:
    some = sorted(image_rows(sample_store, "scenes"))
    _add(sample_store, some[0], kind="box", x=-3.0, y=1.5, w=40.25, h=9999.0)  # overshoots
    _add(sample_store, some[0], kind="box", x=2.0, y=3.0, w=4.0, h=5.0, iscrowd=True)
    _add(sample_store, some[-1], kind="label")  # a whole-image label

    def make(dest: Path, classes: list[str]) -> Any:
        if fmt == "coco":
            return CocoWriter(dest, classes, "scenes", "detection")
        return YoloWriter(dest, classes)

    _write(sample_store, make, tmp_path / "fast", fast=True)
    _write(sample_store, make, tmp_path / "labels", fast=False)
    fast, slow = _contents(tmp_path / "fast"), _contents(tmp_path / "labels")
    assert fast == slow
    if fmt == "coco":
        anns = [a for f, c in fast.items() for a in c["annotations"]]
        assert any(a["iscrowd"] == 1 for a in anns) and any("bbox" not in a for a in anns)
    else:
        assert sum(f.startswith("labels/") for f in fast) == len(some)
