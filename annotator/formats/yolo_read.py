"""YOLO reading (Ultralytics detection layout): `data.yaml` (or a loose `obj.names` folder) with
`images/<split>/` and `labels/<split>/` into `Incoming` images; `yolo.read` is this format's
reader, `yolo` its writer.

Split folders named by `data.yaml` are resolved inside the dataset folder only (Roboflow's
`../train/images` is read as `train/images`; a missing folder falls back to the conventional
`<split>/images` or `images/<split>` with a note). The label of an image is found the way
Ultralytics finds it (the last `/images/` becomes `/labels/`, the suffix `.txt`). An empty `.txt`
marks a negative; an image with no `.txt` stays unlabeled. Rows are validated (`records`); a bad
row is reported by file and line and flags its image for review (never a negative). A
segmentation row (`class x0 y0 x1 y1 ...`) gives the box around its points and keeps the
points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from annotator.annotation import Box, Label, Sample, Split
from annotator.errors import InvalidInputError, NotFoundError
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
    YOLO_ROWS,
    YoloDataYaml,
    describe,
    polygon_box,
    validate_records,
    yolo_polygon,
)
from annotator.store.imagefile import walk_images

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
NAME_FILES = ("obj.names", "classes.txt", "classes.names")
SPLITS: tuple[Split, ...] = ("train", "val", "test")
_DATA_YAML = TypeAdapter(YoloDataYaml)


def label_path(image: Path) -> Path:
    """Where Ultralytics looks for an image's labels."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1))).with_suffix(".txt")  # a dotted folder stays


# ---------------------------------------------------------------- reading


def read(source: Path, images: Path | None = None) -> Parsed:
    """Every image under the source's split folders, with its labels from the `.txt` files."""
    source = norm(Path(source))
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    root = source.parent if source.is_file() else source
    parsed = Parsed(root=root, task_hint="detection")
    config = source if source.is_file() else _first(root, YAML_NAMES)
    if config is not None and config.suffix in (".yaml", ".yml"):
        folders = _from_yaml(config, root, parsed)
    else:
        names = _names_file(config if config else _first(root, NAME_FILES), root)
        if len(set(names)) != len(names):
            raise InvalidInputError(f"{root}: class names must be unique")
        parsed.add_classes(names)
        folders = _loose_folders(root)
    for split, folder in folders:
        _read_folder(folder, split, parsed)
    return parsed


def _first(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _names_file(path: Path | None, root: Path) -> list[str]:
    if path is None:
        raise NotFoundError(
            f"{root}: no class names found (data.yaml with names, or {', '.join(NAME_FILES)})"
        )
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _from_yaml(path: Path, root: Path, parsed: Parsed) -> list[tuple[Split | None, Path]]:
    config = _load_yaml(path, parsed)
    if config is None:
        return []
    names = config.class_names()
    if len(set(names)) != len(names) or not all(names):
        raise InvalidInputError(f"{path}: names: class names must be unique and non-empty")
    parsed.add_classes(names)
    if config.nc is not None and config.nc != len(names):
        parsed.notes.append(f"{path}: nc is {config.nc} but names lists {len(names)}: used names")
    base = within(root, root / config.path) if config.path else root
    if base is None:
        parsed.notes.append(f"{path}: path {config.path!r} lies outside {root}: ignored")
        base = root
    folders: list[tuple[Split | None, Path]] = []
    for split in SPLITS:
        entries = getattr(config, split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            folder = _resolve(str(entry), split, base, root, path, parsed)
            if folder is not None:
                folders.append((split, folder))
    return folders


def _load_yaml(path: Path, parsed: Parsed) -> YoloDataYaml | None:
    import yaml

    file = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start}): save it as UTF-8"
        raise InvalidInputError(f"{path}: {reason}") from exc
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        parsed.problems.append(Problem(file, where, f"malformed YAML: {exc}".splitlines()[0]))
        return None
    if not isinstance(data, dict):
        parsed.problems.append(Problem(file, "top level", "expected a mapping with names"))
        return None
    try:
        return _DATA_YAML.validate_python(data)
    except ValidationError as exc:
        for error in exc.errors():
            parsed.problems.append(Problem(file, str(error["loc"][0]), describe(error)))
    return None


def _resolve(
    entry: str, split: Split, base: Path, root: Path, yaml_path: Path, parsed: Parsed
) -> Path | None:
    """The split folder `entry` names, inside the dataset folder, with fallbacks."""
    if entry.endswith(".txt"):
        msg = "image lists (.txt) are not supported: name image folders"
        parsed.problems.append(Problem(str(yaml_path), split, msg))
        return None
    literal = [base / entry, root / entry]
    stripped = entry
    while stripped.startswith("../"):
        stripped = stripped[3:]
    conventional = [root / split / "images", root / "images" / split]
    if split == "val":
        conventional += [root / "valid" / "images", root / "images" / "valid"]
    for i, candidate in enumerate([*literal, root / stripped, *conventional]):
        inside = within(root, candidate)
        if inside is not None and inside.is_dir():
            if i >= len(literal) + 1:
                rel = inside.relative_to(root)
                parsed.notes.append(f"{yaml_path}: {split}: {entry!r} not found; used {rel}")
            return inside
    parsed.problems.append(Problem(str(yaml_path), split, f"folder {entry!r} not found in {root}"))
    return None


