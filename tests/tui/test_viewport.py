"""The pure mapping between canvas cells and image pixels, and the keyboard box draft: numbers
worked out by hand."""

from __future__ import annotations

import pytest

from annotator.annotation import Box
from annotator.tui.draft import Draft
from annotator.tui.viewport import fit


def test_fit_scales_to_the_limiting_side_and_centres() -> None:
    # 200x100 image, 50 columns x 40 rows = 50 x 80 dots: width limits, scale 0.25
    vp = fit(200, 100, 50, 40)
    assert vp.scale == 0.25
    assert (vp.dots_w, vp.dots_h) == (50, 25)
    assert (vp.left, vp.top) == (0, 26)  # (80 - 25) // 2 = 27 dots, down to a cell edge: 26
    assert vp.cell_span == (0, 13, 50, 13)


def test_fit_upscales_small_images() -> None:
    vp = fit(10, 10, 40, 10)  # 40 x 20 dots: height limits, scale 2
    assert vp.scale == 2.0
    assert (vp.dots_w, vp.dots_h, vp.left, vp.top) == (20, 20, 10, 0)


def test_each_half_block_cell_is_one_column_and_two_pixel_rows() -> None:
    vp = fit(100, 60, 100, 30)  # scale 1: one dot = one pixel
    assert vp.scale == 1.0 and (vp.left, vp.top) == (0, 0)
    assert vp.cell_rect(0, 0) == (0, 0, 1, 2)
    assert vp.cell_rect(7, 4) == (7, 8, 8, 10)
    assert vp.cell_center(7, 4) == (7.5, 9.0)


def test_a_drag_covers_both_end_cells_in_image_pixels() -> None:
    vp = fit(100, 60, 100, 30)
    assert vp.cells_to_box(10, 5, 19, 9) == Box(10, 10, 10, 10)
    assert vp.cells_to_box(19, 9, 10, 5) == Box(10, 10, 10, 10)  # any drag direction


def test_a_drag_is_clipped_to_the_image_and_scaled() -> None:
    vp = fit(400, 240, 100, 30)  # scale 0.25: a cell is 4 x 8 image pixels
    assert vp.scale == 0.25
    assert vp.cells_to_box(2, 1, 3, 2) == Box(8, 8, 8, 16)
    assert vp.cells_to_box(95, 25, 200, 200) == Box(380, 200, 20, 40)
    assert vp.cells_to_box(150, 0, 160, 5) is None  # entirely right of the image


def test_margins_shift_the_mapping() -> None:
    vp = fit(100, 100, 60, 50)  # 60 x 100 dots: width limits, scale 0.6, 20 dots above
    assert vp.scale == 0.6 and (vp.left, vp.top) == (0, 20)
    assert vp.dot_to_image(30, 50) == (50, 50)
    assert not vp.on_image(0, 9) and vp.on_image(0, 10)


def test_box_outline_in_dots() -> None:
    vp = fit(100, 60, 100, 30)
    assert vp.box_to_dots(Box(10, 20, 30, 5)) == (10, 20, 39, 24)


def test_key_step_is_one_dot() -> None:
    assert fit(400, 240, 100, 30).key_step == (4.0, 4.0)
    assert fit(100, 60, 100, 30).key_step == (1.0, 1.0)


def test_graphics_cells_use_their_pixel_size() -> None:
    vp = fit(800, 400, 80, 20, sub=(10, 20))  # 800 x 400 screen pixels: scale 1
    assert vp.scale == 1.0
    assert vp.cell_rect(3, 2) == (30, 40, 40, 60)
    assert vp.key_step == (10.0, 10.0)


def test_draft_starts_centred_and_moves_inside_the_image() -> None:
    d = Draft.around(7, 50, 30, 100, 60)
    assert (d.x0, d.y0, d.x1, d.y1, d.part) == (37.5, 22.5, 62.5, 37.5, "box")
    assert d.box == Box(38, 23, 25, 15)  # whole pixels, halves rounded up
    moved = d.moved(-100, 5)
    assert (moved.x0, moved.y0, moved.x1, moved.y1) == (0, 27.5, 25, 42.5)


def test_draft_near_the_edge_stays_inside() -> None:
    d = Draft.around(1, 99, 59, 100, 60)
    assert (d.x1, d.y1) == (100, 60)


@pytest.mark.parametrize(
    ("part", "dx", "dy", "expected"),
    [
        ("top-left", -5, -5, (5, 5, 30, 30)),
        ("top-left", 50, 50, (29, 29, 30, 30)),  # never past the other corner
        ("bottom-right", 10, 100, (10, 10, 40, 60)),
        ("bottom-right", -50, 0, (10, 10, 11, 30)),
    ],
)
def test_draft_corners(part: str, dx: float, dy: float, expected: tuple[float, ...]) -> None:
    d = Draft(1, 10, 10, 30, 30, 100, 60, part)  # type: ignore[arg-type]
    moved = d.moved(dx, dy)
    assert (moved.x0, moved.y0, moved.x1, moved.y1) == expected


def test_draft_parts_cycle_and_class_changes() -> None:
    d = Draft.of_box(5, 2, Box(1, 2, 3, 4), 10, 10)
    assert (d.part, d.ann_id) == ("bottom-right", 5)
    assert d.next_part().part == "box"
    assert d.next_part().next_part().part == "top-left"
    assert d.with_class(9).class_id == 9
    assert d.box == Box(1, 2, 3, 4)
    assert d.active_point == (4, 6)
