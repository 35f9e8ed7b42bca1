"""Fixtures for the learning tests: folders of coloured images (one colour family per class),
datasets built from them, labelling a few images by hand, and the stub backbones' names."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.store import labels
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.models import Dataset, Image
from tests.prelabel.conftest import make_dataset, mobilenet_weights, photos

__all__ = ["make_dataset", "mobilenet_weights", "photos"]  # fixtures shared with prelabel

COLOUR = "tests.learn.stub_backbones:colour"
SLOW_COLOUR = "tests.learn.stub_backbones:slow_colour"
HUES = {"red": (210, 40, 40), "green": (40, 190, 40), "blue": (40, 40, 210)}


def write_coloured(folder: Path, per_class: int, seed: int = 0) -> dict[str, str]:
    """per_class PNGs of each HUES colour, jittered; returns file name -> true class."""
    from PIL import Image as PILImage

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    for name, base in HUES.items():
        for i in range(per_class):
            colour = tuple(min(255, max(0, v + rng.randint(-25, 25))) for v in base)
            file = f"{name}_{i:03d}.png"
            PILImage.new("RGB", (40, 30), colour).save(folder / file)
            truth[file] = name
    return truth


MakeColoured = Callable[..., tuple[int, dict[str, str]]]


@pytest.fixture
def coloured(store: Store, tmp_path: Path) -> MakeColoured:
    """coloured(per_class, task=..., name=...) -> (dataset id, file name -> true class)."""

    def make(
        per_class: int = 6, task: str = "classification", name: str = "c"
    ) -> tuple[int, dict[str, str]]:
        folder = tmp_path / name
        truth = write_coloured(folder, per_class)
        with store.session() as s:
            ds = create_dataset(s, name, task, list(HUES), folder)
            add_images(s, ds, [folder])
            return ds.id, truth

    return make


def label_files(store: Store, ds_id: int, wanted: dict[str, list[str]]) -> None:
    """Give each named file its classes by hand (an empty list marks it done: a negative)."""
    with store.session() as s:
        ds = s.get_one(Dataset, ds_id)
        class_ids = {c.name: c.id for c in ds.classes}
        images = {
            Path(i.path).name: i.id
            for i in s.scalars(select(Image).where(Image.dataset_id == ds_id))
        }
    for file, names in wanted.items():
        with store.session() as s:
            for name in names:
                if ds.task == "multilabel":
                    labels.toggle_class(s, images[file], class_ids[name], "tester")
                else:
                    labels.assign_class(s, images[file], class_ids[name], "tester")
            if not names:
                labels.set_status(s, images[file], "labeled", "tester")