def _loose_folders(root: Path) -> list[tuple[Split | None, Path]]:
    images = root / "images"
    if images.is_dir():
        subdirs = sorted(p for p in images.iterdir() if p.is_dir() and not p.name.startswith("."))
        if subdirs:
            named = [(split_from_name(p.name), p) for p in subdirs]
            return sorted(named, key=lambda f: split_rank(f[0]))
        return [(None, images)]
    found: list[tuple[Split | None, Path]] = [
        (s, root / s / "images") for s in SPLITS if (root / s / "images").is_dir()
    ]
    if (root / "valid" / "images").is_dir():
        found.append(("val", root / "valid" / "images"))
    if not found:
        raise NotFoundError(f"{root}: no images/ folder (nor <split>/images)")
    return found


def _read_folder(folder: Path, split: Split | None, parsed: Parsed) -> None:
    files, bad = walk_images(folder)
    parsed.problems.extend(Problem(b.path, "", b.reason) for b in bad)
    expected: set[Path] = set()
    for image in files:
        labels_at = label_path(image)
        expected.add(labels_at)
        parsed.items.append(_incoming(image, labels_at, split, parsed))
    _report_orphans(folder, expected, parsed)


def _incoming(image: Path, labels_at: Path, split: Split | None, parsed: Parsed) -> Incoming:
    sample = Sample(path=str(image), split=split)
    item = Incoming(sample, str(image), labelled=False, normalized=True, label_file=str(labels_at))
    if labels_at.is_file():
        item.labelled = True
        read_labels(labels_at, item, parsed)
    return item


ROW_FIELDS = ("class_id", "cx", "cy", "w", "h")
Row = tuple[dict[str, Any], list[float] | None]


def read_labels(path: Path, item: Incoming, parsed: Parsed) -> None:
    """The boxes of one label file (fractions of the image) into `item`, with their line
    numbers; each refused row is reported and flags the item."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        item.refuse(parsed.problems, file, "", f"unreadable label file: {exc}")
        return
    rows: list[Row] = []
    wheres: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        row = _row(parts)
        if isinstance(row, str):
            item.refuse(parsed.problems, file, f"line {lineno}", row)
            continue
        rows.append(row)
        wheres.append(f"line {lineno}")
    _rows_to_labels(rows, wheres, file, item, parsed)


def _row(parts: list[str]) -> Row | str:
    """A box row's fields, or a polygon row as the box around it with its points; else why
    the row is refused."""
    if len(parts) == 5:
        return dict(zip(ROW_FIELDS, parts, strict=True)), None
    if len(parts) < 7 or len(parts) % 2 == 0:
        return (
            f"{len(parts)} columns, expected 5 (class cx cy w h) or an odd number from 7 "
            "(a polygon: class x0 y0 x1 y1 x2 y2 ...)"
        )
    polygon = yolo_polygon(parts)
    if isinstance(polygon, str):
        return polygon
    class_id, points = polygon
    x, y, w, h = polygon_box(points)
    return dict(zip(ROW_FIELDS, (class_id, x + w / 2, y + h / 2, w, h), strict=True)), points


def _rows_to_labels(
    rows: list[Row], wheres: list[str], file: str, item: Incoming, parsed: Parsed
) -> None:
    fields = [fields for fields, _ in rows]
    valid, positions, problems = validate_records(YOLO_ROWS, fields, file, "row", wheres)
    parsed.problems.extend(problems)
    item.refused.extend(f"{p.where}: {p.reason}" for p in problems)
    names = parsed.classes
    for row, index in zip(valid, positions, strict=True):
        if row.class_id >= len(names):
            reason = f"class id {row.class_id} is beyond names ({len(names)} classes)"
            item.refuse(parsed.problems, file, wheres[index], reason)
            continue
        points = rows[index][1]
        if points is None:
            box = Box(row.cx - row.w / 2, row.cy - row.h / 2, row.w, row.h)
        else:
            box = Box(*polygon_box(points))
            parsed.polygons += 1
            parsed.derived += 1
        item.sample.labels.append(Label(names[row.class_id], box, points=points))
        item.label_where.append(wheres[index])


def _report_orphans(folder: Path, expected: set[Path], parsed: Parsed) -> None:
    labels_dir = label_path(folder / "x").parent
    if labels_dir == folder or not labels_dir.is_dir():
        return
    for txt in sorted(labels_dir.rglob("*.txt")):
        if txt not in expected:
            parsed.problems.append(Problem(str(txt), "", "no image for this label file"))


# ---------------------------------------------------------------- writing
