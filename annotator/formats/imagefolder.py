"""ImageFolder: class folders (`<root>/<class>/img`, optionally under `train/ val/ test/`), the
layout torchvision's `ImageFolder` and Ultralytics' classification trainer read. Also the
writer of that layout, which the YOLO format uses for classification datasets.

Reading: a folder whose every subfolder is a split name is split; otherwise its subfolders are
the classes. Images in nested folders inside a class belong to that class (torchvision's
reading); images directly in the root (or a split folder) belong to no class and are imported
unlabeled. Hidden files and folders are skipped. Writing: every split gets every class folder,
so class indices agree across splits; one class per image."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from annotator.annotation import Label, Sample, Split
from annotator.errors import InvalidInputError, NotFoundError
from annotator.formats.common import (
    Incoming,
    Parsed,
    Problem,
    WriterBase,
    norm,
    split_from_name,
    split_rank,
)
from annotator.store.imagefile import is_image_name, walk_images

SPLIT_FOLDERS = frozenset({"train", "val", "valid", "validation", "test"})


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read(source: Path, images: Path | None = None) -> Parsed:
    """Every image under the class folders (and unlabeled ones beside them)."""
    root = norm(Path(source))
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such folder")
    parsed = Parsed(root=root, task_hint="classification")
    subfolders = _subfolders(root)
    if subfolders and all(p.name.lower() in SPLIT_FOLDERS for p in subfolders):
        for folder in sorted(subfolders, key=lambda p: split_rank(split_from_name(p.name))):
            _read_split(folder, split_from_name(folder.name), parsed)
    else:
        _read_split(root, None, parsed)
    if not parsed.items and not parsed.problems:
        raise NotFoundError(f"{root}: no images in class folders")
    return parsed


def _read_split(folder: Path, split: Split | None, parsed: Parsed) -> None:
    classes = _subfolders(folder)
    parsed.add_classes(c.name.strip() for c in classes)
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and is_image_name(entry) and not entry.name.startswith("."):
            sample = Sample(path=str(entry), split=split)
            parsed.items.append(Incoming(sample, str(entry), labelled=False))
    for class_dir in classes:
        files, bad = walk_images(class_dir)
        parsed.problems.extend(Problem(b.path, "", b.reason) for b in bad)
        for image in files:
            sample = Sample(path=str(image), split=split, labels=[Label(class_dir.name.strip())])
            parsed.items.append(Incoming(sample, str(image), label_where=[""]))


def check_folder_name(name: str) -> None:
    """A class name must be usable as a folder name, and not a hidden one (which readers,
    ours included, skip)."""
    if name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidInputError(f"class {name!r} cannot be a folder name: rename it first")


class FolderWriter(WriterBase):
    """`<dest>/<split>/<class>/<image>`: the folder is the label. Images with no class or
    several are left out (counted). The manifest carries `tree_sha256`, the SHA-256 of the
    sorted lines `<split>/<class>/<file>` (the labels of this layout)."""

    def __init__(self, dest: Path, classes: list[str]) -> None:
        for name in classes:
            check_folder_name(name)
        self.dest, self.classes = dest, classes
        self.lines: list[str] = []
        self.used: dict[str, set[str]] = {}
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}

    def begin(self, split: str) -> None:
        for name in self.classes:
            (self.dest / split / name).mkdir(parents=True, exist_ok=True)
        self.used[split] = set()

    def image_path(self, split: str, sample: Sample, name: str) -> str | None:
        classes = {label.class_name for label in sample.labels}
        if len(classes) != 1:
            return None
        return os.path.join(self.dest, split, classes.pop(), name)

    def add(self, split: str, sample: Sample, name: str) -> None:
        cls = sample.labels[0].class_name
        self.used[split].add(cls)
        self.lines.append(f"{split}/{cls}/{name}\n")

    def end(self, split: str) -> None:
        empty = [c for c in self.classes if c not in self.used[split]]
        if empty:
            shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
            self.warnings.append(
                f"{split}: no image of {shown}: torchvision's ImageFolder needs allow_empty=True"
            )

    def close(self, splits: list[str]) -> dict[str, str]:
        digest = hashlib.sha256("".join(sorted(self.lines)).encode()).hexdigest()
        self.extra["tree_sha256"] = digest
        return {}
