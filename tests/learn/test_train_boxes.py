"""Training on a detection dataset: a classifier fitted on the accepted boxes' crops proposes the
class of each box a detector run found (here a stub detector whose one category is mapped onto
'red', so every box it stores is 'red'), as a new run the TUI and `space` treat like a prelabel
run; a retrain replaces pending proposals only; refusals; a dataset with no detector run; tiny
boxes; an EXIF-rotated image; real photos with the MobileNetV2 weights."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import select
from torch import Tensor, nn

from annotator.annotation import Box
from annotator.errors import InvalidInputError
from annotator.learn.train import TrainOptions, TrainReport, latest_accuracy, train
from annotator.store import edits, labels
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Dataset, Image, ModelRun
from tests.learn.conftest import COLOUR, HUES

DETECTOR = "tests.learn.test_train_boxes:two_squares"
SIZE = (120, 60)
SLOTS = (Box(10.0, 15.0, 30.0, 30.0), Box(75.0, 15.0, 30.0, 30.0))  # displayed pixels
NAMES = list(HUES)


class TwoSquares(nn.Module):
    """A detector that finds a 'thing' at each of SLOTS (in whatever frame it is given)."""

    task = "detection"
    categories = ("__background__", "thing")
    input_size = 100

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        out = []
        for image in images:
            scale = image.shape[-1] / SIZE[0]
            boxes = [[b.x * scale, b.y * scale, (b.x + b.w) * scale, (b.y + b.h) * scale]
                     for b in SLOTS]  # fmt: skip
            out.append({"boxes": torch.tensor(boxes), "labels": torch.tensor([1, 1]),
                        "scores": torch.tensor([0.9, 0.6])})  # fmt: skip
        return out


def two_squares() -> nn.Module:
    return TwoSquares()


def scene_classes(k: int) -> tuple[str, str]:
    """The true classes of scene k's two squares (every pair of different colours in turn)."""
    return NAMES[k % 3], NAMES[(k + 1 + (k // 3) % 2) % 3]


def write_scenes(folder: Path, count: int, rotated: int | None = None) -> None:
    """count scenes: two coloured squares on grey; scene `rotated` is stored turned, with an
    EXIF orientation that shows it upright."""
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        img = PILImage.new("RGB", SIZE, (128, 128, 128))
        for slot, name in zip(SLOTS, scene_classes(k), strict=True):
            colour = tuple(min(255, max(0, v + rng.randint(-20, 20))) for v in HUES[name])
            xy = (int(slot.x), int(slot.y), int(slot.x + slot.w) - 1, int(slot.y + slot.h) - 1)
            img.paste(colour, xy)
        if k == rotated:
            exif = PILImage.Exif()
            exif[0x0112] = 6  # shown turned 90 degrees clockwise
            img.transpose(PILImage.Transpose.ROTATE_90).save(folder / f"scene_{k:02d}.jpg",
                                                             exif=exif, quality=95)  # fmt: skip
        else:
            img.save(folder / f"scene_{k:02d}.png")


def make_scenes(store: Store, tmp_path: Path, count: int = 12, rotated: int | None = None) -> int:
    folder = tmp_path / "scenes"
    write_scenes(folder, count, rotated)
    with store.session() as s:
        ds = create_dataset(s, "d", "detection", NAMES, folder)
        add_images(s, ds, [folder])
        return ds.id


def images_by_file(store: Store, ds_id: int) -> dict[str, int]:
    with store.session() as s:
        rows = s.scalars(select(Image).where(Image.dataset_id == ds_id))
        return {Path(i.path).stem: i.id for i in rows}


def draw_truth(store: Store, ds_id: int, scenes: range) -> None:
    """A person draws both boxes of each scene in `scenes`, with their true classes."""
    ids = images_by_file(store, ds_id)
    with store.session() as s:
        class_ids = {c.name: c.id for c in s.get_one(Dataset, ds_id).classes}
    for k in scenes:
        for slot, name in zip(SLOTS, scene_classes(k), strict=True):
            with store.session() as s:
                labels.add_box(s, ids[f"scene_{k:02d}"], class_ids[name], slot, "tester")


def boxes(store: Store, ds_id: int) -> dict[str, list[tuple[str, str, int | None, float]]]:
    """scene -> [(class, review, run id, x)] of every box on it, left to right."""
    names = {v: k for k, v in images_by_file(store, ds_id).items()}
    out: dict[str, list[tuple[str, str, int | None, float]]] = {n: [] for n in names.values()}
    with store.session() as s:
        classes = {c.id: c.name for c in s.get_one(Dataset, ds_id).classes}
        for a in s.scalars(select(Annotation).order_by(Annotation.x, Annotation.id)):
            out[names[a.image_id]].append(
                (classes[a.class_id], a.review, a.run_id, round(a.x or 0.0, 1))
            )
    return out


def prelabel(run_cli: Any) -> int:
    result = run_cli("prelabel", "d", "--model", DETECTOR, "--map", "thing=red", "--workers", "0", "--only-unlabeled",
                     "--threshold", "0.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    with_runs = run_cli("runs", "d", "--json")
    return int(json.loads(with_runs.stdout)[-1]["id"])


def train_boxes(store: Store, ds_id: int, **options: Any) -> TrainReport:
    with store.session() as s:
        ds = s.get_one(Dataset, ds_id)
        return train(s, ds, TrainOptions(embeddings=COLOUR, workers=0, **options))


def test_train_proposes_the_class_of_each_detected_box(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ds_id = make_scenes(store, tmp_path)
    draw_truth(store, ds_id, range(6))
    detector = prelabel(run_cli)
    before = boxes(store, ds_id)
    assert before["scene_07"] == [
        ("red", "pending", detector, 10.0),
        ("red", "pending", detector, 75.0),
    ]
    result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["unit"], report["labelled"], report["cv_accuracy"]) == ("boxes", 12, 1.0)
    assert report["support"] == {"red": 4, "green": 4, "blue": 4}
    assert (report["source_run"], report["proposed"], report["predictions"]) == (detector, 12, 12)
    wrong = sum(name != "red" for k in range(6, 12) for name in scene_classes(k))
    assert report["reclassed"] == wrong == 8
    found = boxes(store, ds_id)
    for k in range(6, 12):
        expected = [(name, "pending", report["run_id"], slot.x)
                    for slot, name in zip(SLOTS, scene_classes(k), strict=True)]  # fmt: skip
        assert found[f"scene_{k:02d}"] == expected  # the detector's 'red' boxes replaced
    runs = json.loads(run_cli("runs", "d", "--json").stdout)
    assert [(r["id"], r["model"], r["predictions"]) for r in runs] == [
        (detector, DETECTOR, 12), (report["run_id"], f"train:{COLOUR}", 12)]  # fmt: skip
    with store.session() as s:
        scores = [a.score for a in s.scalars(select(Annotation).where(
            Annotation.run_id == report["run_id"]))]  # fmt: skip
        assert all(0.5 < (p or 0) <= 1 for p in scores)
        assert latest_accuracy(s, s.get_one(Dataset, ds_id)) == 1.0
    text = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "2").stdout  # processes
    assert "trained on 12 labelled boxes: cross-validated accuracy 1.000 (4 folds)" in text
    assert f"proposed a class for 12 pending boxes (found by run {detector}), 0 of them" in text


def test_space_accepts_and_a_retrain_replaces_pending_proposals_only(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ds_id = make_scenes(store, tmp_path)
    draw_truth(store, ds_id, range(6))
    prelabel(run_cli)
    first = train_boxes(store, ds_id)
    ids = images_by_file(store, ds_id)
    with store.session() as s:  # `space` on scene 06: every prelabel on the image accepted
        pending = s.scalars(select(Annotation.id).where(
            Annotation.image_id == ids["scene_06"], Annotation.review == "pending"))  # fmt: skip
        edits.apply(s, edits.Review(tuple(pending), "accepted"), "tester", None)
    second = train_boxes(store, ds_id)
    assert (second.labelled, second.proposed, second.source_run) == (14, 10, first.source_run)
    found = boxes(store, ds_id)
    assert [(c, r, run) for c, r, run, _ in found["scene_06"]] == [
        (name, "accepted", first.run_id) for name in scene_classes(6)]  # fmt: skip
    for k in range(7, 12):
        assert [(c, r, run) for c, r, run, _ in found[f"scene_{k:02d}"]] == [
            (name, "pending", second.run_id) for name in scene_classes(k)]  # fmt: skip
    assert [c for c, _, _, _ in found["scene_00"]] == list(scene_classes(0))  # a person's boxes
    with store.session() as s:
        assert s.scalars(select(Annotation).where(Annotation.run_id == first.run_id,
                                                  Annotation.review == "pending")).first() is None  # fmt: skip


def test_a_class_with_fewer_than_two_boxes_is_refused(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ds_id = make_scenes(store, tmp_path, count=4)
    draw_truth(store, ds_id, range(2))  # red, green / green, blue
    result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: dataset 'd': train needs at least 2 accepted boxes per class (at least 4 pixels "
        "wide and high, on readable images); too few: red 1, blue 1"
    )
    with store.session() as s:
        assert list(s.scalars(select(ModelRun))) == []


def test_without_a_detector_run_train_fits_and_says_there_is_nothing_to_propose(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ds_id = make_scenes(store, tmp_path, count=8)
    draw_truth(store, ds_id, range(6))
    result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "trained on 12 labelled boxes: cross-validated accuracy 1.000" in result.stdout
    assert "no boxes to propose for (no detector run: run annotator prelabel" in result.stdout
    assert all(r == "accepted" for anns in boxes(store, ds_id).values() for _, r, _, _ in anns)


def test_tiny_boxes_are_left_out_and_counted(store: Store, tmp_path: Path) -> None:
    ds_id = make_scenes(store, tmp_path, count=8)
    draw_truth(store, ds_id, range(6))
    ids = images_by_file(store, ds_id)
    with store.session() as s:
        blue = next(c.id for c in s.get_one(Dataset, ds_id).classes if c.name == "blue")
        labels.add_box(s, ids["scene_07"], blue, Box(50.0, 5.0, 3.0, 20.0), "tester")
    report = train_boxes(store, ds_id)
    assert (report.labelled, report.small, report.unembedded) == (12, 1, 1)


def test_an_exif_rotated_image_is_cropped_as_shown(store: Store, tmp_path: Path) -> None:
    ds_id = make_scenes(store, tmp_path, count=8, rotated=7)
    draw_truth(store, ds_id, range(6))
    with store.session() as s:
        shown = s.get_one(Image, images_by_file(store, ds_id)["scene_07"])
        assert (shown.width, shown.height) == SIZE
    from annotator.store import predictions

    with store.session() as s:  # a detector run's two 'red' boxes on the rotated scene only
        ds = s.get_one(Dataset, ds_id)
        run = predictions.open_run(s, ds, "det", None, {"task": "detection"})
        found = [labels_for(slot) for slot in SLOTS]
        predictions.write_batch(s, run, [predictions.ImagePredictions(shown.id, found, 0.1)])
        predictions.finish_run(s, run)
    report = train_boxes(store, ds_id)
    assert report.proposed == 2
    assert [c for c, r, _, _ in boxes(store, ds_id)["scene_07"]] == list(scene_classes(7))


def labels_for(slot: Box) -> Any:
    from annotator.annotation import Label

    return Label("red", slot, 0.9, "model", "pending")


def test_training_on_a_detection_dataset_with_no_boxes_is_refused(
    store: Store, tmp_path: Path
) -> None:
    ds_id = make_scenes(store, tmp_path, count=2)
    with pytest.raises(InvalidInputError, match="too few: red 0, green 0, blue 0"):
        train_boxes(store, ds_id)


PHOTOS = {"cat": "cat_chelsea.jpg", "cup": "coffee.jpg", "bird": "eagle.jpg"}
PHOTO_SLOTS = (Box(16.0, 20.0, 120.0, 110.0), Box(180.0, 30.0, 110.0, 120.0))


def write_photo_scenes(folder: Path, count: int) -> list[tuple[str, str]]:
    """Scenes of two real photos (a random part of each, resized into PHOTO_SLOTS) on noise."""
    from tests.conftest import SAMPLE_DATA

    rng = random.Random(2)
    names = list(PHOTOS)
    sources = {
        n: PILImage.open(SAMPLE_DATA / "images" / f).convert("RGB") for n, f in PHOTOS.items()
    }
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for k in range(count):
        pair = (names[k % 3], names[(k + 1 + (k // 3) % 2) % 3])
        img = PILImage.effect_noise((320, 170), 40).convert("RGB")
        for slot, name in zip(PHOTO_SLOTS, pair, strict=True):
            src = sources[name]
            w, h = src.size
            share = rng.uniform(0.8, 1.0)
            x0, y0 = rng.uniform(0, w * (1 - share)), rng.uniform(0, h * (1 - share))
            part = src.crop((int(x0), int(y0), int(x0 + w * share), int(y0 + h * share)))
            img.paste(part.resize((int(slot.w), int(slot.h))), (int(slot.x), int(slot.y)))
        img.save(folder / f"scene_{k:02d}.jpg", quality=90)
        truth.append(pair)
    return truth


def test_real_photos_with_mobilenet_v2_crops(
    store: Store, tmp_path: Path, mobilenet_weights: Path
) -> None:
    from annotator.annotation import Label
    from annotator.store import predictions

    folder = tmp_path / "photos"
    truth = write_photo_scenes(folder, 9)
    with store.session() as s:
        ds = create_dataset(s, "p", "detection", list(PHOTOS), folder)
        add_images(s, ds, [folder])
        ds_id = ds.id
        class_ids = {c.name: c.id for c in ds.classes}
    ids = images_by_file(store, ds_id)
    for k in range(5):  # a person draws the first five scenes' boxes
        for slot, name in zip(PHOTO_SLOTS, truth[k], strict=True):
            with store.session() as s:
                labels.add_box(s, ids[f"scene_{k:02d}"], class_ids[name], slot, "tester")
    with store.session() as s:  # a detector found both boxes of the others, all called 'cat'
        run = predictions.open_run(s, s.get_one(Dataset, ds_id), "det", None, {})
        found = [predictions.ImagePredictions(ids[f"scene_{k:02d}"], [
            Label("cat", slot, 0.8, "model", "pending") for slot in PHOTO_SLOTS], 0.2)
            for k in range(5, 9)]  # fmt: skip
        predictions.write_batch(s, run, found)
        predictions.finish_run(s, run)
    with store.session() as s:
        options = TrainOptions(embeddings="mobilenet_v2", weights=mobilenet_weights, workers=0)
        report = train(s, s.get_one(Dataset, ds_id), options)
    assert (report.labelled, report.proposed, report.source_run) == (10, 8, run.id)
    found_boxes = boxes(store, ds_id)
    for k in range(5, 9):
        assert [(c, r) for c, r, _, _ in found_boxes[f"scene_{k:02d}"]] == [
            (name, "pending") for name in truth[k]]  # fmt: skip


def test_a_train_killed_between_batches_leaves_one_pending_box_per_place(
    store: Store, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.learn import train_boxes as module
    from annotator.store import predictions

    ds_id = make_scenes(store, tmp_path)
    draw_truth(store, ds_id, range(6))
    detector = prelabel(run_cli)
    real_write = predictions.write_batch
    calls: list[int] = []

    def dying_write(session: Any, run: ModelRun, results: list[Any]) -> int:
        calls.append(len(results))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(session, run, results)

    monkeypatch.setattr(module, "WRITE_BATCH", 2)
    monkeypatch.setattr(predictions, "write_batch", dying_write)
    with pytest.raises(KeyboardInterrupt):
        train_boxes(store, ds_id)
    found = boxes(store, ds_id)
    killed = detector + 1
    for k in range(6, 12):
        runs = [run for _, r, run, _ in found[f"scene_{k:02d}"] if r == "pending"]
        assert runs == [killed if k < 8 else detector] * 2  # whole images, one box per place
    monkeypatch.setattr(predictions, "write_batch", real_write)
    last = train_boxes(store, ds_id)
    assert last.proposed == 12
    for k in range(6, 12):
        assert [(c, r, run) for c, r, run, _ in boxes(store, ds_id)[f"scene_{k:02d}"]] == [
            (name, "pending", last.run_id) for name in scene_classes(k)]  # fmt: skip


def test_the_retrain_key_trains_on_boxes_without_embedding_images(
    store: Store, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotator.learn import loop

    ds_id = make_scenes(store, tmp_path)
    draw_truth(store, ds_id, range(6))
    prelabel(run_cli)
    monkeypatch.setattr(loop, "embedding_model", lambda session, ds: COLOUR)
    with store.session() as s:
        report = loop.retrain(s, s.get_one(Dataset, ds_id))
    assert (report.embedded, report.train.unit, report.train.proposed) == (0, "boxes", 12)
    assert report.train.cv_accuracy == 1.0


def test_run_must_name_a_detector_run(store: Store, tmp_path: Path, run_cli: Any) -> None:
    ds_id = make_scenes(store, tmp_path, count=8)
    draw_truth(store, ds_id, range(6))
    detector = prelabel(run_cli)
    trained = train_boxes(store, ds_id).run_id
    result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0", "--run", str(trained))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: run {trained} was made by train:{COLOUR}, a trained classifier: name a detector "
        "run (annotator runs lists them)"
    )
    result = run_cli("train", "d", "--embeddings", COLOUR, "--workers", "0", "--run", "99")
    assert result.exit_code == 2
    assert f"has no run 99 (runs: {detector}, {trained})" in result.stderr
