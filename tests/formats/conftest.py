"""Fixtures for the format tests: stores holding the sample datasets, COCO files written on the
fly, copies of the peer datasets, and helpers that read a dataset back from the store."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from annotator.store.db import Store, open_store
from tests.conftest import PEER_DATA, SAMPLE_DATA, write_jpeg

RATIOS = {"train": 0.7, "val": 0.3}


def import_samples_into(store: Store) -> None:
    """The sample data fully labelled: pets (classification) and scenes (detection), 70/30."""
    from annotator.formats.importing import import_source
    from annotator.store.datasets import get_dataset
    from annotator.store.splits import assign_splits

    for name, labels in (("pets", "classification.json"), ("scenes", "detection.json")):
        with store.session() as s:
            report = import_source(s, "coco", SAMPLE_DATA / "annotations" / labels, name,
                                   images=SAMPLE_DATA / "images")  # fmt: skip
            assert not report.problems, report.problems
            assign_splits(s, get_dataset(s, name), RATIOS, seed=0)


@pytest.fixture
def sample_store(store: Store) -> Store:
    import_samples_into(store)
    return store


@pytest.fixture(scope="module")
def shared_sample_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store with the sample datasets for a whole module of read-only tests."""
    st = open_store(f"sqlite:///{tmp_path_factory.mktemp('samples') / 'samples.db'}")
    import_samples_into(st)
    yield st
    st.close()


@pytest.fixture
def peer(tmp_path: Path) -> Path:
    """A writable copy of the peer datasets."""
    dest = tmp_path / "peer"
    shutil.copytree(PEER_DATA, dest)
    return dest


def store_labels(store: Store, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """{image file name: sorted [(class, x, y, w, h, iscrowd)]} of dataset `name`."""
    from annotator.store.datasets import get_dataset
    from annotator.store.models import Annotation, Image, LabelClass

    with store.session() as s:
        ds = get_dataset(s, name)
        images = {i.id: Path(i.path).name for i in s.scalars(select(Image).where(
            Image.dataset_id == ds.id))}  # fmt: skip
        out: dict[str, list[tuple[Any, ...]]] = {n: [] for n in images.values()}
        rows = s.execute(
            select(Annotation, LabelClass.name)
            .join(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.dataset_id == ds.id)
        ).all()
        for ann, cls in rows:
            out[images[ann.image_id]].append((cls, ann.x, ann.y, ann.w, ann.h, ann.iscrowd))
    return {k: sorted(v, key=repr) for k, v in out.items()}


def image_rows(store: Store, name: str) -> dict[str, Any]:
    """{file name: Image row} of dataset `name`."""
    from annotator.store.datasets import get_dataset
    from annotator.store.models import Image

    with store.session(readonly=True) as s:  # callers may hold a write session meanwhile
        ds = get_dataset(s, name)
        return {Path(i.path).name: i for i in s.scalars(select(Image).where(
            Image.dataset_id == ds.id))}  # fmt: skip


def write_coco(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]],
               categories: list[dict[str, Any]] | None = None) -> Path:  # fmt: skip
    cats = categories if categories is not None else [
        {"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}
    ]  # fmt: skip
    data = {"info": {}, "licenses": [], "images": images, "annotations": annotations,
            "categories": cats}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


@pytest.fixture
def coco_source(tmp_path: Path) -> Callable[..., Path]:
    """coco_source(n_images, boxes) -> an instances_train.json beside images/ (80x60 JPEGs)."""

    def make(annotations: list[dict[str, Any]] | None = None, n: int = 3,
             size: tuple[int, int] = (80, 60)) -> Path:  # fmt: skip
        root = tmp_path / "src"
        images = []
        for i in range(n):
            write_jpeg(root / "images" / f"img{i}.jpg", size, (40 * i % 255, 90, 200))
            images.append({"id": i + 1, "file_name": f"img{i}.jpg", "width": size[0],
                           "height": size[1]})  # fmt: skip
        anns = annotations if annotations is not None else [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 15], "area": 300,
             "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 80, 60], "area": 4800,
             "iscrowd": 0},
        ]  # fmt: skip
        return write_coco(root / "annotations" / "instances_train.json", images, anns)

    return make
