"""Turning an image file into something the canvas draws: decode (JPEG draft mode, so a large
photo decodes at the size shown), apply the stored EXIF orientation, scale to the canvas, and
either build coloured half-block cells (each cell = one column and two pixel rows) or keep the
scaled picture for Kitty/Sixel via textual-image. Frames are cached (LRU) so the next image,
prefetched in a worker, is shown at once. Also picks the render mode: forced, or detected from
the terminal before the app starts. No store access; textual only through rich's segments."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.color import Color, ColorSystem, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from annotator.tui.viewport import HALF_BLOCK, Viewport, fit

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

Mode = Literal["halfblock", "sixel", "kitty"]
BACKGROUND = (24, 24, 24)
UPPER_HALF = "▀"
CACHE_SIZE = 8
QUANTIZE = 0xFCFCFC  # 6 bits a channel: invisible in half blocks, and 64x fewer colours to build
_CACHE_LIMIT = 60_000


@dataclass(frozen=True, slots=True)
class Frame:
    """One image decoded and scaled for one canvas size and mode. `lines` are the half-block
    cells (one tuple of segments per canvas row); `picture` is the scaled picture and `codes`
    its pixels as 0xRRGGBB integers (the colours around an outline); `error` says why there is
    no picture."""

    key: tuple[int, int, int, str]
    viewport: Viewport | None
    lines: tuple[tuple[Segment, ...], ...] = ()
    picture: PILImage | None = None
    codes: np.ndarray | None = None
    error: str | None = None

    @property
    def image_id(self) -> int:
        return self.key[0]


Key = tuple[int, int, int, str]  # image id, canvas columns, rows, mode
_color_cache: dict[int, Color] = {}
_cell_cache: dict[int, Segment] = {}
_fg_codes: dict[int, str] = {}
_bg_codes: dict[int, str] = {}
_color_system = ColorSystem.TRUECOLOR


def set_color_system(system: ColorSystem | None) -> None:
    """The terminal's colour system: cells pre-render their escape codes for it."""
    global _color_system
    system = system or ColorSystem.TRUECOLOR
    if system != _color_system:
        _color_system = system
        for cache in (_cell_cache, _fg_codes, _bg_codes):
            cache.clear()


def color(code: int) -> Color:
    """A truecolor rich Color for 0xRRGGBB, cached (photos repeat many colours)."""
    found = _color_cache.get(code)
    if found is None:
        if len(_color_cache) > _CACHE_LIMIT:
            _color_cache.clear()
        triplet = ColorTriplet(code >> 16, (code >> 8) & 0xFF, code & 0xFF)
        found = Color(f"#{code:06x}", ColorType.TRUECOLOR, triplet=triplet)
        _color_cache[code] = found
    return found


def rgb_code(rgb: tuple[int, int, int]) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def half_cell(top: int, bottom: int) -> Segment:
    """An upper-half block: `top` colour above, `bottom` below. Built (with its escape codes
    rendered, so the UI thread need not) in the worker that decodes the image; cached."""
    key = (top << 24) | bottom
    found = _cell_cache.get(key)
    if found is None:
        if len(_cell_cache) > _CACHE_LIMIT:
            _cell_cache.clear()
        style = Style.from_color(color(top), color(bottom))
        _prerender(style, top, bottom)
        found = _cell_cache[key] = Segment(UPPER_HALF, style)
    return found


def _prerender(style: Style, top: int, bottom: int) -> None:
    """Fill the style's escape-code cache that textual's Strip.render reads, from codes kept
    per colour for the terminal's colour system (rich's own path goes through small LRU caches
    that the colours of a photo overflow, and would run on the UI thread)."""
    try:
        style._ansi = f"{_sgr(top, _fg_codes, True)};{_sgr(bottom, _bg_codes, False)}"
    except AttributeError:  # a rich without that cache: let it render the usual way
        Strip.render_ansi(style, _color_system)


def _sgr(code: int, cache: dict[int, str], foreground: bool) -> str:
    found = cache.get(code)
    if found is None:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        ansi = color(code).downgrade(_color_system).get_ansi_codes(foreground=foreground)
        found = cache[code] = ";".join(ansi)
    return found


BACKGROUND_CELL = Segment(" ", Style.from_color(bgcolor=color(rgb_code(BACKGROUND))))

_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip


def load_picture(file: Path, orientation: int, size: tuple[int, int]) -> PILImage:
    """The image as displayed (orientation applied), scaled to `size` (width, height).

    Raises OSError / ValueError with a reason when the file is missing or unreadable."""
    from PIL import Image

    with Image.open(file) as opened:
        w, h = size
        opened.draft("RGB", (h, w) if orientation in (5, 6, 7, 8) else (w, h))
        img = opened.convert("RGB")
    name = _TRANSPOSE.get(orientation)
    if name is not None:
        img = img.transpose(getattr(Image.Transpose, name))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def describe_error(file: Path, exc: BaseException) -> str:
    """A one-line reason a picture cannot be shown."""
    if isinstance(exc, FileNotFoundError):
        return f"{file}: missing (moved or deleted?)"
    if isinstance(exc, PermissionError):
        return f"{file}: unreadable (permission denied)"
    if isinstance(exc, IsADirectoryError):
        return f"{file}: is a directory"
    name = type(exc).__name__
    if name == "UnidentifiedImageError":
        return f"{file}: not an image this program can read"
    return f"{file}: cannot be decoded ({exc})"


def pixel_codes(picture: PILImage) -> np.ndarray:
    """The picture's pixels as 0xRRGGBB integers (quantized), shape (height, width)."""
    import numpy as np

    arr = np.asarray(picture.convert("RGB"), dtype=np.uint32)
    codes: np.ndarray = ((arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]) & QUANTIZE
    return codes


