"""The pure mapping between the canvas's cells and the image's pixels (displayed orientation).

The canvas is `cols` x `rows` cells; each cell is `sub_x` x `sub_y` "dots" (half-block mode: 1 x 2,
each cell = one column and two pixel rows of the scaled image; graphics modes: the cell's size in
screen pixels). The image is scaled by `scale` dots per image pixel to fit, and centred at dot
offset (`left`, `top`), both on cell boundaries. Coordinates stored or sent to the store are always
image pixels; cells and dots exist only here and in the renderers. No textual, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from annotator.annotation import Box

HALF_BLOCK = (1, 2)


def half_up(value: float) -> int:
    """Round to the nearest whole pixel, halves up (both edges of a box the same way)."""
    return math.floor(value + 0.5)


@dataclass(frozen=True, slots=True)
class Viewport:
    image_w: int
    image_h: int
    cols: int
    rows: int
    sub_x: int
    sub_y: int
    scale: float  # dots per image pixel
    left: int  # dot offset of the image's left edge
    top: int  # dot offset of the image's top edge

    @property
    def dots_w(self) -> int:
        """Width of the scaled image in dots."""
        return max(1, round(self.image_w * self.scale))

    @property
    def dots_h(self) -> int:
        return max(1, round(self.image_h * self.scale))

    @property
    def cell_span(self) -> tuple[int, int, int, int]:
        """First column, first row, columns and rows of cells the image covers."""
        c0, r0 = self.left // self.sub_x, self.top // self.sub_y
        c1 = -(-(self.left + self.dots_w) // self.sub_x)
        r1 = -(-(self.top + self.dots_h) // self.sub_y)
        return c0, r0, c1 - c0, r1 - r0

    def dot_to_image(self, dx: float, dy: float) -> tuple[float, float]:
        return (dx - self.left) / self.scale, (dy - self.top) / self.scale

    def image_to_dot(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale + self.left, y * self.scale + self.top

    def cell_rect(self, col: int, row: int) -> tuple[float, float, float, float]:
        """The image-pixel rectangle (x0, y0, x1, y1) one cell covers (not clipped)."""
        x0, y0 = self.dot_to_image(col * self.sub_x, row * self.sub_y)
        x1, y1 = self.dot_to_image((col + 1) * self.sub_x, (row + 1) * self.sub_y)
        return x0, y0, x1, y1

    def cell_center(self, col: int, row: int) -> tuple[float, float]:
        """The image pixel at the cell's centre, clamped inside the image."""
        x0, y0, x1, y1 = self.cell_rect(col, row)
        return self.clamp((x0 + x1) / 2, (y0 + y1) / 2)

    def clamp(self, x: float, y: float) -> tuple[float, float]:
        return min(max(x, 0.0), float(self.image_w)), min(max(y, 0.0), float(self.image_h))

    def on_image(self, col: int, row: int) -> bool:
        x0, y0, x1, y1 = self.cell_rect(col, row)
        return x1 > 0 and y1 > 0 and x0 < self.image_w and y0 < self.image_h

    def cells_to_box(self, col0: int, row0: int, col1: int, row1: int) -> Box | None:
        """The box a drag from one cell to another covers: both cells included, in whole image
        pixels, clipped to the image. None when it has no area inside the image."""
        ax0, ay0, _, _ = self.cell_rect(min(col0, col1), min(row0, row1))
        _, _, bx1, by1 = self.cell_rect(max(col0, col1), max(row0, row1))
        return self.box_from_corners(ax0, ay0, bx1, by1)

    def box_from_corners(self, x0: float, y0: float, x1: float, y1: float) -> Box | None:
        """A box between two image points (any order), rounded to whole pixels and clipped."""
        (x0, y0), (x1, y1) = self.clamp(x0, y0), self.clamp(x1, y1)
        left, right = half_up(min(x0, x1)), half_up(max(x0, x1))
        top, bottom = half_up(min(y0, y1)), half_up(max(y0, y1))
        if right <= left or bottom <= top:
            return None
        return Box(float(left), float(top), float(right - left), float(bottom - top))

    def box_to_dots(self, box: Box) -> tuple[int, int, int, int]:
        """The box's outline in dots: first and last dot column, first and last dot row."""
        dx0, dy0 = self.image_to_dot(box.x, box.y)
        dx1, dy1 = self.image_to_dot(box.x + box.w, box.y + box.h)
        x0, y0 = int(dx0), int(dy0)
        return x0, y0, max(x0, round(dx1) - 1), max(y0, round(dy1) - 1)

    @property
    def key_step(self) -> tuple[float, float]:
        """Image pixels one arrow press moves: one half-block dot (a column, half a row)."""
        return self.sub_x / self.scale, (self.sub_y / 2) / self.scale


def fit(image_w: int, image_h: int, cols: int, rows: int, sub: tuple[int, int] = HALF_BLOCK,
        ) -> Viewport:  # fmt: skip
    """Scale the image as large as the canvas allows, keep its aspect, centre it."""
    sub_x, sub_y = sub
    cols, rows = max(1, cols), max(1, rows)
    scale = min(cols * sub_x / image_w, rows * sub_y / image_h)
    dots_w = max(1, round(image_w * scale))
    dots_h = max(1, round(image_h * scale))
    left = ((cols * sub_x - dots_w) // 2 // sub_x) * sub_x
    top = ((rows * sub_y - dots_h) // 2 // sub_y) * sub_y
    return Viewport(image_w, image_h, cols, rows, sub_x, sub_y, scale, left, top)
