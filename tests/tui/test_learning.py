"""The learning loop in the labelling app: the retrain key embeds what is missing and trains in a
worker, the proposals on screen and the status bar's accuracy follow; its refusals are one line;
the suspect-labels queue serves the worst flag first with the suggested class in the status bar;
the duplicates queue walks a group at a time. `t` itself is driven in test_keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.store import labels as store_labels
from annotator.store import queue as q
from annotator.store.datasets import create_dataset
from annotator.store.dupes import replace_groups
from annotator.store.images import add_images
from annotator.store.models import Dataset, Embedding, Image
from annotator.store.suspects import NewFlag, write_flags
from tests.tui.conftest import Fixture, settle

SIZE = (140, 36)
COLOUR = "tests.learn.stub_backbones:colour"


def build_colours(tui: Fixture, per_class: int = 4) -> dict[str, int]:
    """Dataset "colours" (red, green, blue images); two of each class labelled by hand and all
    but the last image of each class embedded with the stub backbone. File -> image id."""
    from annotator.learn.embed import EmbedOptions, embed
    from tests.learn.conftest import HUES, write_coloured

    folder = tui.root / "colours"
    write_coloured(folder, per_class)
    with tui.store.session() as s:
        ds = create_dataset(s, "colours", "classification", list(HUES), folder)
        add_images(s, ds, [folder])
        ids = {Path(i.path).name: i.id for i in s.scalars(select(Image).where(
            Image.dataset_id == ds.id))}  # fmt: skip
        classes = {c.name: c.id for c in ds.classes}
    for name in HUES:
        for i in range(2):
            with tui.store.session() as s:
                store_labels.assign_class(s, ids[f"{name}_{i:03d}.png"], classes[name], "me")
    last = [ids[f"{name}_{per_class - 1:03d}.png"] for name in HUES]
    with tui.store.session() as s:
        embed(s, s.get_one(Dataset, ds.id), EmbedOptions(model=COLOUR, workers=0))
        s.execute(Embedding.__table__.delete().where(Embedding.image_id.in_(last)))
        s.commit()
    return ids


async def wait_for(pilot: Any, done: Any, seconds: float = 90.0) -> None:
    """Pause until `done()` (retraining imports torch and scikit-learn: seconds, not frames)."""
    for _ in range(int(seconds / 0.05)):
        if done():
            await settle(pilot)
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition was never met")


def status_text(pilot: Any) -> str:
    from annotator.tui.widgets.statusbar import StatusBar

    return str(pilot.app.labelling_screen.query_one(StatusBar).render())


def told(pilot: Any) -> list[str]:
    """Every notification the app has shown so far."""
    return [n.message for n in pilot.app._notifications]


def run(app: Any, steps: Any) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await steps(pilot)

    asyncio.run(main())


def test_retrain_refuses_in_one_line_without_the_learn_extra(
    tui: Fixture, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.learn import loop

    build_colours(tui)
    monkeypatch.setattr(loop, "missing_extra", lambda: "retraining needs scikit-learn: install")
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("t")
        await wait_for(pilot, lambda: not pilot.app.labelling_screen.learning)
        seen.extend(told(pilot))
        seen.append(pilot.app.labelling_screen.accuracy)

    run(make_app("colours"), steps)
    assert seen == ["retraining needs scikit-learn: install", None]


def test_retrain_without_weights_names_the_embed_to_run(
    tui: Fixture, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No vectors yet and no weights on this machine: the key says which embed to run."""
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tui.root / "no-torch-home"))
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("t")
        await wait_for(pilot, lambda: not pilot.app.labelling_screen.learning)
        seen.extend(told(pilot))

    run(make_app("pets"), steps)
    assert len(seen) == 1
    assert "cannot embed with mobilenet_v2" in seen[0]
    assert "run annotator embed pets --model mobilenet_v2 --weights FILE" in seen[0]


def _flag(tui: Fixture, dataset: str, flags: list[tuple[str, str, str, float]]) -> None:
    """Raise suspect flags: (file, class given, class suggested, score)."""
    ids = {f: tui.image_id(dataset, f) for f, _, _, _ in flags}
    with tui.store.session() as s:
        ds = s.scalars(select(Dataset).where(Dataset.name == dataset)).one()
        classes = {c.name: c.id for c in ds.classes}
        new = [NewFlag(ids[f], classes[g], classes[w], sc) for f, g, w, sc in flags]
        write_flags(s, ds, new, "tester")


