"""The image canvas: draws a frame (half blocks line by line, or a Kitty/Sixel picture through
textual-image) with the boxes over it, and turns mouse drags into boxes in image pixels. It
holds no labels of its own: the screen hands it what to show. A missing or unreadable image is
drawn as a placeholder with the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.filter import ANSIToTruecolor, LineFilter
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from annotator.annotation import Box, Label
from annotator.store.queue import ClassInfo
from annotator.tui.draft import Draft
from annotator.tui.overlay import (
    Cells,
    Mark,
    Tag,
    halfblock_cells,
    marks_for,
    paint,
    parse_hex,
    tags_for,
)
from annotator.tui.render import BACKGROUND, Frame, Mode
from annotator.tui.viewport import Viewport

BG_STYLE = Style(bgcolor="rgb({},{},{})".format(*BACKGROUND))
ERROR_STYLE = Style(color="#ffb4a8", bgcolor="rgb({},{},{})".format(*BACKGROUND), bold=True)
HINT_STYLE = Style(color="#bdbdbd", bgcolor="rgb({},{},{})".format(*BACKGROUND))


@dataclass(frozen=True, slots=True)
class Overlay:
    """Everything drawn over the picture."""

    labels: tuple[Label, ...] = ()
    selected: int | None = None
    draft: Draft | None = None
    draft_text: str = ""
    draft_color: str = "#ffffff"
    cursor: tuple[float, float] | None = None


class ImageCanvas(Widget, can_focus=True):
    """The picture and its boxes. Posts `Resized`, `Dragged` and `Clicked`."""

    DEFAULT_CSS = """
    ImageCanvas { width: 1fr; height: 1fr; background: rgb(24,24,24); }
    ImageCanvas > .picture { display: none; }
    ImageCanvas > .picture.-shown { display: block; }
    """

    @dataclass
    class Resized(Message):
        cols: int
        rows: int

    @dataclass
    class Dragged(Message):
        """A box drawn with the mouse, in image pixels."""

        box: Box

    @dataclass
    class Clicked(Message):
        """A click on the picture (no drag), in image pixels."""

        x: float
        y: float

    def __init__(self, mode: Mode = "halfblock", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode: Mode = mode
        self.frame: Frame | None = None
        self.palette: Mapping[str, ClassInfo] = {}
        self.overlay = Overlay()
        self._cells: Cells = {}
        self._strips: dict[int, Strip] = {}
        self._drag: tuple[int, int, int, int] | None = None
        self.loading_text = ""

    def compose(self) -> ComposeResult:
        if self.mode != "halfblock":
            yield _graphics_widget(self.mode)

    @property
    def viewport(self) -> Viewport | None:
        return self.frame.viewport if self.frame is not None else None

    def show(self, frame: Frame | None, overlay: Overlay | None = None) -> None:
        """Draw `frame` with `overlay` (keeps the current overlay when None)."""
        self.frame = frame
        if overlay is not None:
            self.overlay = overlay
        self._redraw()

    def set_overlay(self, overlay: Overlay) -> None:
        self.overlay = overlay
        self._redraw()

    def _marks(self) -> list[Mark]:
        ov = self.overlay
        marks = marks_for(ov.labels, self.palette, ov.selected)
        vp = self.viewport
        if ov.draft is not None:
            marks.append(Mark(ov.draft.box, parse_hex(ov.draft_color), ov.draft_text,
                              selected=True))  # fmt: skip
        elif self._drag is not None and vp is not None:
            box = vp.cells_to_box(*self._drag)
            if box is not None:
                marks.append(Mark(box, parse_hex(ov.draft_color), ov.draft_text, selected=True))
        return marks

    def _tags(self) -> list[Tag]:
        return tags_for(self.overlay.labels, self.palette)

    def _points(self) -> list[tuple[tuple[float, float], str]]:
        ov = self.overlay
        points: list[tuple[tuple[float, float], str]] = []
        if ov.draft is not None and ov.draft.active_point is not None:
            points.append((ov.draft.active_point, "◆"))
        elif ov.draft is None and ov.cursor is not None:
            points.append((ov.cursor, "┼"))
        return points

    def _redraw(self) -> None:
        self._strips = {}
        frame = self.frame
        if frame is None or frame.viewport is None or frame.error:
            self._cells = {}
        elif self.mode == "halfblock":
            self._cells = halfblock_cells(frame.viewport, frame.codes, self._marks(),
                                          self._points(), self._tags())  # fmt: skip
        else:
            self._show_picture(frame)
        self.refresh()

    def _show_picture(self, frame: Frame) -> None:
        vp = frame.viewport
        picture_widget = self.query_one(".picture", Widget)
        if frame.picture is None or vp is None:
            picture_widget.remove_class("-shown")
            return
        c0, r0, ncols, nrows = vp.cell_span
        picture_widget.styles.width = ncols
        picture_widget.styles.height = nrows
        picture_widget.styles.offset = (c0, r0)
        painted = paint(frame.picture, vp, self._marks(), self._points(), self._tags())
        picture_widget.image = painted  # type: ignore[attr-defined]
        picture_widget.add_class("-shown")

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Every colour drawn here is already truecolor: skip the ANSI-to-truecolor filter,
        which would look up each of the ~10,000 cell styles of a new image one by one."""
        return [f for f in super().get_line_filters() if not isinstance(f, ANSIToTruecolor)]

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized(event.size.width, event.size.height))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        strip = self._strips.get(y)
        if strip is None or strip.cell_length != width:
            strip = self._line(y).adjust_cell_length(width, BG_STYLE)
            self._strips[y] = strip
        return strip

    def _line(self, y: int) -> Strip:
        frame = self.frame
        if frame is None:
            return self._message_line(y, [self.loading_text], HINT_STYLE)
        if frame.error:
            lines = ["This image cannot be shown", frame.error, "",
                     "s: skip it    n: next image"]  # fmt: skip
            return self._message_line(y, lines, ERROR_STYLE)
        if self.mode != "halfblock" or y >= len(frame.lines):
            return Strip([], 0)
        row = frame.lines[y]
        over = self._cells.get(y)
        if over:
            cells = list(row)
            for col, seg in over.items():
                if col < len(cells):
                    cells[col] = seg
            return Strip(cells, len(cells))
        return Strip(row, len(row))

    def _message_line(self, y: int, lines: Sequence[str], style: Style) -> Strip:
        top = max(0, (self.size.height - len(lines)) // 2)
        if not top <= y < top + len(lines):
            return Strip([], 0)
        text = lines[y - top][: self.size.width]
        pad = max(0, (self.size.width - len(text)) // 2)
        return Strip([Segment(" " * pad, BG_STYLE), Segment(text, style)], pad + len(text))

    def _cell(self, event: events.MouseEvent) -> tuple[int, int]:
        region = self.content_region
        return event.screen_x - region.x, event.screen_y - region.y

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if event.button != 1 or self.viewport is None:
            return
        col, row = self._cell(event)
        self._drag = (col, row, col, row)
        self.capture_mouse()
        event.stop()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._drag is None:
            return
        col, row = self._cell(event)
        self._drag = (self._drag[0], self._drag[1], col, row)
        self._redraw()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._drag is None:
            return
        self.release_mouse()
        c0, r0, _, _ = self._drag
        col, row = self._cell(event)
        self._drag = None
        vp = self.viewport
        if vp is None:
            return
        if (col, row) == (c0, r0):
            self.post_message(self.Clicked(*vp.cell_center(col, row)))
        else:
            box = vp.cells_to_box(c0, r0, col, row)
            if box is not None:
                self.post_message(self.Dragged(box))
        self._redraw()
        event.stop()


def _graphics_widget(mode: Mode) -> Widget:
    from textual_image.widget import SixelImage, TGPImage

    cls = SixelImage if mode == "sixel" else TGPImage
    return cls(classes="picture")
