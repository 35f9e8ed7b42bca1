"""Prelabelling a classification dataset: real ImageNet weights on the sample photos, what is
stored, re-runs that replace only pending predictions, and resuming a killed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.prelabel.pipeline import PrelabelOptions, PrelabelReport, prelabel
from annotator.prelabel.weights import sha256_file
from annotator.store import labels
from annotator.store import predictions as store_predictions
from annotator.store.datasets import add_classes
from annotator.store.db import Store
from annotator.store.models import Annotation, Dataset, HistoryEvent, Image, ModelRun, RunImage
from annotator.store.predictions import ImagePredictions
from tests.prelabel.conftest import MakeDataset, MakeImages

TINY = "tests.prelabel.stub_models:tiny_classifier"  # always 'dog' (p = 0.844, bird 0.114)


def _run(store: Store, ds_id: int, **options: Any) -> PrelabelReport:
    with store.session() as s:
        ds = s.get(Dataset, ds_id)
        assert ds is not None
        return prelabel(s, ds, PrelabelOptions(**options))


def _labels_by_file(store: Store, ds_id: int) -> dict[str, list[tuple[str, str, str]]]:
    """file name -> [(class, source, review)] of every label on it."""
    with store.session() as s:
        ds = s.get(Dataset, ds_id)
        assert ds is not None
        names = {c.id: c.name for c in ds.classes}
        out: dict[str, list[tuple[str, str, str]]] = {}
        for image in s.scalars(select(Image).where(Image.dataset_id == ds_id)):
            anns = labels.image_annotations(s, image.id)
            out[Path(image.path).name] = [(names[a.class_id], a.source, a.review) for a in anns]
        return out


def test_sample_photos_get_rolled_up_and_mapped_classes(
    store: Store, make_dataset: MakeDataset, photos: Path, mobilenet_weights: Path
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog", "bird", "coffee"], photos)
    report = _run(store, ds_id, model="mobilenet_v2", weights=mobilenet_weights,
                  maps=("espresso=coffee",), workers=2, batch_size=2)  # fmt: skip
    assert (report.processed, report.predictions, report.bad) == (5, 5, [])
    assert _labels_by_file(store, ds_id) == {
        "cat_chelsea.jpg": [("cat", "model", "pending")],
        "coffee.jpg": [("coffee", "model", "pending")],
        "dog.jpg": [("dog", "model", "pending")],
        "dog_exif_rot.jpg": [("dog", "model", "pending")],
        "eagle.jpg": [("bird", "model", "pending")],
    }
    with store.session() as s:
        run = s.get(ModelRun, report.run_id)
        assert run is not None and run.finished_at is not None
        assert (run.model, run.image_count, run.prediction_count) == ("mobilenet_v2", 5, 5)
        assert run.weights_sha256 == sha256_file(mobilenet_weights)
        assert run.params["threshold"] == 0.3 and run.params["map"] == ["espresso=coffee"]
        anns = list(s.scalars(select(Annotation)))
        assert all(a.run_id == run.id and a.kind == "label" for a in anns)
        assert all(a.score is not None and 0.3 <= a.score <= 1 for a in anns)
        events = list(s.scalars(select(HistoryEvent)))
        assert sorted(e.annotation_id or 0 for e in events) == sorted(a.id for a in anns)
        assert {(e.action, e.author) for e in events} == {("create", "model:mobilenet_v2")}
        images = {Path(i.path).name: i for i in s.scalars(select(Image))}
        marks = {r.image_id: r for r in s.scalars(select(RunImage))}
    for image in images.values():
        assert image.uncertainty is not None and 0 <= image.uncertainty <= 1
        assert marks[image.id].uncertainty == image.uncertainty and marks[image.id].predictions == 1
        assert (image.status, image.revision) == ("unlabeled", 2)
    # the cat photo is sure of 'cat' once its three cat breeds are summed
    assert (images["cat_chelsea.jpg"].uncertainty or 1.0) < 0.1


def _ids(store: Store) -> dict[int, tuple[str, int | None, str]]:
    with store.session() as s:
        return {a.id: (a.source, a.run_id, a.review) for a in s.scalars(select(Annotation))}


def test_reruns_skip_done_images_and_replace_only_pending(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog", "bird"], make_images(5)[0].parent)
    options = {"model": TINY, "maps": ("cat=dog",), "workers": 0}
    first = _run(store, ds_id, **options)
    with store.session() as s:
        ids = sorted(s.scalars(select(Image.id)))
        preds = {a.image_id: a.id for a in s.scalars(select(Annotation))}
        bird = next(c.id for c in s.get_one(Dataset, ds_id).classes if c.name == "bird")
        labels.review_annotations(s, [preds[ids[0]]], "accepted", "ann")
        labels.review_annotations(s, [preds[ids[1]]], "rejected", "ann")
        human = labels.assign_class(s, ids[2], bird, "ann").id
    before = _ids(store)

    again = _run(store, ds_id, **options)
    assert (again.run_id, again.already_done, again.processed) == (None, 5, 0)
    assert _ids(store) == before

    forced = _run(store, ds_id, **options, force=True)
    assert forced.run_id != first.run_id and forced.processed == 5
    after = _ids(store)
    kept = {preds[ids[0]], preds[ids[1]], human}
    assert {i: after[i] for i in kept} == {i: before[i] for i in kept}
    replaced = set(preds.values()) - kept
    assert not replaced & set(after)
    new = {i: v for i, v in after.items() if i not in before}
    assert len(new) == 5 and all(v == ("model", forced.run_id, "pending") for v in new.values())
    with store.session() as s:
        deletes = s.scalars(select(HistoryEvent.annotation_id).where(
            HistoryEvent.action == "delete", HistoryEvent.author == f"model:{TINY}"))  # fmt: skip
        assert set(deletes) == replaced

    changed = _run(store, ds_id, **options, threshold=0.5)  # other settings: a new run
    assert changed.processed == 5
    with store.session() as s:
        add_classes(s, s.get_one(Dataset, ds_id), ["fish"])
    assert _run(store, ds_id, **options).processed == 5  # other classes: a new run too


def test_a_killed_run_resumes_in_the_same_run(
    store: Store,
    make_dataset: MakeDataset,
    make_images: MakeImages,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = make_images(5)[0].parent
    ds_id = make_dataset("classification", ["cat", "dog", "bird"], folder)
    real_write = store_predictions.write_batch
    calls: list[int] = []

    def dying_write(session: Session, run: ModelRun, results: list[ImagePredictions]) -> int:
        calls.append(len(results))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(session, run, results)

    monkeypatch.setattr(store_predictions, "write_batch", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _run(store, ds_id, model=TINY, batch_size=2, workers=0)
    monkeypatch.setattr(store_predictions, "write_batch", real_write)
    with store.session() as s:
        (run,) = s.scalars(select(ModelRun))
        assert run.finished_at is None and run.image_count == 2
    report = _run(store, ds_id, model=TINY, batch_size=2, workers=0)
    assert (report.run_id, report.already_done, report.processed) == (run.id, 2, 3)
    with store.session() as s:
        assert s.get_one(ModelRun, run.id).finished_at is not None
        marked = list(s.scalars(select(RunImage.image_id).where(RunImage.run_id == run.id)))
        assert sorted(marked) == sorted(s.scalars(select(Image.id)))
        assert len(list(s.scalars(select(Annotation)))) == 5


def test_limit_and_only_unlabeled(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    folder = make_images(5)[0].parent
    ds_id = make_dataset("classification", ["cat", "dog", "bird"], folder)
    assert _run(store, ds_id, model=TINY, limit=2, workers=0).processed == 2
    with store.session() as s:
        ids = sorted(s.scalars(select(Image.id)))
        labels.assign_class(s, ids[4], s.get_one(Dataset, ds_id).classes[0].id, "ann")
    report = _run(store, ds_id, model=TINY, only_unlabeled=True, workers=0)
    assert (report.processed, report.already_done) == (2, 2)
    with store.session() as s:
        done = set(s.scalars(select(RunImage.image_id)))
    assert done == set(ids[:4])


def test_multilabel_keeps_every_class_over_the_threshold(
    store: Store, make_dataset: MakeDataset, make_images: MakeImages
) -> None:
    folder = make_images(2)[0].parent
    ds_id = make_dataset("multilabel", ["cat", "dog", "bird"], folder)
    report = _run(store, ds_id, model=TINY, threshold=0.1, workers=0)
    assert report.predictions == 4
    for found in _labels_by_file(store, ds_id).values():
        assert sorted(found) == [("bird", "model", "pending"), ("dog", "model", "pending")]
    with store.session() as s:
        uncertainties = list(s.scalars(select(Image.uncertainty)))
    assert uncertainties == pytest.approx([1 - (0.8438 - 0.1142)] * 2, abs=1e-3)


def test_below_threshold_and_unmapped_are_counted(
    store: Store, make_dataset: MakeDataset, photos: Path, mobilenet_weights: Path
) -> None:
    ds_id = make_dataset("classification", ["cat", "dog", "bird"], photos)
    report = _run(store, ds_id, model="mobilenet_v2", weights=mobilenet_weights, workers=0)
    assert report.predictions == 4
    assert report.dropped.below_threshold == 1
    assert report.dropped.unmapped == {"espresso": 1}
    assert _labels_by_file(store, ds_id)["coffee.jpg"] == []