def test_suspect_queue_serves_the_worst_flag_first_with_its_suggestion(
    tui: Fixture, make_app: Any
) -> None:
    _flag(tui, "pets", [("img0.png", "cat", "dog", 0.30), ("img2.png", "bird", "cat", 0.05),
                        ("img3.png", "dog", "bird", 0.60)])  # fmt: skip
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        screen = pilot.app.labelling_screen
        seen.append((screen.view.sample.path, screen.counts[:2]))
        seen.append(status_text(pilot))
        await pilot.press("1")  # img2: "cat" as suggested; the flag is settled, move on
        await settle(pilot)
        seen.append((screen.view.sample.path, screen.counts[:2]))

    run(make_app("pets", queue="suspects"), steps)
    assert seen[0] == ("img2.png", (1, 3))
    assert "suspect: bird → cat (quality 0.05)" in seen[1]
    assert "suspect labels · worst first" in seen[1]
    assert seen[2] == ("img0.png", (1, 2))
    assert tui.labels(tui.image_id("pets", "img2.png")) == [
        ("label", "cat", "accepted", "human", None)
    ]


def test_suspect_and_duplicate_queues_in_the_store(tui: Fixture) -> None:
    _flag(tui, "pets", [("img1.png", "cat", "dog", 0.5), ("img3.png", "dog", "bird", 0.2)])
    ids = {n: tui.image_id("pets", n) for n in ("img0.png", "img1.png", "img2.png", "img3.png")}
    with tui.store.session() as s:
        ds = s.scalars(select(Dataset).where(Dataset.name == "pets")).one()
        replace_groups(s, ds, [[(ids["img3.png"], 0), (ids["img0.png"], 4)],
                               [(ids["img1.png"], 0), (ids["img2.png"], 2)]])  # fmt: skip
        suspects, dupes = q.QueueSpec("suspects", "path"), q.QueueSpec("duplicates", "added")
        walk = [q.first(s, ds.id, suspects)]
        walk.append(q.step(s, suspects, walk[0]))  # type: ignore[arg-type]
        assert walk == [ids["img3.png"], ids["img1.png"]]
        assert q.step(s, suspects, ids["img1.png"]) is None
        assert q.position(s, suspects, ids["img1.png"]) == 2
        assert q.at_position(s, ds.id, suspects, 2) == ids["img1.png"]
        order, current = [], q.first(s, ds.id, dupes)
        while current is not None:
            order.append(current)
            current = q.step(s, dupes, current)
        groups = sorted([ids["img0.png"], ids["img3.png"]]), sorted([ids["img1.png"],
                                                                     ids["img2.png"]])  # fmt: skip
        assert order == sorted(groups)[0] + sorted(groups)[1]
        assert q.total(s, ds.id, dupes) == 4
        view = q.load_view(s, ids["img3.png"])
        assert view.suspect == "suspect: dog → bird (quality 0.20)"
        assert view.duplicate is not None and "(2 images, kept)" in view.duplicate
        assert q.load_view(s, ids["img2.png"]).suspect is None
    with tui.store.session() as s:  # the image is edited: its flag no longer holds it
        store_labels.set_status(s, ids["img3.png"], "labeled", "me")
    with tui.store.session() as s:
        assert q.first(s, ds.id, suspects) == ids["img1.png"]
        assert q.step(s, suspects, ids["img3.png"]) == ids["img1.png"]


def test_duplicates_queue_from_the_command_line_option(tui: Fixture, make_app: Any) -> None:
    a, b = tui.image_id("pets", "img1.png"), tui.image_id("pets", "img3.png")
    with tui.store.session() as s:
        ds = s.scalars(select(Dataset).where(Dataset.name == "pets")).one()
        replace_groups(s, ds, [[(a, 0), (b, 3)]])
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        screen = pilot.app.labelling_screen
        seen.append((screen.view.sample.path, screen.counts[:2], status_text(pilot)))

    run(make_app("pets", queue="duplicates"), steps)
    path, counts, text = seen[0]
    assert (path, counts) == ("img1.png", (1, 2))
    assert f"duplicate group {min(a, b)} (2 images, kept)" in text
