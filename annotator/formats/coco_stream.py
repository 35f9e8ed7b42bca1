"""COCO read as a stream, for files of `STREAM_BYTES` and more: the whole-file parse of a
1,000,000-box file holds over a gigabyte of Python objects. ijson's C backend reads the file
three times (categories, then images, then annotations, each record built only while it is
validated); the labels go to a `Spill` keyed by their image's position and are attached batch
by batch as the import reaches them (`StreamedParsed.attach`). Memory then holds the images
(their ids map the annotations to them: COCO lets an image's annotations come anywhere in the
file), the annotation ids seen (duplicates are refused), and one batch of labels.

The records are validated and converted exactly as the whole-file reader does (`coco_read`), with
the same messages. A file whose images or annotations section is empty, missing or not a
list is read whole instead (it is then small, or its structure needs the whole-file checks)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from annotator.annotation import Box, Label
from annotator.formats import coco_read as coco
from annotator.formats.common import Incoming, Parsed, Problem
from annotator.formats.spill import Spill
from annotator.store.incoming import SHARED_EMPTY

STREAM_BYTES = 64 << 20  # label files from this size on are streamed
RECORDS = 20_000  # records validated at a time
BUCKET = 2000  # images whose labels share a spill file: the store's import batch


@dataclass
class StreamedParsed(Parsed):
    """A `Parsed` whose labels wait in a spill until `attach` gives them to a batch of
    images; what the import decides from the labels (task, boxes) is counted while reading."""

    spill: Spill = field(default_factory=lambda: Spill(BUCKET))
    boxes: bool = False
    labels: bool = False
    multi: bool = False
    first_class: dict[int, str] = field(default_factory=dict)  # whole-image labels only
    current: list[Incoming] = field(default_factory=list)

    @property
    def has_boxes(self) -> bool:
        return self.boxes

    @property
    def has_labels(self) -> bool:
        return self.labels

    def infer_task(self) -> str:
        if self.boxes:
            return "detection"
        if self.multi:
            return "multilabel"
        return "classification" if self.labels else self.task_hint or "classification"

    def keep(self, item: Incoming, row: coco.LabelRow, where: str) -> None:
        """Set a label aside for `item` (the `coco_read` reader's label sink)."""
        self.spill.add((item.key, *row, where))
        self.labels = True
        if row[1] is not None:
            self.boxes = True
        elif not self.multi:
            first = self.first_class.setdefault(item.key, row[0])
            self.multi = first != row[0]

    def attach(self, chunk: Sequence[Incoming]) -> None:
        """Give the images of `chunk` their labels (in file order), releasing the previous
        chunk's."""
        for item in self.current:
            item.sample.labels = item.label_where = SHARED_EMPTY
        for item in chunk:
            labels, wheres = [], []
            for _, name, x, y, w, h, crowd, points, where in self.spill.records(item.key):
                box = None if x is None else Box(x, y, w, h)
                labels.append(Label(name, box, iscrowd=crowd, points=points))
                wheres.append(where)
            item.sample.labels, item.label_where = labels, wheres
        self.current = list(chunk)

    def close(self) -> None:
        self.spill.close()


def should_stream(files: Sequence[coco.LabelFile]) -> bool:
    return any(_size(lf.path) >= STREAM_BYTES for lf in files)


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read(root: Path, files: Sequence[coco.LabelFile]) -> StreamedParsed:
    """Every image and label of the COCO files, streamed (the labels spilled)."""
    parsed = StreamedParsed(root=root, task_hint="detection")
    try:
        for lf in files:
            _read_file(lf, root, parsed)
        parsed.spill.flush()
    except BaseException:
        parsed.close()
        raise
    return parsed


def _read_file(lf: coco.LabelFile, root: Path, parsed: StreamedParsed) -> None:
    import ijson

    file = str(lf.path)
    checked = False  # whether a pass has read the whole file (so it is well-formed)
    try:
        categories = _leading_categories(lf.path)
        if categories is None:  # listed after the images: a pass over the whole file
            categories, checked = list(_records(lf.path, "categories.item")), True
        has_images = next(iter(_records(lf.path, "images.item")), None) is not None
        has_anns = next(iter(_records(lf.path, "annotations.item")), None) is not None
    except (ijson.JSONError, ValueError, OSError) as exc:
        parsed.problems.append(Problem(file, "", _reason(exc)))
        return
    if not (has_images and has_anns):
        _read_whole(lf, root, parsed)
        return
    before = (len(parsed.problems), len(parsed.notes), list(parsed.classes))
    try:  # the images pass reads the whole file: a malformed one is refused before any use
        names = coco._categories(categories, file, parsed)
        labelled = bool(names) and not lf.path.name.startswith("image_info")
        items = _images(lf, root, labelled, parsed)
    except (ijson.JSONError, ValueError, OSError) as exc:
        if checked:  # pragma: no cover - the file changed under us
            raise
        del parsed.problems[before[0] :], parsed.notes[before[1] :]
        parsed.classes = before[2]
        parsed.problems.append(Problem(file, "", _reason(exc)))
        return
    seen = coco.IdSet()
    for offset, batch in _batches(_records(lf.path, "annotations.item")):
        coco._annotations(
            batch, items, names, file, parsed, seen=seen, offset=offset, sink=parsed.keep
        )


def _leading_categories(path: Path) -> list[Any] | None:
    """The `categories` list when the file names it before its images and annotations (read
    from the start of the file only: the pass over a whole large file is saved); None when the
    images or annotations come first, or `categories` is not a list."""
    from ijson.common import ObjectBuilder

    with open(path, "rb") as fh:
        events = _backend().parse(fh, use_float=True)
        for prefix, event, value in events:
            if prefix or event != "map_key":
                continue
            if value in ("images", "annotations"):
                return None
            if value == "categories":
                builder = ObjectBuilder()
                for inner, kind, data in events:
                    builder.event(kind, data)
                    if inner == "categories" and kind in (
                        "end_array",
                        "end_map",
                        "string",
                        "number",
                        "boolean",
                        "null",
                    ):
                        break  # fmt: skip
                found = builder.value
                return found if isinstance(found, list) else None
    return None


def _images(
    lf: coco.LabelFile, root: Path, labelled: bool, parsed: StreamedParsed
) -> dict[Any, Incoming]:
    items: dict[Any, Incoming] = {}
    finder = coco._Finder(root, lf.bases)
    for offset, batch in _batches(_records(lf.path, "images.item")):
        coco._images(batch, lf, root, labelled, parsed, into=(items, finder), offset=offset)
    start = len(parsed.items)
    for key, item in enumerate(items.values(), start):
        item.key = key
        _share_empty(item)
    parsed.items.extend(items.values())
    return items


def _share_empty(item: Incoming) -> None:
    """Let the image hold the shared empty list until `attach` gives it its labels."""
    item.sample.labels = item.label_where = SHARED_EMPTY
    if not item.refused:
        item.refused = SHARED_EMPTY


def _read_whole(lf: coco.LabelFile, root: Path, parsed: StreamedParsed) -> None:
    """A file without images or annotations to stream, read whole; its labels spilled."""
    whole = Parsed(root=root)
    coco._read_file(lf, root, whole)
    parsed.problems += whole.problems
    parsed.notes += whole.notes
    parsed.add_classes(whole.classes)
    parsed.polygons, parsed.derived = (
        parsed.polygons + whole.polygons,
        parsed.derived + whole.derived,
    )
    parsed.masks += whole.masks
    for key, item in enumerate(whole.items, len(parsed.items)):
        item.key = key
        labels, wheres = item.sample.labels, item.label_where
        _share_empty(item)
        for label, where in zip(labels, wheres, strict=True):
            box = label.box
            geometry = (None,) * 4 if box is None else (box.x, box.y, box.w, box.h)
            parsed.keep(item, (label.class_name, *geometry, label.iscrowd, label.points), where)
        parsed.items.append(item)


def _backend() -> Any:
    import ijson

    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:  # pragma: no cover - wheels ship the C backend
        return ijson


def _records(path: Path, prefix: str) -> Iterator[Any]:
    with open(path, "rb") as fh:
        yield from _backend().items(fh, prefix, use_float=True)


def _batches(records: Iterator[Any]) -> Iterator[tuple[int, list[Any]]]:
    offset = 0
    while batch := list(islice(records, RECORDS)):
        yield offset, batch
        offset += len(batch)


def _reason(exc: BaseException) -> str:
    """yajl's message (its first line, and the text around the error it quotes)."""
    if isinstance(exc, OSError):
        return f"unreadable: {exc.strerror or exc}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return f"malformed JSON: {type(exc).__name__}"
    near = f" near {lines[1]!r}" if len(lines) > 2 else ""
    return f"malformed JSON: {lines[0].removeprefix('parse error: ')}{near}"
