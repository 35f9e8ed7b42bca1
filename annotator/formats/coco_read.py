"""COCO reading: instances (and image-level `labels_`, `image_info_`) JSON into `Incoming` images.

Reading accepts one JSON file or a folder in the COCO (`annotations/` + `images/<split>/`),
Roboflow (`<split>/_annotations.coco.json` beside the images) or FiftyOne (`labels.json` +
`data/`) layout. Every record is validated (`records`); a bad one is reported and skipped, and
the image it belongs to is flagged for review (never a negative). Crowd regions are kept as
flagged boxes; a polygon keeps its points (and gives the box when there is no `bbox`); RLE masks
are counted, never imported."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from annotator.annotation import Box, Label, Sample, Split
from annotator.errors import NotFoundError
from annotator.formats.common import (
    Incoming,
    Parsed,
    Problem,
    norm,
    split_from_name,
    split_rank,
    within,
)
from annotator.formats.records import (
    COCO_ANNOTATIONS,
    COCO_CATEGORIES,
    COCO_IMAGES,
    CocoAnnotation,
    CocoImage,
    coco_polygons,
    polygon_box,
    validate_records,
    where_of,
)

T = TypeVar("T")

KIND_PRIORITY = ("instances_", "labels_", "image_info_")
_DRIVE = re.compile(r"^[A-Za-z]:/")
ROBOFLOW_NAME = "_annotations.coco.json"


@dataclass
class LabelFile:
    """A COCO JSON file, the split its name gives, and the folders its `file_name`s may be
    relative to (tried in order)."""

    path: Path
    split: Split | None
    bases: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------- locating


def locate(source: Path, images: Path | None = None) -> tuple[Path, list[LabelFile]]:
    """The dataset folder and the label files of `source` (a JSON file or a folder)."""
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    if source.is_file():
        return _locate_file(norm(source), images)
    files = sorted(_label_files(norm(source)), key=lambda lf: split_rank(lf.split))
    root = norm(images) if images else norm(source)
    for lf in files:
        lf.bases = _bases(root, lf, images is not None)
    return root, files


def _locate_file(path: Path, images: Path | None) -> tuple[Path, list[LabelFile]]:
    split = split_from_name(path.stem)
    if path.name == ROBOFLOW_NAME:
        split = split_from_name(path.parent.name)
    lf = LabelFile(path, split)
    if images:
        root = norm(images)
    elif path.parent.name == "annotations":
        root = path.parent.parent
    else:
        root = path.parent
    lf.bases = _bases(root, lf, images is not None)
    return root, [lf]


def _label_files(folder: Path) -> list[LabelFile]:
    ann_dir = folder / "annotations"
    if ann_dir.is_dir():
        found = sorted(ann_dir.glob("*.json"))
        for prefix in KIND_PRIORITY:
            chosen = [p for p in found if p.name.startswith(prefix)]
            if chosen:
                return [LabelFile(p, split_from_name(p.stem)) for p in chosen]
        if found:
            return [LabelFile(p, split_from_name(p.stem)) for p in found]
    roboflow = sorted(folder.glob(f"*/{ROBOFLOW_NAME}"))
    if roboflow:
        return [LabelFile(p, split_from_name(p.parent.name)) for p in roboflow]
    if (folder / ROBOFLOW_NAME).is_file():
        return [LabelFile(folder / ROBOFLOW_NAME, split_from_name(folder.name))]
    if (folder / "labels.json").is_file():
        return [LabelFile(folder / "labels.json", None)]
    loose = sorted(folder.glob("*.json"))
    if loose:
        return [LabelFile(p, split_from_name(p.stem)) for p in loose]
    raise NotFoundError(
        f"{folder}: no COCO file found (looked for annotations/*.json, "
        f"*/{ROBOFLOW_NAME}, labels.json, *.json)"
    )


def _bases(root: Path, lf: LabelFile, explicit: bool) -> list[Path]:
    split = lf.split
    if explicit:
        candidates = [root / split, root] if split else [root]
    else:
        here = lf.path.parent
        candidates = [here] if lf.path.name == ROBOFLOW_NAME else []
        if split:
            candidates += [root / "images" / split, root / split]
        candidates += [root / "images", root / "data", root]
        if here != root.parent and here not in candidates and here.name != "annotations":
            candidates.append(here)
    seen: list[Path] = []
    for c in candidates:
        if c not in seen and c.is_dir():
            seen.append(c)
    return seen


# ---------------------------------------------------------------- reading


def read(source: Path, images: Path | None = None) -> Parsed:
    """Every image and label of a COCO source, validated; bad records become problems."""
    root, files = locate(Path(source), Path(images) if images else None)
    from annotator.formats import coco_stream  # it builds on this module

    if coco_stream.should_stream(files):
        return coco_stream.read(root, files)
    parsed = Parsed(root=root, task_hint="detection")
    for lf in files:
        _read_file(lf, root, parsed)
    return parsed


def load_json(path: Path, parsed: Parsed) -> Any:
    """The parsed JSON of `path`, or None with the problem (line and column) recorded."""
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        parsed.problems.append(Problem(str(path), where, f"malformed JSON: {exc.msg}"))
    except OSError as exc:
        parsed.problems.append(Problem(str(path), "", f"unreadable: {exc.strerror or exc}"))
    return None


def _sections(path: Path, data: Any, parsed: Parsed) -> dict[str, list[Any]] | None:
    file = str(path)
    if not isinstance(data, dict):
        kind = type(data).__name__
        parsed.problems.append(
            Problem(
                file,
                "top level",
                f"expected an object with images, annotations and categories, found a {kind}",
            )
        )
        return None
    out: dict[str, list[Any]] = {}
    for key in ("images", "annotations", "categories"):
        value = data.get(key, [])
        if not isinstance(value, list):
            parsed.problems.append(Problem(file, key, f"expected a list, found {value!r:.40}"))
            return None
        out[key] = value
    if "images" not in data:
        parsed.problems.append(Problem(file, "images", "missing"))
        return None
    return out


def _read_file(lf: LabelFile, root: Path, parsed: Parsed) -> None:
    data = load_json(lf.path, parsed)
    sections = _sections(lf.path, data, parsed) if data is not None else None
    if sections is None:
        return
    file = str(lf.path)
    names = _categories(sections["categories"], file, parsed)
    labelled = bool(names) and "annotations" in data and not lf.path.name.startswith("image_info")
    items = _images(sections["images"], lf, root, labelled, parsed)
    _annotations(sections["annotations"], items, names, file, parsed)
    parsed.items.extend(items.values())


def _categories(records: list[Any], file: str, parsed: Parsed) -> dict[Any, str]:
    cats, _, problems = validate_records(COCO_CATEGORIES, records, file, "category")
    parsed.problems.extend(problems)
    names: dict[Any, str] = {}
    for cat in cats:
        if cat.id in names:
            parsed.problems.append(Problem(file, f"category id {cat.id}", "listed twice"))
            continue
        names[cat.id] = cat.name
    parsed.add_classes(names.values())
    _report_merged(names, file, parsed)
    return names


def _report_merged(names: dict[Any, str], file: str, parsed: Parsed) -> None:
    """Categories that share a name become one class: say which ids were merged."""
    ids: dict[str, list[Any]] = {}
    for cat_id, name in names.items():
        ids.setdefault(name, []).append(cat_id)
    for name, same in ids.items():
        if len(same) > 1:
            listed = ", ".join(repr(i) for i in same)
            parsed.notes.append(f"{file}: categories {listed} share the name {name!r}: merged")


def _images(
    records: list[Any],
    lf: LabelFile,
    root: Path,
    labelled: bool,
    parsed: Parsed,
    into: tuple[dict[Any, Incoming], _Finder] | None = None,
    offset: int = 0,
) -> dict[Any, Incoming]:
    """The usable images of `records` (`offset` of them came before), added to `into` (the
    images read so far, by id, and the finder) or to a new dict."""
    file = str(lf.path)
    images, _, problems = validate_batch(COCO_IMAGES, records, file, "image", offset)
    parsed.problems.extend(problems)
    items, finder = into or ({}, _Finder(root, lf.bases))
    for image in images:
        where = f"image id {image.id}"
        if image.id in items:
            parsed.problems.append(Problem(file, where, "listed twice (the first is kept)"))
            continue
        path, reason = finder.find(image.file_name)
        if path is None:
            parsed.problems.append(Problem(file, where, reason))
            continue
        items[image.id] = _incoming(image, path, lf, file, where, labelled)
    return items


def _incoming(
    image: CocoImage, path: str, lf: LabelFile, file: str, where: str, labelled: bool
) -> Incoming:
    """The image to import (`file`: the label file's path, one string shared by its images)."""
    declared = _shared_size(image.width, image.height) if image.width and image.height else None
    sample = Sample(path=path, split=lf.split)
    return Incoming(sample, file, where, labelled=labelled, declared=declared)


_SIZES: dict[tuple[int, int], tuple[int, int]] = {}


def _shared_size(width: int, height: int) -> tuple[int, int]:
    """(width, height), one tuple for every image of a common size (most datasets have few
    sizes: 56 B an image less); at most 4096 sizes are kept."""
    size = (width, height)
    if len(_SIZES) < 4096:
        return _SIZES.setdefault(size, size)
    return _SIZES.get(size, size)


class _Finder:
    """Resolves `file_name`s against the candidate folders, never outside the dataset root."""

    def __init__(self, root: Path, bases: list[Path]) -> None:
        self.root = str(root)
        self.bases = [str(b) for b in bases] or [self.root]
        self.inside = {b for b in self.bases if within(self.root, b) is not None}

    def find(self, file_name: str) -> tuple[str | None, str]:
        name = file_name.replace("\\", "/")
        if _DRIVE.match(name):
            return None, self._outside(file_name)
        clean = os.path.normpath(name) == name and not name.startswith(("/", ".."))
        for i, base in enumerate(["/"] if name.startswith("/") else self.bases):
            if clean and base in self.inside:  # a plain relative name: stays inside the base
                path = os.path.join(base, name)
            else:
                found = within(self.root, os.path.join(base, name))
                if found is None:
                    return None, self._outside(file_name)
                path = str(found)
            if os.path.isfile(path):
                if i:  # try the folder that worked first next time
                    self.bases.insert(0, self.bases.pop(i))
                return path, ""
        looked = ", ".join(self.bases)
        return None, f"image file {file_name!r} not found (looked in {looked})"

    def _outside(self, file_name: str) -> str:
        return f"file_name {file_name!r} points outside the dataset folder {self.root}"


class IdSet:
    """The annotation ids seen so far (a repeated one is refused), compact at any count: a
    bitmap for whole-number ids in 0..`BITMAP_IDS` (COCO's ids are usually dense from 0 or 1:
    10,000,000 of them take 1.25 MB, not the ~700 MB of a set), a set for the others (string,
    negative or huge ids)."""

    BITMAP_IDS = 1 << 27  # the bitmap grows to 16 MB at most

    __slots__ = ("bits", "others")

    def __init__(self) -> None:
        self.bits = bytearray()
        self.others: set[Any] = set()

    def __contains__(self, value: Any) -> bool:
        if type(value) is int and 0 <= value < self.BITMAP_IDS:
            byte = value >> 3
            return byte < len(self.bits) and bool(self.bits[byte] >> (value & 7) & 1)
        return value in self.others

    def add(self, value: Any) -> None:
        if type(value) is int and 0 <= value < self.BITMAP_IDS:
            byte = value >> 3
            if byte >= len(self.bits):  # doubling: amortised constant time per id
                size = min(max(byte + 1, 2 * len(self.bits), 1024), self.BITMAP_IDS >> 3)
                self.bits.extend(bytes(size - len(self.bits)))
            self.bits[byte] |= 1 << (value & 7)
        else:
            self.others.add(value)


# class name, x, y, w, h (None: a whole-image label), iscrowd, polygon points
LabelRow = tuple[str, Any, Any, Any, Any, bool, list[float] | None]
LabelSink = Callable[[Incoming, LabelRow, str], None]


def _attach(item: Incoming, row: LabelRow, where: str) -> None:
    name, x, y, w, h, crowd, points = row
    box = None if x is None else Box(x, y, w, h)
    item.sample.labels.append(Label(name, box, iscrowd=crowd, points=points))
    item.label_where.append(where)


def _annotations(
    records: list[Any],
    items: dict[Any, Incoming],
    names: dict[Any, str],
    file: str,
    parsed: Parsed,
    *,
    seen: IdSet | None = None,
    offset: int = 0,
    sink: LabelSink = _attach,
) -> None:
    """Validate `records` (`offset` annotations came before them) and hand each label to
    `sink` with its image; a refused one flags its image. `seen`: annotation ids so far."""
    anns, positions, problems = validate_batch(
        COCO_ANNOTATIONS, records, file, "annotation", offset
    )
    parsed.problems.extend(problems)
    _flag_invalid(records, positions, problems, items)
    seen = IdSet() if seen is None else seen
    for ann, local in zip(anns, positions, strict=True):
        index = offset + local
        where = f"annotation id {ann.id}" if ann.id is not None else f"annotations[{index}]"
        item = items.get(ann.image_id)
        if item is None:
            reason = f"image id {ann.image_id!r} is not among the file's usable images"
            parsed.problems.append(Problem(file, where, reason))
            continue
        row, reason = _label(ann, names, seen, parsed)
        if row is None:
            item.refuse(parsed.problems, file, where, reason)
            continue
        sink(item, row, where)


def validate_batch(
    adapter: TypeAdapter[list[T]], records: list[Any], file: str, what: str, offset: int
) -> tuple[list[T], list[int], list[Problem]]:
    """`validate_records` on a batch that `offset` records of its list came before (so a
    record without an id is named by its position in the whole list)."""
    if not offset:
        return validate_records(adapter, records, file, what)
    try:
        return adapter.validate_python(records), list(range(len(records))), []
    except ValidationError:
        wheres = [where_of(what, record, offset + i) for i, record in enumerate(records)]
        return validate_records(adapter, records, file, what, wheres)


def _flag_invalid(
    records: list[Any], positions: list[int], problems: list[Problem], items: dict[Any, Incoming]
) -> None:
    """Flag the image of each annotation that failed validation (when it names one)."""
    kept = set(positions)
    bad = [i for i in range(len(records)) if i not in kept]
    for index, problem in zip(bad, problems, strict=True):
        record = records[index]
        image_id = record.get("image_id") if isinstance(record, dict) else None
        item = items.get(image_id) if isinstance(image_id, int | str) else None
        if item is not None:
            item.note_refused(f"{problem.where}: {problem.reason}")


def _label(
    ann: CocoAnnotation, names: dict[Any, str], seen: IdSet, parsed: Parsed
) -> tuple[LabelRow | None, str]:
    """The label an annotation makes (as a `LabelRow`), or None with the reason it is
    refused."""
    name = names.get(ann.category_id)
    if name is None:
        return None, f"unknown category id {ann.category_id!r}"
    if ann.id is not None:
        if ann.id in seen:
            return None, f"annotation id {ann.id!r} is listed twice (the first is kept)"
        seen.add(ann.id)
    box, points = ann.bbox, None
    if ann.segmentation:
        parts, reason = coco_polygons(ann.segmentation)
        if box is None and parts is None:
            return None, reason
        box, points = _shape(box, parts, ann.segmentation, parsed)
    elif box is None and ann.iscrowd:
        return None, "a crowd region without bbox"
    if box is None:
        return (name, None, None, None, None, bool(ann.iscrowd), points), ""
    return (name, *box, bool(ann.iscrowd), points), ""


def _shape(
    box: tuple[float, float, float, float] | None,
    parts: list[list[float]] | None,
    seg: Any,
    parsed: Parsed,
) -> tuple[tuple[float, float, float, float] | None, list[float] | None]:
    """The box (the `bbox`, else the one around the polygon) and the points kept (a polygon
    of one part); counts polygons, boxes derived from them, and shapes not kept."""
    if parts is None:  # an RLE mask or a bad polygon beside a bbox: the bbox alone is kept
        parsed.masks += isinstance(seg, dict)
        return box, None
    if box is None:
        box = polygon_box([v for part in parts for v in part])
        parsed.derived += 1
    if len(parts) > 1:
        parsed.masks += 1  # a multi-part polygon: only its box is kept
        return box, None
    parsed.polygons += 1
    return box, parts[0]
