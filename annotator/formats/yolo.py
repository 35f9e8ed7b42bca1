"""YOLO (Ultralytics detection layout): read `data.yaml` (or a loose `obj.names` folder) with
`images/<split>/` and `labels/<split>/`, and write that layout with one `.txt` per image.

Reading: split folders named by `data.yaml` are resolved inside the dataset folder only
(Roboflow's `../train/images` is read as `train/images`; a missing folder falls back to the
conventional `<split>/images` or `images/<split>` with a note). The label of an image is found
the way Ultralytics finds it (the last `/images/` becomes `/labels/`, the suffix `.txt`). An empty
`.txt` marks a negative; an image with no `.txt` stays unlabeled. Rows are validated; a bad row is
reported by file and line and flags its image for review (never a negative). A segmentation row
(`class x0 y0 x1 y1 ...`) gives the box around its points and keeps the points. Writing:
`class cx cy w h` clipped to [0, 1], 6 decimals; crowd regions are left out (Ultralytics drops
them); `data.yaml` without `path`."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from annotator.annotation import Box, Label, Sample, Split
from annotator.errors import InvalidInputError, NotFoundError
from annotator.formats.common import (
    Incoming,
    Parsed,
    Problem,
    WriterBase,
    norm,
    split_from_name,
    split_rank,
    within,
)
from annotator.formats.manifest import FileList
from annotator.formats.records import (
    YOLO_ROWS,
    YoloDataYaml,
    describe,
    polygon_box,
    validate_records,
    yolo_polygon,
)
from annotator.store.export_reads import ExportRow
from annotator.store.imagefile import walk_images

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
NAME_FILES = ("obj.names", "classes.txt", "classes.names")
SPLITS: tuple[Split, ...] = ("train", "val", "test")
MIN_SIDE = 10  # Ultralytics drops images with a side under this
LINE = "%d %.6f %.6f %.6f %.6f\n"  # class cx cy w h
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
