"""Turning files into frames: EXIF orientation, half-block cells, placeholders for files that
cannot be shown, the frame cache, the render mode, and the overlay (outlines, tags, painting
for Kitty/Sixel)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from annotator.annotation import Box, Label
from annotator.store.queue import ClassInfo
from annotator.tui import overlay, render
from annotator.tui.viewport import fit


def _jpeg(path: Path, orientation: int | None = None) -> Path:
    """Stored 40x20: left half red, right half blue."""
    img = Image.new("RGB", (40, 20), (230, 20, 20))
    img.paste((20, 20, 230), (20, 0, 40, 20))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif.tobytes())
    return path


def _near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_pictures_are_shown_as_displayed(tmp_path: Path, orientation: int) -> None:
    path = _jpeg(tmp_path / "a.jpg", orientation)
    with Image.open(path) as img:
        expected = ImageOps.exif_transpose(img).convert("RGB")
    size = expected.size
    picture = render.load_picture(path, orientation, size)
    assert picture.size == size
    for xy in [(2, 2), (size[0] - 3, size[1] - 3), (2, size[1] - 3), (size[0] - 3, 2)]:
        assert _near(picture.getpixel(xy), expected.getpixel(xy)), xy  # type: ignore[arg-type]


def test_orientation_6_puts_the_stored_left_half_on_top(tmp_path: Path) -> None:
    picture = render.load_picture(_jpeg(tmp_path / "a.jpg", 6), 6, (20, 40))
    assert _near(picture.getpixel((10, 5)), (230, 20, 20))  # type: ignore[arg-type]
    assert _near(picture.getpixel((10, 35)), (20, 20, 230))  # type: ignore[arg-type]


def _color(seg: object) -> tuple[object, object]:
    style = seg.style  # type: ignore[attr-defined]
    return style.color.triplet, style.bgcolor.triplet


def test_half_blocks_hold_two_pixel_rows_per_cell() -> None:
    img = Image.new("RGB", (2, 4))
    colors = [(252, 0, 0), (0, 252, 0), (0, 0, 252), (252, 252, 0)]  # one colour per row
    for y, c in enumerate(colors):
        for x in range(2):
            img.putpixel((x, y), c)
    vp = fit(2, 4, 4, 2)  # 4 columns x 2 rows = 4 x 4 dots: scale 1, one column of margin
    lines = render.halfblock_lines(render.pixel_codes(img), vp)
    assert len(lines) == 2 and all(len(row) == 4 for row in lines)
    assert lines[0][0] is render.BACKGROUND_CELL and lines[0][3] is render.BACKGROUND_CELL
    top, bottom = _color(lines[0][1])
    assert (tuple(top), tuple(bottom)) == (colors[0], colors[1])  # type: ignore[arg-type]
    top, bottom = _color(lines[1][2])
    assert (tuple(top), tuple(bottom)) == (colors[2], colors[3])  # type: ignore[arg-type]
    assert lines[0][1].text == render.UPPER_HALF


def test_a_frame_is_decoded_at_canvas_size(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "a.jpg", 6)
    frame = render.make_frame(3, path, 6, (20, 40), (30, 10), "halfblock", (1, 2))
    assert frame.error is None and frame.viewport is not None
    assert frame.picture is not None and frame.picture.size == (10, 20)  # scale 0.5
    assert len(frame.lines) == 10 and frame.key == (3, 30, 10, "halfblock")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "missing"), (b"not an image", "not an image"), (b"\xff\xd8\xff\xe0\x00", "cannot")],
)
def test_files_that_cannot_be_shown_get_a_reason(tmp_path: Path, content: bytes | None,
                                                  reason: str) -> None:  # fmt: skip
    path = tmp_path / "b.jpg"
    if content is not None:
        path.write_bytes(content)
    frame = render.make_frame(1, path, 1, (10, 10), (20, 10), "halfblock", (1, 2))
    assert frame.error is not None and reason in frame.error and str(path) in frame.error
    assert frame.lines == ()


def test_the_cache_keeps_the_newest_and_decodes_each_frame_once(tmp_path: Path) -> None:
    cache = render.FrameCache(size=2)
    for i in range(3):
        cache.put(render.Frame((i, 1, 1, "halfblock"), None))
    assert cache.get((0, 1, 1, "halfblock")) is None
    assert cache.get((2, 1, 1, "halfblock")) is not None
    made: list[int] = []

    def make(pause: object) -> render.Frame:
        made.append(1)
        time.sleep(0.05)
        return render.Frame((9, 1, 1, "halfblock"), None)

    threads = [threading.Thread(target=cache.obtain, args=((9, 1, 1, "halfblock"), make))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1]


def test_background_decodes_wait_while_the_ui_is_busy_and_give_up_when_told() -> None:
    cache = render.FrameCache()
    cache.quiet.clear()  # a move is being shown
    rows: list[str] = []

    def make(pause: Any) -> render.Frame:
        for _ in range(3):
            pause()
            rows.append("row")
        return render.Frame((1, 1, 1, "halfblock"), None)

    wanted = [True]
    worker = threading.Thread(target=lambda: _swallow(cache.obtain, (1, 1, 1, "halfblock"), make,
                                                      False, lambda: not wanted[0]))  # fmt: skip
    worker.start()
    time.sleep(0.05)
    assert rows == []  # waiting while the UI is busy
    wanted[0] = False  # the user moved on
    worker.join(1)
    assert not worker.is_alive() and rows == []
    assert cache.get((1, 1, 1, "halfblock")) is None
    cache.obtain((2, 1, 1, "halfblock"), make)  # urgent: never waits
    assert rows == ["row"] * 3


def _swallow(fn: Any, *args: Any) -> None:
    with contextlib.suppress(render.Abandoned):
        fn(*args)


def test_a_forced_mode_is_kept_and_auto_falls_back_without_a_terminal() -> None:
    assert render.detect_mode("kitty") == "kitty"
    assert render.detect_mode("sixel") == "sixel"
    assert render.detect_mode("auto") == "halfblock"  # the tests run without a terminal
    assert render.cell_pixels("halfblock") == (1, 2)


CLASSES = {"cat": ClassInfo(1, "cat", 0, "#e6194b"), "dog": ClassInfo(2, "dog", 1, "#3cb44b")}


def test_marks_show_prelabels_dimmed_with_score_and_hide_rejected() -> None:
    labels = [
        Label("cat", Box(0, 0, 10, 10), id=1),
        Label("dog", Box(5, 5, 10, 10), score=0.87, source="m", review="pending", id=2),
        Label("dog", Box(1, 1, 2, 2), score=0.5, source="m", review="rejected", id=3),
        Label("cat", None, id=4),
    ]
    marks = overlay.marks_for(labels, CLASSES, selected=1)
    assert [(m.text, m.dashed, m.selected) for m in marks] == [
        ("dog 0.87", True, False), ("cat", False, True),
    ]  # fmt: skip
    assert marks[1].color == 0xE6194B and marks[0].color == overlay.dim(0x3CB44B)


def test_outline_cells_take_the_class_colour() -> None:
    vp = fit(20, 20, 20, 10)  # scale 1, no margin
    mark = overlay.Mark(Box(4, 4, 8, 8), 0xE6194B, "cat")
    cells = overlay.halfblock_cells(vp, None, [mark])
    top_left = cells[2][4]  # dot (4, 4): upper half of cell row 2
    top, _bottom = _color(top_left)
    assert tuple(top) == (0xE6, 0x19, 0x4B)  # type: ignore[arg-type]
    assert "".join(cells[1][c].text for c in range(4, 7)) == "cat"  # the tag above the box
    assert 8 not in cells.get(4, {})  # the inside (dots 8-9 of column 8) is left alone
    assert 11 in cells[4] and 12 not in cells[4]  # the right edge is the last dot inside


def test_dashed_outlines_skip_dots() -> None:
    vp = fit(40, 40, 40, 20)
    solid = overlay.halfblock_cells(vp, None, [overlay.Mark(Box(0, 10, 40, 10), 1, "")])
    dashed = overlay.halfblock_cells(vp, None, [overlay.Mark(Box(0, 10, 40, 10), 1, "", True)])
    assert len(dashed[5]) < len(solid[5])


def test_painting_for_graphics_modes_draws_the_outline() -> None:
    picture = Image.new("RGB", (100, 50), (0, 0, 0))
    vp = fit(100, 50, 10, 5, sub=(10, 10))  # one image pixel per screen pixel
    out = overlay.paint(picture, vp, [overlay.Mark(Box(20, 20, 30, 20), 0x3CB44B, "dog")])
    assert out.getpixel((35, 20)) == (0x3C, 0xB4, 0x4B)
    assert out.getpixel((35, 30)) == (0, 0, 0)
    assert picture.getpixel((35, 20)) == (0, 0, 0)  # the frame's picture is left as it was


@pytest.mark.parametrize("system", ["truecolor", "256", "standard"])
def test_cells_carry_the_escape_codes_rich_would_write(system: str) -> None:
    from rich.console import COLOR_SYSTEMS
    from rich.style import Style
    from textual.strip import Strip

    try:
        render.set_color_system(COLOR_SYSTEMS[system])
        cell = render.half_cell(0x123456, 0xFCA800)
        expected = Strip.render_ansi(
            Style.from_color(render.color(0x123456), render.color(0xFCA800)), COLOR_SYSTEMS[system]
        )
        assert cell.style is not None
        assert (
            Strip.render_style(cell.style, "x", COLOR_SYSTEMS[system])
            == f"\x1b[{expected}mx\x1b[0m"
        )
    finally:
        render.set_color_system(COLOR_SYSTEMS["truecolor"])
