"""The formats by name: how each reads a source and which writer exports a dataset of a given
task (or why it cannot). Import and export look formats up here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import InvalidInputError
from annotator.formats import coco, imagefolder, yolo
from annotator.formats.common import Parsed, Writer

Reader = Callable[[Path, Path | None], Parsed]
WriterFactory = Callable[[Path, list[str], str, str], Writer]


@dataclass(frozen=True)
class Format:
    name: str
    read: Reader
    writers: dict[str, WriterFactory]  # dataset task -> writer

    def check(self, task: str, dataset: str) -> None:
        """Refuse a task this format cannot hold, naming the formats that fit."""
        if task not in self.writers:
            fits = " or ".join(f.name for f in FORMATS.values() if task in f.writers)
            raise InvalidInputError(
                f"{self.name} cannot hold a {task} dataset ({dataset!r}): export it as {fits}"
            )

    def writer(self, task: str, dest: Path, classes: list[str], dataset: str) -> Writer:
        self.check(task, dataset)
        return self.writers[task](dest, classes, dataset, task)


def _coco(dest: Path, classes: list[str], dataset: str, task: str) -> Writer:
    return coco.CocoWriter(dest, classes, dataset, task)


def _yolo(dest: Path, classes: list[str], dataset: str, task: str) -> Writer:
    return yolo.YoloWriter(dest, classes)


def _folders(dest: Path, classes: list[str], dataset: str, task: str) -> Writer:
    return imagefolder.FolderWriter(dest, classes)


FORMATS: dict[str, Format] = {
    "coco": Format(
        "coco", coco.read, {"classification": _coco, "multilabel": _coco, "detection": _coco}
    ),
    "yolo": Format("yolo", yolo.read, {"detection": _yolo, "classification": _folders}),
    "imagefolder": Format("imagefolder", imagefolder.read, {"classification": _folders}),
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown format {name!r}: choose one of {', '.join(FORMATS)}"
        ) from None
