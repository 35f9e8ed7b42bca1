"""What is drawn over the image: each box as an outline in its class colour with a name tag
(prelabels dashed and dimmed, with their score; the selected box thicker with a marked tag; the
box being drawn with its active corner), and the keyboard cursor. Computed as replacement cells
for the half-block canvas, or painted into the picture for Kitty/Sixel. Pure: no store, no
widgets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style

from annotator.annotation import Box, Label
from annotator.store.queue import ClassInfo
from annotator.tui.render import BACKGROUND, color, half_cell, rgb_code
from annotator.tui.viewport import Viewport

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

GREY = 0x9E9E9E
WHITE = 0xFFFFFF
Cells = dict[int, dict[int, Segment]]  # row -> column -> segment


@dataclass(frozen=True, slots=True)
class Mark:
    box: Box
    color: int
    text: str
    dashed: bool = False
    selected: bool = False


@dataclass(frozen=True, slots=True)
class Tag:
    """A whole-image label, written over the image's top-left corner."""

    text: str
    color: int
    pending: bool = False


def parse_hex(value: str) -> int:
    try:
        return int(value.lstrip("#")[:6], 16)
    except ValueError:
        return GREY


def dim(code: int, amount: float = 0.45) -> int:
    """The colour blended towards grey (how prelabels are told apart from accepted boxes)."""
    r, g, b = code >> 16, (code >> 8) & 0xFF, code & 0xFF
    mix = [round(c * (1 - amount) + 128 * amount) for c in (r, g, b)]
    return (mix[0] << 16) | (mix[1] << 8) | mix[2]


def tag(label: Label) -> str:
    """A box's tag: the class name, and the score of a prediction waiting for review."""
    if label.review == "pending" and label.score is not None:
        return f"{label.class_name} {label.score:.2f}"
    return label.class_name


def marks_for(labels: Iterable[Label], classes: Mapping[str, ClassInfo],
              selected: int | None) -> list[Mark]:  # fmt: skip
    """Marks for the boxes shown (rejected prelabels are not drawn), the selected one last."""
    marks: list[Mark] = []
    for label in labels:
        if label.box is None or label.review == "rejected":
            continue
        cls = classes.get(label.class_name)
        code = parse_hex(cls.color) if cls else GREY
        pending = label.review == "pending"
        marks.append(Mark(label.box, dim(code) if pending else code, tag(label), pending,
                          label.id is not None and label.id == selected))  # fmt: skip
    return sorted(marks, key=lambda m: (m.selected, not m.dashed))


def tags_for(labels: Iterable[Label], classes: Mapping[str, ClassInfo]) -> list[Tag]:
    """Tags for the whole-image labels (accepted first, then predictions to review)."""
    tags = []
    for label in labels:
        if label.box is not None or label.review == "rejected":
            continue
        cls = classes.get(label.class_name)
        code = parse_hex(cls.color) if cls else GREY
        pending = label.review == "pending"
        text = f"{tag(label)} ?" if pending else f"✓ {label.class_name}"
        tags.append(Tag(text, dim(code) if pending else code, pending))
    return sorted(tags, key=lambda t: t.pending)


