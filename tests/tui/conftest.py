"""Fixtures for the labelling app's tests: a database with a classification, a multilabel and a
detection dataset over small generated PNG images (fixed shapes and colours, so snapshots are
stable), prelabels from a model run, an app factory in half-block mode with a frozen clock, and
helpers that wait for the app to settle and read the store back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from annotator.annotation import Box
from annotator.config import Settings
from annotator.store.datasets import create_dataset
from annotator.store.db import Store, open_store
from annotator.store.images import add_images
from annotator.store.models import (
    Annotation,
    Dataset,
    HistoryEvent,
    Image,
    LabelClass,
    ModelRun,
)

SIZE = (120, 80)
COLORS = [(200, 40, 40), (40, 160, 60), (50, 80, 200), (220, 200, 40), (150, 60, 170)]


def write_png(path: Path, size: tuple[int, int], color: tuple[int, int, int], mark: int) -> Path:
    """A PNG with a background colour and a white square whose place depends on `mark`."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    x = 10 + (mark * 17) % (size[0] - 40)
    draw.rectangle((x, 20, x + 30, 50), fill=(245, 245, 245))
    img.save(path)
    return path


@dataclass
class Fixture:
    store: Store
    root: Path

    def image_id(self, dataset: str, name: str) -> int:
        with self.store.session() as s:
            found = s.scalar(
                select(Image.id)
                .join(Dataset, Dataset.id == Image.dataset_id)
                .where(Dataset.name == dataset, Image.path == name)
            )
            assert found is not None, name
            return int(found)

    def class_id(self, dataset: str, name: str) -> int:
        with self.store.session() as s:
            found = s.scalar(
                select(LabelClass.id)
                .join(Dataset, Dataset.id == LabelClass.dataset_id)
                .where(Dataset.name == dataset, LabelClass.name == name)
            )
            assert found is not None, name
            return int(found)

    def labels(self, image_id: int) -> list[tuple[Any, ...]]:
        """(kind, class, review, source, box) of an image's labels, in creation order."""
        with self.store.session() as s:
            rows = s.execute(
                select(Annotation, LabelClass.name)
                .join(LabelClass, LabelClass.id == Annotation.class_id)
                .where(Annotation.image_id == image_id)
                .order_by(Annotation.id)
            )
            return [
                (a.kind, name, a.review, a.source,
                 None if a.x is None else (a.x, a.y, a.w, a.h))
                for a, name in rows
            ]  # fmt: skip

    def status(self, image_id: int) -> str:
        with self.store.session() as s:
            row = s.get(Image, image_id)
            assert row is not None
            return row.status

    def history(self) -> list[tuple[str, str, str]]:
        """(action, author, group kind) of every history event, oldest first."""
        with self.store.session() as s:
            rows = s.execute(
                select(HistoryEvent.action, HistoryEvent.author, HistoryEvent.group_kind).order_by(
                    HistoryEvent.id
                )
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def count_history(self) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(HistoryEvent)) or 0)


def _prelabel(store: Store, dataset: str, image_path: str, cls: str, score: float,
              box: Box | None = None) -> int:  # fmt: skip
    with store.session() as s:
        ds = s.scalar(select(Dataset).where(Dataset.name == dataset))
        assert ds is not None
        run = s.scalar(select(ModelRun).where(ModelRun.dataset_id == ds.id))
        if run is None:
            run = ModelRun(dataset_id=ds.id, model="tinynet")
            s.add(run)
            s.flush()
        image = s.scalar(select(Image).where(Image.dataset_id == ds.id, Image.path == image_path))
        class_id = next(c.id for c in ds.classes if c.name == cls)
        assert image is not None
        ann = Annotation(
            dataset_id=ds.id, task=ds.task, image_id=image.id, class_id=class_id,
            kind="box" if box else "label", x=box.x if box else None, y=box.y if box else None,
            w=box.w if box else None, h=box.h if box else None, source="model", run_id=run.id,
            score=score, review="pending", author="tinynet",
        )  # fmt: skip
        s.add(ann)
        s.commit()
        return ann.id


def build(root: Path) -> Store:
    store = open_store(f"sqlite:///{root / 'tui.db'}")
    specs = {
        "pets": ("classification", ["cat", "dog", "bird"], 4),
        "tags": ("multilabel", ["indoor", "outdoor", "night"], 2),
        "boxes": ("detection", ["person", "dog", "cat"], 3),
    }
    for name, (task, classes, n) in specs.items():
        folder = root / name
        for i in range(n):
            write_png(folder / f"img{i}.png", SIZE, COLORS[i % len(COLORS)], i)
        with store.session() as s:
            ds = create_dataset(s, name, task, classes, root=folder)
            add_images(s, ds, [folder])
    _prelabel(store, "pets", "img1.png", "dog", 0.8)
    _prelabel(store, "pets", "img1.png", "cat", 0.15)
    _prelabel(store, "boxes", "img0.png", "dog", 0.91, Box(60, 10, 50, 40))
    _prelabel(store, "boxes", "img0.png", "person", 0.42, Box(5, 30, 30, 45))
    return store


@pytest.fixture
def tui(tmp_path: Path) -> Iterator[Fixture]:
    store = build(tmp_path)
    yield Fixture(store, tmp_path)
    store.close()


@pytest.fixture
def make_app(tui: Fixture) -> Callable[..., Any]:
    """make_app("pets", queue="all", settings=Settings(...)) -> an AnnotatorApp in half-block
    mode with a frozen clock and immediate counts."""
    from annotator.tui.app import create_app

    def make(name: str, store: Store | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("settings", Settings(render="halfblock"))
        kwargs.setdefault("count_delay", 0)
        kwargs.setdefault("clock", lambda: 1000.0)
        return create_app(store or tui.store, name, mode="halfblock", **kwargs)

    return make


async def settle(pilot: Any, rounds: int = 200) -> None:
    """Wait until the labelling screen has shown an image, committed its changes, and every
    worker is done (a worker's message may start another, so loop until all is quiet)."""
    app = pilot.app
    quiet = 0
    for _ in range(rounds):
        await pilot.pause()
        screen = getattr(app, "labelling_screen", None)
        running = [w for w in app.workers if not w.is_finished]
        ready = screen is None or (screen.settled and not screen.busy and not screen.moving)
        if ready and not running:
            quiet += 1
            if quiet >= 3:
                return
        else:
            quiet = 0
            await pilot.pause(0.01)
    raise AssertionError("the app did not settle")
