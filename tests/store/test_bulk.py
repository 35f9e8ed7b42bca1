"""The store's bulk path: fitting boxes to images, batches, statuses, dedupe and the export
iterator."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotator.annotation import Box, Label, Sample
from annotator.store import export_reads
from annotator.store.bulk import Incoming, fit_box, import_samples
from annotator.store.bulk_sql import driver_rows
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import Store
from annotator.store.models import Annotation, HistoryEvent, Image
from tests.conftest import write_jpeg


@pytest.mark.parametrize(
    ("box", "fitted", "reason"),
    [
        (Box(0, 0, 100, 50), Box(0, 0, 100, 50), ""),
        (Box(-0.9, 0, 10, 10), Box(0, 0, 9.1, 10), ""),
        (Box(95, 45, 5.9, 5.4), Box(95, 45, 5, 5), ""),
        (Box(-2.5, 0, 10, 10), None, "lies outside the 100x50 image"),
        (Box(0, 0, 0, 10), None, "zero or negative size"),
        (Box(0, 0, 10, -1), None, "zero or negative size"),
        (Box(100.5, 0, 0.4, 10), None, "no area inside"),
    ],
)
def test_fit_box(box: Box, fitted: Box | None, reason: str) -> None:
    got, why = fit_box(box, 100, 50)
    assert got == (pytest.approx(fitted) if fitted else None) and reason in why


def _items(tmp_path: Path, n: int, boxes: int = 2) -> list[Incoming]:
    items = []
    for i in range(n):
        path = write_jpeg(tmp_path / "img" / f"{i:03d}.jpg", (40 + i % 9, 30 + i // 9 % 9),
                          (i * 7 % 256, 9, 9))  # fmt: skip
        labels = [Label("a", Box(1 + b, 1, 5, 5)) for b in range(boxes)]
        items.append(Incoming(Sample(str(path), labels=labels, split="train"), "src.json",
                              f"image id {i}", label_where=[f"box {b}" for b in range(boxes)]))  # fmt: skip
    return items


def test_batches_commit_whole_images_and_rerun_skips_them(store: Store, tmp_path: Path) -> None:
    items = _items(tmp_path, 25)
    seen: list[tuple[int, int]] = []
    with store.session() as s:
        ds = create_dataset(s, "ds", "detection", ["a"], tmp_path)
        report = import_samples(
            s, ds, items[:12], batch=5, progress=lambda d, t: seen.append((d, t))
        )
        assert (report.images, report.labels) == (12, 24)
        assert seen == [(0, 12), (5, 12), (10, 12), (12, 12)]
        again = import_samples(s, get_dataset(s, "ds"), items, batch=5)
        assert (again.existing, again.images, again.labels) == (12, 13, 26)
        assert s.scalar(select(func.count()).select_from(Image)) == 25
        assert s.scalar(select(func.count()).select_from(Annotation)) == 50
        assert s.scalar(select(func.count()).select_from(HistoryEvent)) == 50
        groups = s.scalar(select(func.count(func.distinct(HistoryEvent.group_id))))
        assert groups == 3 + 3  # one history group per batch


def test_statuses_and_labels_dropped(store: Store, tmp_path: Path) -> None:
    items = _items(tmp_path, 4, boxes=1)
    items[1].sample.labels, items[1].label_where = [], []  # listed with no labels: a negative
    items[2].sample.labels, items[2].label_where = [], []
    items[2].labelled = False  # nobody labelled it
    items[3].sample.labels[0].box = Box(500, 500, 5, 5)  # its only label is refused
    with store.session() as s:
        ds = create_dataset(s, "ds", "detection", ["a"], tmp_path)
        report = import_samples(s, ds, items)
        status = dict(s.execute(select(Image.path, Image.status)).tuples().all())
    assert status == {"img/000.jpg": "labeled", "img/001.jpg": "labeled",
                      "img/002.jpg": "unlabeled", "img/003.jpg": "unlabeled"}  # fmt: skip
    [problem] = report.problems
    assert (problem.file, problem.where) == ("src.json", "box 0") and "outside" in problem.reason
    assert report.negatives == 1


def test_an_image_changed_on_disk_under_a_stored_path_is_refused(store: Store, tmp_path: Path) -> None:  # fmt: skip
    items = _items(tmp_path, 1)
    with store.session() as s:
        ds = create_dataset(s, "ds", "detection", ["a"], tmp_path)
        import_samples(s, ds, items)
        write_jpeg(Path(items[0].sample.path), (40, 30), (250, 250, 250))
        report = import_samples(s, get_dataset(s, "ds"), items)
    [problem] = report.problems
    assert "a different image is already stored as img/000.jpg" in problem.reason


def test_export_samples_streams_in_id_order_with_labels(store: Store, tmp_path: Path) -> None:
    with store.session() as s:
        ds = create_dataset(s, "ds", "detection", ["a"], tmp_path)
        import_samples(s, ds, _items(tmp_path, 7))
        rows = driver_rows(s)
        exported = export_reads.dataset(rows, "ds")
        samples = list(export_reads.export_samples(rows, exported, "train", chunk=3))
        assert [Path(x.path).name for x in samples] == [f"{i:03d}.jpg" for i in range(7)]
        assert all(Path(x.path).is_absolute() and x.path.startswith(str(tmp_path)) for x in samples)
        assert [len(x.labels) for x in samples] == [2] * 7
        assert (
            samples[0].labels[0].box == Box(1, 1, 5, 5) and samples[0].labels[0].source == "human"
        )
        assert list(export_reads.export_samples(rows, exported, "val")) == []


def test_repeated_images_within_and_across_batches(store: Store, tmp_path: Path) -> None:
    items = _items(tmp_path, 6, boxes=1)
    for copy, original in ((2, 1), (4, 0)):  # 2 repeats 1 in its batch, 4 repeats 0 later
        Path(items[copy].sample.path).write_bytes(Path(items[original].sample.path).read_bytes())
    with store.session() as s:
        other = create_dataset(s, "other", "detection", ["a"], tmp_path)
        assert import_samples(s, other, items[:1]).images == 1  # another dataset's: no matter
        ds = create_dataset(s, "ds", "detection", ["a"], tmp_path)
        report = import_samples(s, ds, items, batch=3)
        paths = set(s.scalars(select(Image.path).where(Image.dataset_id == ds.id)))
    assert (report.images, report.existing, report.labels) == (4, 1, 4)
    [problem] = report.problems
    assert problem.where == "image id 2"
    assert problem.reason == f"same image as {items[1].sample.path} (identical bytes): skipped"
    assert paths == {"img/000.jpg", "img/001.jpg", "img/003.jpg", "img/005.jpg"}
