"""YOLO (Ultralytics detection layout) writing: `images/<split>/`, `labels/<split>/` with one
`.txt` per image, `class cx cy w h` clipped to [0, 1], 6 decimals; crowd regions are left out
(Ultralytics drops them); `data.yaml` without `path`. Reading is `yolo_read` (its `read` is this
format's reader, imported only when a YOLO source is read: an export never loads pydantic)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.annotation import Box, Sample
from annotator.formats.common import WriterBase
from annotator.formats.manifest import FileList
from annotator.store.export_reads import ExportRow

if TYPE_CHECKING:
    from annotator.formats.common import Parsed

MIN_SIDE = 10  # Ultralytics drops images with a side under this
LINE = "%d %.6f %.6f %.6f %.6f\n"  # class cx cy w h


def read(source: Path, images: Path | None = None) -> Parsed:
    """`yolo_read.read` (imported when a YOLO source is read: an export never needs it)."""
    from annotator.formats.yolo_read import read as read_yolo

    return read_yolo(source, images)


def yolo_row(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """cx, cy, w, h as fractions of the image, clipped to [0, 1]."""
    if box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height:
        return (
            (box.x + box.w / 2) / width,
            (box.y + box.h / 2) / height,
            box.w / width,
            (box.h / height),
        )
    x0 = min(max(box.x / width, 0.0), 1.0)
    y0 = min(max(box.y / height, 0.0), 1.0)
    x1 = min(max((box.x + box.w) / width, 0.0), 1.0)
    y1 = min(max((box.y + box.h) / height, 0.0), 1.0)
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0


def write_small(path: str, data: bytes) -> None:
    """Write a small file with bare system calls (10,000 label files: no file objects)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_many(files: list[tuple[str, bytes]]) -> None:
    """`write_small` for each (path, data) of a batch."""
    for path, data in files:
        write_small(path, data)


class FileSink:
    """Writes small files from two threads, `BATCH` files per task: creating a file is a
    system call that waits on the file system and releases the GIL (10,000 label files, median
    of 5 interleaved runs: 1 thread 3.0 s, 2 threads 1.5 s, 4 threads 1.6 s and more CPU, the
    directory's lock being contended); a task per file would cost more in hand-overs than the
    write. At most `window` tasks are in flight; the first error is raised by the next `write`
    or `drain`."""

    BATCH = 64

    def __init__(self, threads: int = 2, window: int = 8) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="yolo-write")
        self.pending: deque[Future[None]] = deque()
        self.window = window
        self.batch: list[tuple[str, bytes]] = []

    def write(self, path: str, data: bytes) -> None:
        self.batch.append((path, data))
        if len(self.batch) >= self.BATCH:
            self._submit()

    def _submit(self) -> None:
        self.pending.append(self.pool.submit(write_many, self.batch))
        self.batch = []
        while len(self.pending) > self.window:
            self.pending.popleft().result()

    def drain(self) -> None:
        """Write what is gathered and wait for every write; raise the first error."""
        try:
            if self.batch:
                self._submit()
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.batch = []
            for future in self.pending:
                future.cancel()
            self.pending.clear()


class YoloWriter(WriterBase):
    """`images/<split>/`, `labels/<split>/<stem>.txt` (empty for negatives) and `data.yaml`.
    Label files are written by a `FileSink`, drained at the end of each split; their SHA-256
    go to `listed` (spooled, not kept), `close` returns only `data.yaml`'s."""

    def __init__(self, dest: Path, classes: list[str]) -> None:
        self.dest, self.classes = dest, classes
        self.index = {name: i for i, name in enumerate(classes)}
        self.listed = FileList(dest)  # the label files' SHA-256, for the manifest
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}
        self.crowd = self.small = 0
        self.sink = FileSink()
        self.folder = os.fspath(dest)

    def begin(self, split: str) -> None:
        (self.dest / "images" / split).mkdir(parents=True, exist_ok=True)
        (self.dest / "labels" / split).mkdir(parents=True, exist_ok=True)

    def image_path(self, split: str, sample: Sample, name: str) -> str | None:
        return os.path.join(self.dest, "images", split, name)

    def add(self, split: str, sample: Sample, name: str) -> None:
        width, height = sample.width or 1, sample.height or 1
        lines = []
        for label in sample.labels:
            if label.box is None or label.iscrowd:
                self.crowd += label.iscrowd
                continue
            cx, cy, w, h = yolo_row(label.box, width, height)
            lines.append(LINE % (self.index[label.class_name], cx, cy, w, h))
        self._write(split, name, "".join(lines).encode())
        self.small += min(width, height) < MIN_SIDE

    def add_rows(
        self, split: str, sample: Sample, name: str, rows: list[ExportRow], index: dict[int, int]
    ) -> None:
        """`add` with the image's labels as the store's rows (no object per label; `index`:
        each class id's position in the class order): the file's lines formatted at once."""
        width, height = sample.width or 1, sample.height or 1
        values: list[float] = []
        for _, _, class_id, x, y, w, h, crowd in rows:
            if x is None or crowd:
                self.crowd += bool(crowd)
                continue
            if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
                k = index[class_id]
                values += (k, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height)
            else:
                values += (index[class_id], *yolo_row(Box(x, y, w, h), width, height))
        data = (LINE * (len(values) // 5) % tuple(values)).encode()
        self._write(split, name, data)
        self.small += min(width, height) < MIN_SIDE

    def _write(self, split: str, name: str, data: bytes) -> None:
        relative = f"labels/{split}/{os.path.splitext(name)[0]}.txt"
        self.sink.write(f"{self.folder}/{relative}", data)
        self.listed.add(relative, hashlib.sha256(data).hexdigest())

    def end(self, split: str) -> None:
        self.sink.drain()

    def abort(self) -> None:
        """The export failed: wait for the writes in flight (so none lands after the building
        folder is removed), whatever they raise, and stop the write threads."""
        with contextlib.suppress(OSError):
            self.sink.drain()
        self.sink.pool.shutdown()
        self.listed.discard()

    def close(self, splits: list[str]) -> dict[str, str]:
        self.sink.drain()
        self.sink.pool.shutdown()
        config: dict[str, Any] = {s: f"images/{s}" for s in splits}
        config["names"] = dict(enumerate(self.classes))
        import yaml

        data = yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()
        (self.dest / "data.yaml").write_bytes(data)
        self._warn(splits)
        self.extra["crowd_left_out"] = self.crowd
        return {"data.yaml": hashlib.sha256(data).hexdigest()}  # then `listed`

    def _warn(self, splits: list[str]) -> None:
        if self.crowd:
            self.warnings.append(f"{self.crowd} crowd regions left out (YOLO has no crowd flag)")
        if self.small:
            self.warnings.append(
                f"{self.small} images have a side under {MIN_SIDE} px: Ultralytics skips them"
            )
        if "train" not in splits or "val" not in splits:
            self.warnings.append(
                "Ultralytics needs both a train and a val split: run annotator split"
            )
