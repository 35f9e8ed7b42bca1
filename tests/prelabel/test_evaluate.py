"""Evaluating a run against accepted labels: COCO AP through pycocotools for boxes, precision,
recall, F1 and the confusion matrix for image labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.annotation import Box
from annotator.errors import InvalidInputError, NotFoundError
from annotator.prelabel.evaluate import evaluate
from annotator.prelabel.pipeline import PrelabelOptions, prelabel
from annotator.store import labels
from annotator.store.db import Store
from annotator.store.models import Dataset, Image
from tests.conftest import write_jpeg
from tests.prelabel.conftest import MakeDataset, MakeImages

TINY = "tests.prelabel.stub_models:tiny_classifier"  # always 'dog'


def _prelabel(store: Store, ds_id: int, model: str, **options: Any) -> int:
    with store.session() as s:
        ds = s.get_one(Dataset, ds_id)
        report = prelabel(s, ds, PrelabelOptions(model, workers=0, **options))
        assert report.run_id is not None
        return report.run_id


def _evaluate(store: Store, ds_id: int, run_id: int | None = None) -> dict[str, Any]:
    with store.session() as s:
        return evaluate(s, s.get_one(Dataset, ds_id), run_id)


def _setup(store: Store, ds_id: int) -> tuple[list[int], dict[str, int]]:
    with store.session() as s:
        ids = sorted(s.scalars(select(Image.id)))
        classes = {c.name: c.id for c in s.get_one(Dataset, ds_id).classes}
    return ids, classes


def test_detection_ap_per_class(store: Store, make_dataset: MakeDataset, tmp_path: Path) -> None:
    for i in range(3):
        write_jpeg(tmp_path / "imgs" / f"{i}.jpg", (400, 300), (10 * i, 0, 0))
    ds_id = make_dataset("detection", ["cat", "dog", "bird"], tmp_path / "imgs")
    run_id = _prelabel(store, ds_id, "tests.prelabel.stub_models:fixed_boxes")
    ids, cls = _setup(store, ds_id)
    with store.session() as s:
        # the stub puts a cat at (40, 80, 200, 200) and a dog (0.31) in every image
        labels.add_box(s, ids[0], cls["cat"], Box(40, 80, 200, 200), "ann")
        labels.add_box(s, ids[1], cls["cat"], Box(40, 80, 200, 200), "ann")
        labels.add_box(s, ids[1], cls["bird"], Box(10, 10, 50, 50), "ann")  # never predicted
    result = _evaluate(store, ds_id)
    assert result["run"]["id"] == run_id and result["images"] == 2  # image 3 is not judged yet
    by_class = {c["class"]: c for c in result["classes"]}
    assert by_class["cat"]["ap"] == pytest.approx(1.0) and by_class["cat"]["ap50"] == 1.0
    assert by_class["bird"]["ap"] == 0.0
    assert by_class["dog"]["ap"] is None  # no accepted dog box: AP undefined
    assert (by_class["cat"]["labels"], by_class["cat"]["predictions"]) == (2, 2)
    assert (by_class["dog"]["labels"], by_class["dog"]["predictions"]) == (0, 2)
    assert result["map"] == pytest.approx(0.5) and result["map50"] == pytest.approx(0.5)


def test_classification_scores_and_confusion(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog", "bird"], make_images(5)[0].parent)
    run_id = _prelabel(store, ds_id, TINY)
    ids, cls = _setup(store, ds_id)
    with store.session() as s:
        for image_id, name in zip(ids, ["dog", "cat", "dog", "bird"], strict=False):
            labels.assign_class(s, image_id, cls[name], "ann")
    result = _evaluate(store, ds_id, run_id)
    assert result["images"] == 4 and result["accuracy"] == 0.5
    by_class = {c["class"]: c for c in result["classes"]}
    assert by_class["dog"] == {"class": "dog", "precision": 0.5, "recall": 1.0,
                               "f1": pytest.approx(2 / 3), "support": 2, "predicted": 4}  # fmt: skip
    assert by_class["cat"]["precision"] is None and by_class["cat"]["recall"] == 0.0
    assert by_class["cat"]["f1"] == 0.0
    assert result["confusion"] == {
        "rows": ["cat", "dog", "bird"],
        "columns": ["cat", "dog", "bird", "(none)"],
        "counts": [[0, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0]],
    }


def test_multilabel_exact_match(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    ds_id = make_dataset("multilabel", ["cat", "dog", "bird"], make_images(2)[0].parent)
    _prelabel(store, ds_id, TINY, threshold=0.1)  # predicts {dog, bird}
    ids, cls = _setup(store, ds_id)
    with store.session() as s:
        labels.toggle_class(s, ids[0], cls["dog"], "ann")
        labels.toggle_class(s, ids[0], cls["bird"], "ann")
        labels.toggle_class(s, ids[1], cls["cat"], "ann")
    result = _evaluate(store, ds_id)
    assert result["accuracy"] == 0.5 and result["confusion"] is None
    by_class = {c["class"]: c for c in result["classes"]}
    assert (by_class["bird"]["precision"], by_class["bird"]["recall"]) == (0.5, 1.0)


def test_evaluate_needs_runs_and_judged_images(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog"], make_images(2)[0].parent)
    with pytest.raises(NotFoundError, match="dataset 'd' has no model runs"):
        _evaluate(store, ds_id)
    run_id = _prelabel(store, ds_id, TINY)
    with pytest.raises(InvalidInputError, match="none of the 2 images it processed has been"):
        _evaluate(store, ds_id)
    with pytest.raises(NotFoundError, match=rf"dataset 'd' has no run 99 \(runs: {run_id}\)"):
        _evaluate(store, ds_id, 99)


def test_the_default_run_is_the_newest_finished_one(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    """A run stopped part-way (a killed train or prelabel) is not what evaluate scores by
    default while a finished run exists; named with --run it still is."""
    from annotator.store.predictions import open_run

    ds_id = make_dataset("classification", ["cat", "dog"], make_images(3)[0].parent)
    finished = _prelabel(store, ds_id, TINY)
    ids, cls = _setup(store, ds_id)
    with store.session() as s:
        labels.assign_class(s, ids[0], cls["dog"], "ann")
        stopped = open_run(s, s.get_one(Dataset, ds_id), "train:mobilenet_v2", None, {}).id
        s.commit()
    assert stopped > finished
    assert _evaluate(store, ds_id)["run"]["id"] == finished
    with pytest.raises(InvalidInputError, match=f"run {stopped}: none of the 0 images"):
        _evaluate(store, ds_id, stopped)
