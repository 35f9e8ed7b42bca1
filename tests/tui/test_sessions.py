"""What outlives one keystroke: a box drawn with the mouse on an EXIF-rotated photo lands in
displayed pixels; two apps on one database never overwrite each other silently; undo and redo
work across images and after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from annotator.store.datasets import create_dataset
from annotator.store.images import add_images
from tests.tui.conftest import Fixture, settle

SIZE = (120, 36)


def _rotated_photo(path: Path) -> Image.Image:
    """Displayed 80x40, left half red, right half blue; stored rotated with EXIF tag 6."""
    shown = Image.new("RGB", (80, 40), (220, 30, 30))
    shown.paste((30, 30, 220), (40, 0, 80, 40))
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, quality=95, exif=exif.tobytes())
    return shown


def test_a_mouse_drawn_box_is_stored_in_displayed_pixels(tui: Fixture, make_app: Any) -> None:
    path = tui.root / "rot" / "rotated.jpg"
    shown = _rotated_photo(path)
    with Image.open(path) as img:
        assert img.size == (40, 80) and ImageOps.exif_transpose(img).size == shown.size
    with tui.store.session() as s:
        ds = create_dataset(s, "rot", "detection", ["car"], root=path.parent)
        add_images(s, ds, [path])
    image_id = tui.image_id("rot", "rotated.jpg")
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with make_app("rot", queue="all").run_test(size=SIZE) as pilot:
            await settle(pilot)
            canvas = pilot.app.labelling_screen.canvas
            # 86 x 34 cells = 86 x 68 dots; the 80x40 image at scale 1.075 is 86 x 43 dots,
            # 12 dots (6 rows) from the top
            seen["size"] = (canvas.size.width, canvas.size.height)
            seen["colors"] = [_cell_rgb(canvas, 10, 12), _cell_rgb(canvas, 75, 12)]
            await pilot.mouse_down(canvas, offset=(0, 6))
            await pilot.hover(canvas, offset=(20, 12))
            await pilot.mouse_up(canvas, offset=(42, 16))
            await settle(pilot)

    asyncio.run(main())
    assert seen["size"] == (86, 34)
    red, blue = seen["colors"]
    assert red[0] > 150 > red[2] and blue[2] > 150 > blue[0]  # shown upright, not as stored
    # cells 0..42 x rows 6..16 = dots 0..43 x 12..34 = pixels 0..40 x 0..20.5
    assert tui.labels(image_id) == [("box", "car", "accepted", "human", (0, 0, 40, 20))]


def _cell_rgb(canvas: Any, col: int, row: int) -> tuple[int, int, int]:
    style = canvas.frame.lines[row][col].style
    return tuple(style.color.triplet)  # type: ignore[no-any-return]


def test_two_apps_never_overwrite_each_other(tui: Fixture, make_app: Any) -> None:
    from annotator.store.db import open_store

    img0 = tui.image_id("pets", "img0.png")
    other_store = open_store(str(tui.root / "tui.db"), create=False)
    seen: dict[str, Any] = {}

    async def main() -> None:
        alice = make_app("pets", queue="all", author="alice")
        bob = make_app("pets", store=other_store, queue="all", author="bob")
        told: list[str] = []
        notify = alice.notify
        alice.notify = lambda message, **kw: (told.append(message), notify(message, **kw))[1]
        async with alice.run_test(size=SIZE) as a, bob.run_test(size=SIZE) as b:
            await settle(a)
            await settle(b)
            assert b.app.labelling_screen.view.sample.path != "img0.png"  # alice holds it
            await b.press("slash", *"img0.png", "enter")  # bob opens it by name anyway
            await settle(b)
            await b.press("1")  # bob: cat, while alice still looks at the unlabeled image
            await settle(b)
            await a.press("2")  # alice: dog, from the state she saw: refused
            await settle(a)
            screen = a.app.labelling_screen
            seen["alice sees"] = (screen.view.sample.path, [lb.class_name for lb in
                                                            screen.view.labels])  # fmt: skip
            seen["told"] = list(told)
            await a.press("2")  # now she has seen bob's label: her change goes in
            await settle(a)

    asyncio.run(main())
    other_store.close()
    assert seen["alice sees"] == ("img0.png", ["cat"])
    assert any("changed since it was shown" in m for m in seen["told"])
    assert tui.labels(img0) == [("label", "dog", "accepted", "human", None)]
    assert [(h[0], h[1]) for h in tui.history() if h[0] != "status"] == [
        ("create", "bob"), ("delete", "alice"), ("create", "alice"),
    ]  # fmt: skip


def test_undo_and_redo_across_images_and_a_restart(tui: Fixture, make_app: Any) -> None:
    img0, img1 = tui.image_id("pets", "img0.png"), tui.image_id("pets", "img1.png")
    seen: list[Any] = []

    async def first_session() -> None:
        async with make_app("pets", queue="all").run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("1", "3")  # img0 cat, img1 bird (both move on)
            await settle(pilot)
            await pilot.press("q")

    async def after_restart() -> None:
        async with make_app("pets", queue="all").run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = pilot.app.labelling_screen
            for key in ("z", "z", "Z"):
                await pilot.press(key)
                await settle(pilot)
                seen.append((screen.view.sample.path, tui.labels(img0), tui.labels(img1)))

    asyncio.run(first_session())
    assert tui.labels(img1)[-1] == ("label", "bird", "accepted", "human", None)
    asyncio.run(after_restart())
    cat = [("label", "cat", "accepted", "human", None)]
    img1_prelabels = [("label", "dog", "pending", "model", None),
                      ("label", "cat", "pending", "model", None)]  # fmt: skip
    assert seen == [
        ("img1.png", cat, img1_prelabels),  # bird undone: back on img1
        ("img0.png", [], img1_prelabels),  # cat undone: back on img0
        ("img0.png", cat, img1_prelabels),  # redone
    ]
    assert tui.status(img0) == "labeled" and tui.status(img1) == "unlabeled"


def test_a_missing_image_shows_why_and_can_be_skipped(tui: Fixture, make_app: Any) -> None:
    (tui.root / "pets" / "img1.png").unlink()
    img1 = tui.image_id("pets", "img1.png")
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with make_app("pets", queue="all").run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            canvas = pilot.app.labelling_screen.canvas
            seen["error"] = canvas.frame.error
            seen["drawn"] = "".join(
                seg.text for y in range(canvas.size.height) for seg in canvas.render_line(y)
            )
            await pilot.press("s")
            await settle(pilot)
            seen["now"] = pilot.app.labelling_screen.view.sample.path

    asyncio.run(main())
    assert "img1.png: missing" in seen["error"]
    assert "This image cannot be shown" in seen["drawn"] and "s: skip it" in seen["drawn"]
    assert tui.status(img1) == "skipped" and seen["now"] == "img2.png"


def test_resizing_redraws_the_image_for_the_new_size(tui: Fixture, make_app: Any) -> None:
    seen: list[Any] = []

    async def main() -> None:
        async with make_app("boxes", queue="all").run_test(size=SIZE) as pilot:
            await settle(pilot)
            canvas = pilot.app.labelling_screen.canvas
            seen.append((canvas.size.width, canvas.frame.key[1:3], canvas.frame.viewport.scale))
            await pilot.resize_terminal(80, 30)
            await settle(pilot)
            seen.append((canvas.size.width, canvas.frame.key[1:3], canvas.frame.viewport.scale))

    asyncio.run(main())
    (w1, key1, scale1), (w2, key2, scale2) = seen
    assert key1 == (w1, 34) and key2 == (w2, 28) and w2 < w1
    assert scale2 < scale1  # smaller, and the boxes follow: they are kept in image pixels
