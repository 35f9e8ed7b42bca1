"""Fixtures of the review tests: FiftyOne imported once per process (its database lives in the
temporary folder the top conftest names), and small store datasets of each task built through
the store's own use cases, with model predictions inserted as a model run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from annotator.annotation import Box
from tests.conftest import write_jpeg

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(scope="session")
def fo() -> Any:
    """The fiftyone module, imported (and its database started) once."""
    from annotator.review.backend import require_fiftyone

    return require_fiftyone()


@dataclass
class Built:
    """A store dataset made for a test: names and ids to check against."""

    name: str
    task: str
    images: list[int]
    classes: dict[str, int]
    run_id: int
    labels: dict[str, int] = field(default_factory=dict)  # tag -> annotation id

    @property
    def fo_name(self) -> str:
        return f"annotator-{self.name}"


def add_prediction(s: Any, built: Built, image_id: int, cls: str, score: float,
                   box: Box | None = None) -> int:  # fmt: skip
    """A pending model prediction on an image (as a prelabelling run stores it)."""
    from annotator.store.models import Annotation

    ann = Annotation(
        dataset_id=_dataset_id(s, built),
        task=built.task, image_id=image_id, class_id=built.classes[cls],
        kind="box" if box else "label", x=box.x if box else None, y=box.y if box else None,
        w=box.w if box else None, h=box.h if box else None, source="model",
        run_id=built.run_id, score=score, review="pending", author="model:test",
    )  # fmt: skip
    s.add(ann)
    s.commit()
    return ann.id


def _dataset_id(s: Any, built: Built) -> int:
    from annotator.store.datasets import get_dataset

    return get_dataset(s, built.name).id


def _images(tmp_path: Path, n: int, rotated: bool) -> Path:
    root = tmp_path / f"imgs-{uuid.uuid4().hex[:6]}"
    for i in range(n):
        orientation = 6 if rotated and i == 0 else None
        write_jpeg(root / f"img{i:03d}.jpg", (64, 48), (i * 20 % 256, 90, 30), orientation)
    return root


@pytest.fixture
def build(store: Any, tmp_path: Path, fo: Any) -> Iterator[Callable[..., Built]]:
    """build(task, n=4, rotated=False) -> Built: a dataset with n images and no labels yet,
    plus a model run to attach predictions to. Its FiftyOne mirror is deleted afterwards."""
    made: list[Built] = []

    def make(task: str, n: int = 4, rotated: bool = False) -> Built:
        from annotator.store.datasets import create_dataset
        from annotator.store.images import add_images
        from annotator.store.models import ModelRun

        name = f"{task[:3]}-{uuid.uuid4().hex[:8]}"
        with store.session() as s:
            ds = create_dataset(s, name, task, CLASSES)
            report = add_images(s, ds, [_images(tmp_path, n, rotated)])
            run = ModelRun(dataset_id=ds.id, model="testnet")
            s.add(run)
            s.commit()
            built = Built(name, task, sorted(report.added_ids),
                          {c.name: c.id for c in ds.classes}, run.id)  # fmt: skip
        made.append(built)
        return built

    yield make
    for built in made:
        if fo.dataset_exists(built.fo_name):
            fo.delete_dataset(built.fo_name)