def _never() -> None:
    return None


Lines = tuple[tuple[Segment, ...], ...]


def halfblock_lines(codes: np.ndarray, vp: Viewport, pause: Callable[[], None] = _never) -> Lines:
    """One tuple of segments per canvas row: the picture's dots as upper-half blocks (top dot
    as foreground, bottom dot as background), the margins as background."""
    c0, r0, ncols, nrows = vp.cell_span
    bg = rgb_code(BACKGROUND)
    pad_left = (BACKGROUND_CELL,) * c0
    pad_right = (BACKGROUND_CELL,) * max(0, vp.cols - c0 - ncols)
    blank = (BACKGROUND_CELL,) * vp.cols
    lines: list[tuple[Segment, ...]] = [blank] * vp.rows
    for row in range(nrows):
        pause()
        top = codes[2 * row].tolist()
        bottom = codes[2 * row + 1].tolist() if 2 * row + 1 < len(codes) else [bg] * len(top)
        cells = [half_cell(t, b) for t, b in zip(top, bottom, strict=True)]
        if r0 + row < vp.rows:
            lines[r0 + row] = (*pad_left, *cells[: vp.cols - c0], *pad_right)
    return tuple(lines)


def make_frame(image_id: int, file: Path, orientation: int, image_size: tuple[int, int],
               canvas: tuple[int, int], mode: Mode, cell_px: tuple[int, int],
               pause: Callable[[], None] = _never) -> Frame:  # fmt: skip
    """Decode and scale one image for a canvas of `canvas` (cols, rows) cells. `pause` is
    called between rows (a background decode waits there while the UI is busy)."""
    key = frame_key(image_id, canvas, mode)
    sub = HALF_BLOCK if mode == "halfblock" else cell_px
    vp = fit(image_size[0], image_size[1], canvas[0], canvas[1], sub)
    try:
        picture = load_picture(file, orientation, (vp.dots_w, vp.dots_h))
    except (OSError, ValueError, SyntaxError) as exc:
        return Frame(key, vp, error=describe_error(file, exc))
    codes = pixel_codes(picture)
    lines = halfblock_lines(codes, vp, pause) if mode == "halfblock" else ()
    return Frame(key, vp, lines, picture, codes)


def frame_key(image_id: int, canvas: tuple[int, int], mode: str) -> tuple[int, int, int, str]:
    return (image_id, canvas[0], canvas[1], mode)


class Abandoned(Exception):
    """A background decode given up: the user has moved on."""


class FrameCache:
    """A small thread-safe LRU of frames: workers fill it, the UI thread reads it. Decoding
    goes through `obtain`: one image at a time (a decode is Python-heavy; two at once would
    only fight over the interpreter and slow the UI), and never the same frame twice.

    Background decodes (prefetch) are polite: between rows they wait while `quiet` is clear
    (the UI is busy showing a move), unless an urgent decode is waiting for the lock."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._frames: OrderedDict[tuple[int, int, int, str], Frame] = OrderedDict()
        self._lock = threading.Lock()
        self._decoding = threading.Lock()
        self.quiet = threading.Event()
        self.quiet.set()
        self._urgent = 0

    def obtain(self, key: Key, make: Callable[[Callable[[], None]], Frame],
               urgent: bool = True, cancelled: Callable[[], bool] = bool) -> Frame:  # fmt: skip
        """The cached frame, or the one `make(pause)` builds (waiting for a decode in
        progress). An urgent caller (the image to show now) never pauses; a background one
        raises Abandoned as soon as `cancelled()` says nobody wants it any more."""
        found = self.get(key)
        if found is not None:
            return found
        self._count_urgent(+1 if urgent else 0)
        try:
            with self._decoding:
                found = self.get(key)  # decoded while this thread waited
                if found is None:
                    found = make(_never if urgent else lambda: self._pause(cancelled))
                    self.put(found)
        finally:
            self._count_urgent(-1 if urgent else 0)
        return found

    def _count_urgent(self, delta: int) -> None:
        with self._lock:
            self._urgent += delta

    def _pause(self, cancelled: Callable[[], bool]) -> None:
        while True:
            if cancelled():
                raise Abandoned
            if self.quiet.is_set() or self._urgent:
                return
            self.quiet.wait(0.01)

    def get(self, key: tuple[int, int, int, str]) -> Frame | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
            return frame

    def put(self, frame: Frame) -> None:
        with self._lock:
            self._frames[frame.key] = frame
            self._frames.move_to_end(frame.key)
            while len(self._frames) > self._size:
                self._frames.popitem(last=False)

    def forget(self, image_id: int) -> None:
        """Drop every frame of one image (its file may have changed)."""
        with self._lock:
            for key in [k for k in self._frames if k[0] == image_id]:
                del self._frames[key]


def detect_mode(requested: str) -> Mode:
    """The mode to draw with. `auto` asks the terminal (before the app starts: textual-image
    queries it on import) and falls back to half blocks; a forced mode is taken as it is."""
    if requested in ("halfblock", "sixel", "kitty"):
        return requested  # type: ignore[return-value]
    try:
        from textual_image import renderable
    except Exception:  # no terminal to ask, or the package is broken: the safe choice
        return "halfblock"
    chosen = renderable.Image
    if chosen is renderable.SixelImage:
        return "sixel"
    if chosen is renderable.TGPImage:
        return "kitty"
    return "halfblock"


def cell_pixels(mode: str) -> tuple[int, int]:
    """The terminal cell size in screen pixels (graphics modes); half blocks use (1, 2)."""
    if mode == "halfblock":
        return HALF_BLOCK
    try:
        from textual_image._terminal import get_cell_size

        size = get_cell_size()
        return (max(1, size.width), max(1, size.height))
    except Exception:
        return (10, 20)
