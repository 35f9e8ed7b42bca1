"""The labelling app and a team's figures: the seconds a person spends on an image they label are
recorded when they move on (and when they quit), the overview shows per-annotator figures, and
two people served the same overlap image each label it without seeing the other's label."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from rich.console import Console
from sqlalchemy import select
from textual.widgets import Static

from annotator.store import overlap
from annotator.store.datasets import get_dataset
from annotator.store.models import ImageTime
from tests.tui.conftest import Fixture, settle

SIZE = (120, 36)


def test_seconds_on_a_labelled_image_are_recorded_when_the_person_moves_on(
    tui: Fixture, make_app: Any
) -> None:
    now = [1000.0]
    first = tui.image_id("pets", "img0.png")

    async def main() -> None:
        app = make_app("pets", author="ann", clock=lambda: now[0])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            now[0] += 7.5
            await pilot.press("1")  # labels img0 (and moves on to the next unlabeled image)
            await settle(pilot)
            await pilot.press("n")  # moves past an image without changing it: no record
            await settle(pilot)
            now[0] += 3.0
            await pilot.press("2")
            await settle(pilot)
            await pilot.press("q")
            await settle(pilot)

    asyncio.run(main())
    with tui.store.session() as s:
        rows = s.execute(select(ImageTime.image_id, ImageTime.author, ImageTime.seconds)).all()
    assert rows[0] == (first, "ann", 7.5)
    assert [r.author for r in rows] == ["ann", "ann"] and rows[1].seconds == 3.0


def test_the_overview_shows_each_annotators_figures(tui: Fixture, make_app: Any) -> None:
    async def main() -> None:
        app = make_app("pets", author="ann")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("1")
            await settle(pilot)
            await pilot.press("o")
            await settle(pilot)
            table = app.screen.query_one("#people", Static).content
            console = Console(width=100, record=True, file=io.StringIO())
            console.print(table)
            text = console.export_text()
            assert "per annotator" in text and "labels/h" in text and "ann " in text

    asyncio.run(main())


def test_two_people_on_one_overlap_image_never_see_each_others_label(
    tui: Fixture, make_app: Any
) -> None:
    img0 = tui.image_id("pets", "img0.png")
    with tui.store.session() as s:
        ds = get_dataset(s, "pets")
        s.add(overlap.OverlapImage(image_id=img0, dataset_id=ds.id, annotators=2,
                                   marked_by="lead"))  # fmt: skip
        s.commit()
    seen: dict[str, Any] = {}

    async def main() -> None:
        alice, bob = make_app("pets", author="alice"), make_app("pets", author="bob")
        async with alice.run_test(size=SIZE) as a, bob.run_test(size=SIZE) as b:
            await settle(a)
            await settle(b)
            seen["paths"] = (str(a.app.labelling_screen.view.sample.path),
                             str(b.app.labelling_screen.view.sample.path))  # fmt: skip
            await a.press("1")  # alice: cat
            await settle(a)
            for who, pilot in (("alice", a), ("bob", b)):  # each app reads img0 afresh
                view = pilot.app.labelling_screen.backend.view(img0)
                seen[who] = [x.class_name for x in view.labels]
            await b.press("2")  # bob: dog, not refused for alice's change
            await settle(b)

    asyncio.run(main())
    assert seen["paths"] == ("img0.png", "img0.png")  # an overlap image takes both
    assert seen["alice"] == ["cat"] and seen["bob"] == []  # alice's vote is hers alone
    labels = tui.labels(img0)
    assert sorted((name, review) for _, name, review, _, _ in labels) == [
        ("cat", "vote"), ("dog", "vote")]  # fmt: skip
    assert tui.status(img0) == "unlabeled"
