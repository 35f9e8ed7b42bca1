"""What every format shares: the result of reading a source (`Parsed`), split names, keeping
paths from label files inside the dataset folder, the export-side contract (`Writer`) and
unique export file names. Pure conversion; file I/O stays in the format modules."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from annotator.annotation import Sample, Split
from annotator.errors import StorageError, os_error_reason
from annotator.store.incoming import Incoming, Problem

__all__ = ["Incoming", "Parsed", "Problem", "safe_join", "split_from_name", "within"]

_SPLIT_PREFIXES: tuple[tuple[str, Split], ...] = (
    ("train", "train"),
    ("validation", "val"),
    ("valid", "val"),
    ("val", "val"),
    ("test", "test"),
)
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass
class Parsed:
    """A source read into memory: the dataset folder every image lies in, the classes in order,
    one `Incoming` per image, and what could not be read."""

    root: Path
    classes: list[str] = field(default_factory=list)
    items: list[Incoming] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    polygons: int = 0  # polygons whose points are kept
    derived: int = 0  # boxes derived from polygons (no bbox given)
    masks: int = 0  # RLE masks and multi-part polygons: only their boxes are kept
    task_hint: str | None = None

    def add_classes(self, names: Iterable[str]) -> None:
        known = set(self.classes)
        for name in names:
            if name not in known:
                known.add(name)
                self.classes.append(name)

    @property
    def has_boxes(self) -> bool:
        return any(lb.box is not None for it in self.items for lb in it.sample.labels)

    @property
    def has_labels(self) -> bool:
        return any(it.sample.labels for it in self.items)

    def infer_task(self) -> str:
        """detection when any box, multilabel when an image holds several classes, else
        classification (or what the source's kind suggests when it holds no label)."""
        if self.has_boxes:
            return "detection"
        if any(len({lb.class_name for lb in it.sample.labels}) > 1 for it in self.items):
            return "multilabel"
        if any(it.sample.labels for it in self.items):
            return "classification"
        return self.task_hint or "classification"


def split_from_name(name: str) -> Split | None:
    """train/val/test from a file or folder name: instances_train2017, valid, _val, test-dev."""
    stem = name.lower()
    for prefix in ("instances_", "labels_", "image_info_", "person_keypoints_"):
        stem = stem.removeprefix(prefix)
    for prefix, split in _SPLIT_PREFIXES:
        if stem.startswith(prefix):
            return split
    return None


def split_rank(split: str | None) -> int:
    """Sort key reading train before val before test (so a copy in val of a train image is the
    one reported), then anything without a split."""
    return {"train": 0, "val": 1, "test": 2}.get(split or "", 3)


def safe_join(root: Path, name: str) -> Path | None:
    """`root / name` when it stays inside `root` (lexically, after normalising `..`); None for
    an absolute path, a drive letter or one that climbs out (`../../etc/passwd`)."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or _DRIVE.match(name):
        return None
    return within(root, os.path.join(os.path.abspath(root), name))


def within(root: Path | str, path: str | Path) -> Path | None:
    """`path` normalised, when it lies inside `root` (or is `root`); else None."""
    base = os.path.normpath(os.path.abspath(root))
    joined = os.path.normpath(os.path.abspath(path))
    if joined == base or joined.startswith(base.rstrip(os.sep) + os.sep):
        return Path(joined)
    return None


def norm(path: Path) -> Path:
    """An absolute, normalised path (symlinks kept)."""
    return Path(os.path.normpath(os.path.abspath(path)))


class Writer(Protocol):
    """One export format: images go where `image_path` says; labels are written as samples
    arrive (streamed), split by split; `close` returns each label file with its SHA-256.
    `warnings` are told to the user; `extra` goes into the manifest. Used as a context manager:
    a block left by an error calls `abort`."""

    warnings: list[str]
    extra: dict[str, Any]

    def begin(self, split: str) -> None: ...

    def image_path(self, split: str, sample: Sample, name: str) -> str | None: ...

    def add(self, split: str, sample: Sample, name: str) -> None: ...

    def end(self, split: str) -> None: ...

    def close(self, splits: list[str]) -> dict[str, str]:
        """Finish the export; returns {label file relative to the export: SHA-256}."""
        ...

    def abort(self) -> None:
        """The export failed: release what the writer holds (open files, threads in flight,
        its temporary files), so that the folder it wrote into can be removed."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...  # fmt: skip


class WriterBase:
    """A `Writer`'s context-manager half: leaving the block by an error calls `abort` (which
    releases nothing by default); a writer holding files or threads overrides it."""

    def abort(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if exc is not None:
            self.abort()


def write_error(dest: Path, exc: OSError, staged: Path | None) -> StorageError:
    """An export's file-system error (no space, no permission, a read-only or special file
    system) as one line naming DEST and the reason; a file inside the hidden folder the export
    is built in is named by where it would have gone in DEST."""
    where = os.fsdecode(exc.filename) if exc.filename else ""
    if staged is not None and where.startswith(str(staged)):
        where = str(dest) + where[len(str(staged)) :]
    hidden = os.path.basename(where).startswith(f".{dest.name}.")  # the building folder itself
    shown = where and not hidden and where not in (str(dest), str(dest.parent))
    detail = f" ({where})" if shown else ""
    return StorageError(
        f"cannot write the export to {dest}: {os_error_reason(exc)}{detail}; nothing was written"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class UniqueNames:
    """Export file names: the image's own name while it is free, else `stem-<image id>`;
    compared without case (case-insensitive file systems) and by stem (YOLO's `.txt` beside
    `x.jpg` and `x.png` would clash). Non-ASCII names are kept as they are."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def name(self, sample: Sample) -> str:
        base = os.path.basename(sample.path.replace("\\", "/")) or f"image-{sample.id}.jpg"
        stem, ext = os.path.splitext(base)
        stem = stem.strip() or "image"
        for candidate in _candidates(stem, sample.id):
            key = candidate.casefold()
            if key not in self.taken:
                self.taken.add(key)
                return candidate + ext
        raise RuntimeError(f"no free export name for {sample.path}")  # pragma: no cover


def _candidates(stem: str, image_id: int | None) -> Iterator[str]:
    yield stem
    yield f"{stem}-{image_id}"
    for n in range(2, 1000):
        yield f"{stem}-{image_id}-{n}"
