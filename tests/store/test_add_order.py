"""`add` streams the folders it walks in batches: the images are registered in sorted path order
(as a whole sorted list would register them), and duplicates, by path or by content, are found
across batches as within one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.store import images
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.imagefile import BadImage, iter_images, walk_images
from annotator.store.images import add_images
from annotator.store.models import Dataset, Image
from tests.conftest import write_jpeg

# names whose sorted order differs from a plain string sort of the whole paths
NAMES = ["a.jpg", "a/b.jpg", "a/c/d.jpg", "a-b/c.jpg", "a b.jpg", "B.jpg", "b.jpg", "é.jpg",
         "z/a.jpg", "a0.jpg", "_x/y.jpg"]  # fmt: skip


def _tree(root: Path) -> list[Path]:
    return [write_jpeg(root / name, color=(i * 20, 30, 30)) for i, name in enumerate(NAMES)]


def _add(store: Store, ds_id: int, *paths: Path) -> images.AddReport:
    with store.session() as s:
        ds = s.get(Dataset, ds_id)
        assert ds is not None
        return add_images(s, ds, list(paths))


def test_walk_streams_in_sorted_order(tmp_path: Path) -> None:
    files = _tree(tmp_path / "top")
    bad: list[BadImage] = []
    streamed = list(iter_images(tmp_path / "top", bad))
    assert streamed == sorted(files) == walk_images(tmp_path / "top")[0]
    assert bad == []


@pytest.mark.parametrize("batch", [2, 500])
def test_add_registers_in_sorted_order_across_batches(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(images, "BATCH", batch)
    files = _tree(tmp_path / "top")
    shutil.copy(files[0], tmp_path / "top" / "zz-copy.jpg")  # the same bytes, a later batch
    with store.session() as s:
        ds_id = create_dataset(s, "d", "classification", ["a"]).id
    report = _add(store, ds_id, tmp_path / "top")
    assert (report.added, report.duplicates, report.rejected) == (len(NAMES), 1, [])
    with store.session() as s:
        stored = s.scalars(select(Image.path).order_by(Image.id)).all()
    assert stored == [f.relative_to(tmp_path / "top").as_posix() for f in sorted(files)]
    assert list(report.added_ids) == sorted(report.added_ids) and len(report.added_ids) == len(
        NAMES
    )
    again = _add(store, ds_id, tmp_path / "top", files[3])  # known paths, in every batch
    assert (again.added, again.duplicates) == (0, len(NAMES) + 2)