def _outline(x0: int, y0: int, x1: int, y1: int, dashed: bool) -> Iterable[tuple[int, int]]:
    """The dots (x, y) of a rectangle's outline; dashed = two on, two off (in step across
    nested outlines, so a thick dashed outline stays aligned)."""
    for x in range(x0, x1 + 1):
        if not dashed or (x // 2) % 2 == 0:
            yield x, y0
            yield x, y1
    for y in range(y0, y1 + 1):
        if not dashed or (y // 2) % 2 == 0:
            yield x0, y
            yield x1, y


def _dots(vp: Viewport, marks: Sequence[Mark]) -> dict[tuple[int, int], int]:
    dots: dict[tuple[int, int], int] = {}
    max_x, max_y = vp.cols * vp.sub_x - 1, vp.rows * vp.sub_y - 1
    for mark in marks:
        x0, y0, x1, y1 = vp.box_to_dots(mark.box)
        rects = [(x0, y0, x1, y1)]
        if mark.selected and x1 - x0 > 2 and y1 - y0 > 2:
            rects.append((x0 + 1, y0 + 1, x1 - 1, y1 - 1))
        for rect in rects:
            for x, y in _outline(*rect, mark.dashed):
                if 0 <= x <= max_x and 0 <= y <= max_y:
                    dots[(x, y)] = mark.color
    return dots


def _base(vp: Viewport, codes: np.ndarray | None, x: int, y: int) -> int:
    iy, ix = y - vp.top, x - vp.left
    if codes is not None and 0 <= iy < codes.shape[0] and 0 <= ix < codes.shape[1]:
        return int(codes[iy, ix])
    return rgb_code(BACKGROUND)


def _text_style(code: int, bold: bool, italic: bool) -> Style:
    r, g, b = code >> 16, (code >> 8) & 0xFF, code & 0xFF
    dark = 0.299 * r + 0.587 * g + 0.114 * b > 140
    fg = color(0x000000 if dark else WHITE)
    return Style.from_color(fg, color(code)) + Style(bold=bold, italic=italic)


def _put_tags(cells: Cells, vp: Viewport, tags: Sequence[Tag]) -> None:
    row, col = vp.top // vp.sub_y, vp.left // vp.sub_x
    for t in tags:
        _put_string(cells, vp, row, col, f" {t.text} ", _text_style(t.color, True, t.pending))
        col += cell_len(t.text) + 3


def _put_string(cells: Cells, vp: Viewport, row: int, col: int, text: str, style: Style) -> None:
    for ch in text:
        if col >= vp.cols or not 0 <= row < vp.rows:
            break
        cells.setdefault(row, {})[col] = Segment(ch if cell_len(ch) == 1 else "?", style)
        col += 1


def _put_text(cells: Cells, vp: Viewport, mark: Mark) -> None:
    x0, y0, _, _ = vp.box_to_dots(mark.box)
    row = y0 // vp.sub_y - 1 if y0 // vp.sub_y >= 1 else y0 // vp.sub_y
    col = max(0, min(x0 // vp.sub_x, vp.cols - 1))
    text = ("▶" if mark.selected else "") + mark.text
    _put_string(cells, vp, row, col, text, _text_style(mark.color, mark.selected, mark.dashed))


def _put_point(cells: Cells, vp: Viewport, point: tuple[float, float], char: str) -> None:
    dx, dy = vp.image_to_dot(*point)
    col, row = int(dx) // vp.sub_x, int(dy) // vp.sub_y
    col, row = min(max(col, 0), vp.cols - 1), min(max(row, 0), vp.rows - 1)
    cells.setdefault(row, {})[col] = Segment(char, Style(color="#ffffff", bold=True,
                                                         bgcolor="#000000"))  # fmt: skip


def halfblock_cells(vp: Viewport, codes: np.ndarray | None, marks: Sequence[Mark],
                    points: Sequence[tuple[tuple[float, float], str]] = (),
                    tags: Sequence[Tag] = ()) -> Cells:  # fmt: skip
    """The cells the overlay replaces (half-block mode): outlines at dot precision, each cell
    keeping the picture's colour in the half no outline crosses; then tags and points."""
    dots = _dots(vp, marks)
    cells: Cells = {}
    for x, y in {(x, y - y % 2) for x, y in dots}:
        top = dots.get((x, y)) or _base(vp, codes, x, y)
        bottom = dots.get((x, y + 1)) or _base(vp, codes, x, y + 1)
        cells.setdefault(y // 2, {})[x] = half_cell(top, bottom)
    for mark in marks:
        _put_text(cells, vp, mark)
    for point, char in points:
        _put_point(cells, vp, point, char)
    _put_tags(cells, vp, tags)
    return cells


def paint(picture: PILImage, vp: Viewport, marks: Sequence[Mark],
          points: Sequence[tuple[tuple[float, float], str]] = (),
          tags: Sequence[Tag] = ()) -> PILImage:  # fmt: skip
    """The picture with the overlay painted in (Kitty/Sixel modes)."""
    from PIL import ImageDraw, ImageFont

    out = picture.copy()
    draw = ImageDraw.Draw(out)
    width = max(1, min(vp.sub_x, vp.sub_y) // 6)
    font = ImageFont.load_default(size=max(10, int(vp.sub_y * 0.7)))
    for mark in marks:
        bx0, by0, bx1, by1 = vp.box_to_dots(mark.box)
        x0, y0, x1, y1 = bx0 - vp.left, by0 - vp.top, bx1 - vp.left, by1 - vp.top
        rgb = _rgb(mark.color)
        thick = width * (2 if mark.selected else 1)
        for x, y in _outline(x0, y0, x1, y1, False):
            if not mark.dashed or ((x - x0 + y - y0) // (4 * thick)) % 2 == 0:
                draw.rectangle((x, y, x + thick - 1, y + thick - 1), fill=rgb)
        text = ("> " if mark.selected else "") + mark.text
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        ty = y0 - (bottom - top) - 2 if y0 - (bottom - top) - 2 >= 0 else y0 + thick + 1
        draw.rectangle((x0, ty, x0 + right - left + 2, ty + bottom - top + 1), fill=rgb)
        draw.text((x0 + 1 - left, ty - top), text, fill=(0, 0, 0), font=font)
    _paint_tags(draw, tags, font)
    for (px, py), _char in points:
        cx, cy = px * vp.scale, py * vp.scale
        draw.line((cx - 6, cy, cx + 6, cy), fill=(255, 255, 255), width=2)
        draw.line((cx, cy - 6, cx, cy + 6), fill=(255, 255, 255), width=2)
    return out


def _paint_tags(draw: Any, tags: Sequence[Tag], font: Any) -> None:
    x: float = 2
    for t in tags:
        text = t.text.replace("✓", "+")  # the built-in font has no check mark
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((x, 2, x + right - left + 4, 4 + bottom - top), fill=_rgb(t.color))
        draw.text((x + 2 - left, 3 - top), text, fill=(0, 0, 0), font=font)
        x += right - left + 10


def _rgb(code: int) -> tuple[int, int, int]:
    return code >> 16, (code >> 8) & 0xFF, code & 0xFF
