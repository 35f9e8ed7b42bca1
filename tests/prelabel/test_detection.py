"""Prelabelling a detection dataset: boxes land exactly in displayed pixels (EXIF orientation
included), and a torchvision detector's boxes are stored, replaced and resumed correctly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.annotation import Box
from annotator.errors import InvalidInputError
from annotator.prelabel.pipeline import PrelabelOptions, PrelabelReport, prelabel
from annotator.store import predictions as store_predictions
from annotator.store.db import Store
from annotator.store.models import Annotation, Dataset, Image, ModelRun, RunImage
from annotator.store.predictions import ImagePredictions
from tests.conftest import write_jpeg
from tests.prelabel.conftest import SMALL_DETECTOR, MakeDataset, MakeImages
from tests.prelabel.test_frames import _marked

FIXED = "tests.prelabel.stub_models:fixed_boxes"


def _run(store: Store, ds_id: int, **options: Any) -> PrelabelReport:
    with store.session() as s:
        return prelabel(s, s.get_one(Dataset, ds_id), PrelabelOptions(**options))


Found = tuple[str, float, float, float, float, float]


def _boxes(store: Store) -> dict[str, list[Found]]:
    """file name -> [(class, x, y, w, h, score)] of every box on it, sorted."""
    with store.session() as s:
        names = {c.id: c.name for ds in s.scalars(select(Dataset)) for c in ds.classes}
        out: dict[str, list[Found]] = {}
        for image in s.scalars(select(Image)):
            anns = s.scalars(select(Annotation).where(Annotation.image_id == image.id))
            out[Path(image.path).name] = sorted(
                (names[a.class_id], a.x or 0, a.y or 0, a.w or 0, a.h or 0, a.score or 0)
                for a in anns
            )
        return out


def _same(found: list[Found], expected: Sequence[tuple[object, ...]], tol: float = 1e-4) -> bool:
    return len(found) == len(expected) and all(
        f[0] == e[0] and list(f[1:]) == pytest.approx(list(e[1:]), abs=tol)
        for f, e in zip(found, expected, strict=True)
    )


def test_stub_boxes_come_back_exactly_in_displayed_pixels(
    store: Store, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    write_jpeg(folder / "plain.jpg", (400, 300))
    write_jpeg(folder / "turned.jpg", (300, 400), orientation=6)  # displayed 400x300
    write_jpeg(folder / "odd.jpg", (333, 250))
    ds_id = make_dataset("detection", ["cat", "dog", "bird"], folder)
    report = _run(store, ds_id, model=FIXED, workers=0, batch_size=2)
    assert (report.processed, report.predictions) == (3, 6)
    assert report.dropped.unmapped == {"unicorn": 3}
    # frames: 400x300 -> 100x75 (x4); 333x250 -> 100x75 (x3.33, x3.333...)
    quarter = [("cat", 40, 80, 200, 200, 0.9), ("dog", 360, 240, 40, 60, 0.31)]
    found = _boxes(store)
    assert _same(found["plain.jpg"], quarter), found["plain.jpg"]
    assert _same(found["turned.jpg"], quarter), found["turned.jpg"]
    assert _same(found["odd.jpg"], [
        ("cat", 33.3, 20 * 250 / 75, 166.5, 50 * 250 / 75, 0.9),
        ("dog", 299.7, 200.0, 33.3, 50.0, 0.31),
    ]), found["odd.jpg"]  # fmt: skip
    with store.session() as s:
        uncertainties = list(s.scalars(select(Image.uncertainty)))
    # the dog box at 0.31 sits closest to the 0.3 threshold: 1 - 0.01 / 0.7
    assert uncertainties == pytest.approx([1 - 0.01 / 0.7] * 3)


@pytest.mark.parametrize("orientation", [None, 6])
def test_boxes_follow_exif_orientation(
    store: Store, make_dataset: MakeDataset, tmp_path: Path, orientation: int | None
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _marked(folder / "m.jpg", orientation)  # red block at x 240-320, y 60-120 as displayed
    ds_id = make_dataset("detection", ["cat"], folder)
    _run(store, ds_id, model="tests.prelabel.stub_models:red_marker", workers=0)
    ((name, x, y, w, h, _),) = _boxes(store)["m.jpg"]
    assert name == "cat"
    assert (x, y, x + w, y + h) == pytest.approx((240, 60, 320, 120), abs=4)


def test_torchvision_detector_boxes_are_stored_replaced_and_resumed(
    store: Store, make_dataset: MakeDataset, tmp_path: Path, detector_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    folder = tmp_path / "imgs"
    for i in range(3):
        write_jpeg(folder / f"i{i}.jpg", (96, 64), (40 * i, 90, 200))
    write_jpeg(folder / "turned.jpg", (64, 96), orientation=6)
    ds_id = make_dataset("detection", ["person", "cat"], folder)
    options = {"model": SMALL_DETECTOR, "weights": detector_weights, "workers": 0,
               "batch_size": 1}  # fmt: skip
    real_write = store_predictions.write_batch
    calls: list[int] = []

    def dying_write(session: Session, run: ModelRun, results: list[ImagePredictions]) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(session, run, results)

    monkeypatch.setattr(store_predictions, "write_batch", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _run(store, ds_id, **options)
    monkeypatch.setattr(store_predictions, "write_batch", real_write)
    resumed = _run(store, ds_id, **options)
    assert (resumed.already_done, resumed.processed) == (2, 2)
    with store.session() as s:
        (run,) = s.scalars(select(ModelRun))
        assert run.id == resumed.run_id and run.finished_at is not None
        assert run.image_count == 4 and len(list(s.scalars(select(RunImage)))) == 4
    first = _boxes(store)
    for boxes in first.values():
        assert 1 <= len(boxes) <= 100
        for name, x, y, w, h, score in boxes:
            assert name == "person" and 0.3 <= score <= 1
            assert w > 0 and h > 0 and Box(x, y, w, h).inside(96, 64)
    with store.session() as s:
        ids = set(s.scalars(select(Annotation.id)))
        assert run.prediction_count == len(ids)

    assert _run(store, ds_id, **options).run_id is None  # nothing left to do
    forced = _run(store, ds_id, **options, force=True)
    again = _boxes(store)
    assert all(_same(again[name], boxes, 1e-3) for name, boxes in first.items())  # stored anew
    with store.session() as s:
        new_ids = set(s.scalars(select(Annotation.id)))
        runs = set(s.scalars(select(Annotation.run_id)))
    assert not new_ids & ids and runs == {forced.run_id}


@pytest.mark.parametrize(
    ("task", "expected"),
    [("classification", [("cat", 0.9)]), ("multilabel", [("cat", 0.9), ("dog", 0.31)])],
)
def test_a_detector_can_label_whole_images(
    store: Store, make_dataset: MakeDataset, tmp_path: Path, task: str,
    expected: list[tuple[str, float]],
) -> None:  # fmt: skip
    write_jpeg(tmp_path / "imgs" / "a.jpg", (400, 300))
    ds_id = make_dataset(task, ["cat", "dog"], tmp_path / "imgs")
    _run(store, ds_id, model=FIXED, workers=0)
    with store.session() as s:
        names = {c.id: c.name for c in s.get_one(Dataset, ds_id).classes}
        found = [(names[a.class_id], a.score) for a in s.scalars(select(Annotation))]
        assert all(a.kind == "label" for a in s.scalars(select(Annotation)))
    assert [n for n, _ in sorted(found)] == [n for n, _ in expected]
    assert [v for _, v in sorted(found)] == pytest.approx([v for _, v in expected])


def test_a_classifier_cannot_fill_a_detection_dataset(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    ds_id = make_dataset("detection", ["cat"], make_images(1)[0].parent)
    with pytest.raises(InvalidInputError, match="is a classification model; dataset 'd' holds"):
        _run(store, ds_id, model="tests.prelabel.stub_models:tiny_classifier")
