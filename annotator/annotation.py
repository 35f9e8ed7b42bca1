"""The shared in-memory annotation type. Every format reader and writer, every model adapter and
the store's import/export services convert to and from these plain dataclasses, so no format
knows about another or about the ORM. Boxes are absolute pixels of the *displayed* image (EXIF
orientation applied), top-left origin. Depends on nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box: x, y of the top-left corner, w, h; floats in displayed pixels."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    def clipped(self, width: float, height: float) -> Box:
        """The part of the box inside a width x height image."""
        x0, y0 = max(0.0, self.x), max(0.0, self.y)
        x1, y1 = min(float(width), self.x + self.w), min(float(height), self.y + self.h)
        return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))

    def inside(self, width: float, height: float, tol: float = 1e-6) -> bool:
        """Whether the box lies within the image (with a small float tolerance)."""
        return (
            self.x >= -tol
            and self.y >= -tol
            and self.x + self.w <= width + tol
            and self.y + self.h <= height + tol
        )


@dataclass(slots=True)
class Label:
    """One whole-image label (box is None) or one box, with where it came from."""

    class_name: str
    box: Box | None = None
    score: float | None = None
    source: str = "human"  # "human" or a model name
    review: str = "accepted"  # pending | accepted | rejected
    iscrowd: bool = False
    id: int | None = None  # the store's annotation id when it came from the store
    points: list[float] | None = None  # a polygon's x0, y0, x1, y1, ... (box = their min/max)


@dataclass(slots=True)
class Sample:
    """One image and its labels. `path` is what the image's file is called where it lives:
    relative to a dataset or export root, or absolute."""

    path: str
    width: int | None = None
    height: int | None = None
    labels: list[Label] = field(default_factory=list)
    split: Split | None = None
    id: int | None = None  # the store's image id
    sha256: str | None = None
    orientation: int = 1
