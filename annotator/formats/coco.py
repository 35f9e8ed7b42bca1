"""COCO writing: `annotations/instances_<split>.json` streamed image by image (constant
memory); reading is `coco_read` (its `read` is this format's reader)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from annotator import __version__
from annotator.annotation import Label, Sample
from annotator.formats.common import WriterBase
from annotator.store.export_reads import ExportRow

if TYPE_CHECKING:
    from annotator.formats.common import Parsed

FLUSH = 20_000  # annotation records encoded at a time


def read(source: Path, images: Path | None = None) -> Parsed:
    """`coco_read.read` (imported when a COCO source is read: an export never needs it)."""
    from annotator.formats.coco_read import read as read_coco

    return read_coco(source, images)


# ---------------------------------------------------------------- writing


class CocoWriter(WriterBase):
    """Streams `annotations/instances_<split>.json`: the header, then the images as they come,
    their annotations spooled to a side file and appended after the images (so nothing grows
    with the dataset). Records are encoded `FLUSH` at a time, and the file is hashed as it is
    written. Category ids are 1..N in class order; image and annotation ids are the store's
    (unique over the file)."""

    def __init__(self, dest: Path, classes: list[str], dataset: str, task: str) -> None:
        self.dest, self.dataset, self.task = dest, dataset, task
        self.cat_ids = {name: i + 1 for i, name in enumerate(classes)}
        self.categories = [
            {"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(classes)
        ]
        self.files: dict[str, str] = {}
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}
        self._out: BinaryIO | None = None
        self._spool: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self._images: list[dict[str, Any]] = []
        self._anns: list[dict[str, Any]] = []
        self._first_image = self._first_ann = True

    def begin(self, split: str) -> None:
        folder = self.dest / "annotations"
        folder.mkdir(parents=True, exist_ok=True)
        (self.dest / "images" / split).mkdir(parents=True, exist_ok=True)
        self._out = open(folder / f"instances_{split}.json", "wb", buffering=0)  # noqa: SIM115
        self._spool = open(folder / f".{split}.spool", "w+b", buffering=0)  # noqa: SIM115
        self._digest = hashlib.sha256()
        self._first_image = self._first_ann = True
        info = {
            "description": f"{self.dataset} ({self.task}), split {split}",
            "version": __version__,
            "year": datetime.now(UTC).year,
            "contributor": "annotator",
            "url": "",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._emit(
            b'{"info":'
            + orjson.dumps(info)
            + b',"licenses":[],"categories":'
            + orjson.dumps(self.categories)
            + b',"images":['
        )

    def image_path(self, split: str, sample: Sample, name: str) -> str | None:
        return os.path.join(self.dest, "images", split, name)

    def add(self, split: str, sample: Sample, name: str) -> None:
        image_id, cat_ids = sample.id, self.cat_ids
        self._anns.extend(
            annotation_record(label, image_id, cat_ids[label.class_name]) for label in sample.labels
        )
        self._add_image(sample, name)

    def add_rows(
        self, split: str, sample: Sample, name: str, rows: list[ExportRow], index: dict[int, int]
    ) -> None:
        """`add` with the image's labels as the store's rows (no object per label); `index`:
        each class id's position in the class order."""
        if rows:
            self._anns.extend(
                {"id": aid, "image_id": image_id, "category_id": index[c] + 1, "iscrowd": 0}
                if x is None
                else {"id": aid, "image_id": image_id, "category_id": index[c] + 1,
                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(crowd),
                      "segmentation": []}
                for image_id, aid, c, x, y, w, h, crowd in rows
            )  # fmt: skip
        self._add_image(sample, name)

    def _add_image(self, sample: Sample, name: str) -> None:
        self._images.append(
            {"id": sample.id, "file_name": name, "width": sample.width, "height": sample.height}
        )
        if len(self._images) >= FLUSH // 4 or len(self._anns) >= FLUSH:
            self._flush()

    def _flush(self) -> None:
        """Encode the records gathered: images into the file, annotations into the spool."""
        assert self._spool is not None
        if self._images:
            data = orjson.dumps(self._images)[1:-1]  # comma-separated records
            self._emit(data if self._first_image else b"," + data)
            self._first_image = False
            self._images.clear()
        if self._anns:
            data = orjson.dumps(self._anns)[1:-1]
            _write_all(self._spool, data if self._first_ann else b"," + data)
            self._first_ann = False
            self._anns.clear()

    def _emit(self, data: bytes) -> None:
        assert self._out is not None
        _write_all(self._out, data)
        self._digest.update(data)

    def end(self, split: str) -> None:
        assert self._out is not None and self._spool is not None
        self._flush()
        self._emit(b'],"annotations":[')
        self._spool.seek(0)
        while block := self._spool.read(1 << 22):
            self._emit(block)
        self._emit(b"]}")
        self._out.close()
        spool_path = Path(self._spool.name)
        self._spool.close()
        spool_path.unlink()
        self.files[f"annotations/instances_{split}.json"] = self._digest.hexdigest()

    def close(self, splits: list[str]) -> dict[str, str]:
        return self.files

    def abort(self) -> None:
        """Close the split's files and remove its spool."""
        self._images.clear()
        self._anns.clear()
        for fh in (self._out, self._spool):
            if fh is not None and not fh.closed:
                with contextlib.suppress(OSError):
                    fh.close()
        if self._spool is not None:
            Path(self._spool.name).unlink(missing_ok=True)


def _write_all(fh: BinaryIO, data: bytes) -> None:
    """Write every byte of `data` to an unbuffered file (a raw write may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[fh.write(view) or 0 :]


def annotation_record(label: Label, image_id: int | None, category_id: int) -> dict[str, Any]:
    """A COCO annotation: a box with `bbox`, `area`, `iscrowd` and empty `segmentation`, or a
    whole-image label (no `bbox`: the image-level labels convention)."""
    record: dict[str, Any] = {"id": label.id, "image_id": image_id, "category_id": category_id}
    box = label.box
    if box is None:
        record["iscrowd"] = 0
        return record
    record.update(
        bbox=[box.x, box.y, box.w, box.h],
        area=box.w * box.h,
        iscrowd=int(label.iscrowd),
        segmentation=[],
    )
    return record
