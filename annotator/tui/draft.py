"""The box being drawn or edited by keyboard, as pure state: two corners in image pixels, the
part the arrows move (the whole box, its top-left or its bottom-right corner) and its class.
Moves are clamped to the image. No textual, no store."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from annotator.annotation import Box
from annotator.tui.viewport import half_up

Part = Literal["box", "top-left", "bottom-right"]
PARTS: tuple[Part, ...] = ("box", "top-left", "bottom-right")
MIN_SIZE = 1.0


@dataclass(frozen=True, slots=True)
class Draft:
    class_id: int
    x0: float
    y0: float
    x1: float
    y1: float
    image_w: int
    image_h: int
    part: Part = "box"
    ann_id: int | None = None  # set when editing an existing box

    @classmethod
    def around(cls, class_id: int, x: float, y: float, image_w: int, image_h: int) -> Draft:
        """A new box centred on (x, y), a quarter of the image wide and high, inside it."""
        w, h = max(MIN_SIZE, image_w / 4), max(MIN_SIZE, image_h / 4)
        x0 = min(max(0.0, x - w / 2), image_w - w)
        y0 = min(max(0.0, y - h / 2), image_h - h)
        return cls(class_id, x0, y0, x0 + w, y0 + h, image_w, image_h)

    @classmethod
    def of_box(cls, ann_id: int, class_id: int, box: Box, image_w: int, image_h: int) -> Draft:
        return cls(class_id, box.x, box.y, box.x + box.w, box.y + box.h, image_w, image_h,
                   "bottom-right", ann_id)  # fmt: skip

    def moved(self, dx: float, dy: float) -> Draft:
        """The draft with its active part moved by (dx, dy) image pixels, kept in the image."""
        if self.part == "box":
            dx = min(max(dx, -self.x0), self.image_w - self.x1)
            dy = min(max(dy, -self.y0), self.image_h - self.y1)
            return replace(self, x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx,
                           y1=self.y1 + dy)  # fmt: skip
        if self.part == "top-left":
            x0 = min(max(0.0, self.x0 + dx), self.x1 - MIN_SIZE)
            y0 = min(max(0.0, self.y0 + dy), self.y1 - MIN_SIZE)
            return replace(self, x0=x0, y0=y0)
        x1 = max(min(float(self.image_w), self.x1 + dx), self.x0 + MIN_SIZE)
        y1 = max(min(float(self.image_h), self.y1 + dy), self.y0 + MIN_SIZE)
        return replace(self, x1=x1, y1=y1)

    def next_part(self) -> Draft:
        return replace(self, part=PARTS[(PARTS.index(self.part) + 1) % len(PARTS)])

    def with_class(self, class_id: int) -> Draft:
        return replace(self, class_id=class_id)

    @property
    def box(self) -> Box:
        """The box in whole pixels, inside the image."""
        x0 = min(half_up(max(0.0, self.x0)), self.image_w - 1)
        y0 = min(half_up(max(0.0, self.y0)), self.image_h - 1)
        x1 = half_up(min(float(self.image_w), self.x1))
        y1 = half_up(min(float(self.image_h), self.y1))
        return Box(float(x0), float(y0), float(max(1, x1 - x0)), float(max(1, y1 - y0)))

    @property
    def active_point(self) -> tuple[float, float] | None:
        """The corner the arrows move (None when they move the whole box)."""
        if self.part == "top-left":
            return self.x0, self.y0
        if self.part == "bottom-right":
            return self.x1, self.y1
        return None
