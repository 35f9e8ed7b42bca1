"""COCO import and export: layouts, every bad-input kind, what lands in the store, what the
writer emits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from annotator.errors import InvalidInputError, NotFoundError
from annotator.formats import coco
from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.store.db import Store
from tests.conftest import write_jpeg
from tests.formats.conftest import image_rows, store_labels, write_coco


def _import(store: Store, source: Path, name: str = "ds", **kw: Any) -> Any:
    with store.session() as s:
        return import_source(s, "coco", source, name, **kw)


def test_import_stores_images_boxes_split_and_history(store: Store, coco_source: Callable[..., Path]) -> None:  # fmt: skip
    from sqlalchemy import func, select

    from annotator.store.models import Annotation, HistoryEvent

    report = _import(store, coco_source())
    assert (report.task, report.images, report.labels, report.negatives) == ("detection", 3, 2, 1)
    assert store_labels(store, "ds") == {
        "img0.jpg": [("cat", 10.0, 10.0, 20.0, 15.0, False)],
        "img1.jpg": [("dog", 0.0, 0.0, 80.0, 60.0, False)],
        "img2.jpg": [],
    }
    rows = image_rows(store, "ds")
    assert {r.split for r in rows.values()} == {"train"}
    assert {n: r.status for n, r in rows.items()} == {"img0.jpg": "labeled", "img1.jpg": "labeled",
                                                      "img2.jpg": "labeled"}  # fmt: skip
    assert rows["img0.jpg"].path == "images/img0.jpg"  # relative to the dataset folder
    with store.session() as s:
        events = s.scalars(select(HistoryEvent).where(HistoryEvent.action == "create")).all()
        anns = {a.id: a for a in s.scalars(select(Annotation))}
        assert len(events) == 2 == s.scalar(select(func.count()).select_from(Annotation))
    from annotator.store.history import snapshot

    assert all(e.after == snapshot(anns[e.annotation_id]) for e in events)
    assert all(e.author == "tester (import)" for e in events)


def test_reimport_adds_nothing_and_import_into_existing_appends_classes(
    store: Store, coco_source: Callable[..., Path], tmp_path: Path
) -> None:
    source = coco_source()
    _import(store, source)
    again = _import(store, source)
    assert (again.images, again.labels, again.existing) == (0, 0, 3)
    write_jpeg(tmp_path / "more" / "new.jpg", (50, 40), (1, 2, 3))
    more = write_coco(tmp_path / "more" / "extra.json",
                      [{"id": 7, "file_name": "new.jpg", "width": 50, "height": 40}],
                      [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5]}],
                      [{"id": 3, "name": "bird"}, {"id": 9, "name": "dog"}])  # fmt: skip
    report = _import(store, more)
    assert report.new_classes == ["bird"] and report.images == 1
    with store.session() as s:
        from annotator.store.datasets import get_dataset

        assert [c.name for c in get_dataset(s, "ds").classes] == ["cat", "dog", "bird"]
    assert store_labels(store, "ds")["new.jpg"] == [("bird", 1.0, 1.0, 5.0, 5.0, False)]


BAD_ANNOTATIONS = [
    ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}, "annotation id 5",
     "unknown category id 7"),
    ({"id": 6, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]}, "annotation id 6",
     "image id 99 is not among"),
    ({"id": 7, "image_id": 1, "category_id": 1, "bbox": [70, 50, 30, 30]}, "annotation id 7",
     "lies outside the 80x60 image"),
    ({"id": 8, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5]}, "annotation id 8",
     "zero or negative box size"),
    ({"id": 9, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, -2]}, "annotation id 9",
     "zero or negative box size"),
    ({"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5]}, "annotation id 10", "bbox"),
    ({"id": 11, "category_id": 1, "bbox": [1, 1, 5, 5]}, "annotation id 11", "image_id: missing"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "where", "reason"), BAD_ANNOTATIONS)
def test_bad_annotation_is_reported_and_the_rest_imported(
    store: Store, coco_source: Callable[..., Path], record: dict[str, Any], where: str, reason: str
) -> None:
    good = {"id": 1, "image_id": 2, "category_id": 2, "bbox": [2, 2, 10, 10]}
    report = _import(store, coco_source([good, record]))
    [problem] = report.problems
    assert problem.file.endswith("instances_train.json") and problem.where == where
    assert reason in problem.reason
    assert report.labels == 1 and report.images == 3
    assert store_labels(store, "ds")["img1.jpg"] == [("dog", 2.0, 2.0, 10.0, 10.0, False)]


def test_box_overshooting_by_a_pixel_is_clipped(store: Store, coco_source: Callable[..., Path]) -> None:  # fmt: skip
    report = _import(store, coco_source([{"id": 1, "image_id": 1, "category_id": 1,
                                          "bbox": [-0.5, 10, 80.8, 10]}]))  # fmt: skip
    assert report.clipped == 1 and not report.problems
    assert store_labels(store, "ds")["img0.jpg"] == [("cat", 0.0, 10.0, 80.0, 10.0, False)]


def test_bad_image_records_are_reported(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "src"
    write_jpeg(root / "images" / "ok.jpg", (40, 30), (9, 9, 9))
    write_jpeg(root / "images" / "other.jpg", (40, 30), (9, 200, 9))
    write_jpeg(root / "images" / "rot.jpg", (30, 40), (200, 9, 9), orientation=6)
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    images = [
        {"id": 1, "file_name": "ok.jpg", "width": 40, "height": 30},
        {"id": 1, "file_name": "ok.jpg"},
        {"id": 2, "file_name": "missing.jpg"},
        {"id": 3, "file_name": "../../secret.jpg"},
        {"id": 4, "file_name": "/etc/passwd"},
        {"id": 5, "file_name": "broken.jpg"},
        {"id": 6, "file_name": "other.jpg", "width": 41, "height": 30},
        {"id": 7, "file_name": "rot.jpg", "width": 30, "height": 40},
        {"id": 8, "width": 3},
    ]
    report = _import(store, write_coco(root / "annotations" / "instances_val.json", images, []))
    found = {p.where: p.reason for p in report.problems}
    assert found["image id 1"] == "listed twice (the first is kept)"
    assert "image file 'missing.jpg' not found" in found["image id 2"]
    assert "points outside the dataset folder" in found["image id 3"]
    assert "points outside the dataset folder" in found["image id 4"]
    assert found["image id 5"].endswith("broken.jpg: not an image (unknown format)")
    assert "differs from the image's 40x30" in found["image id 6"]
    assert (
        "EXIF orientation 6" in found["image id 7"] and "displays as 40x30" in found["image id 7"]
    )
    assert found["image id 8"] == "file_name: missing"
    assert report.images == 1 and list(image_rows(store, "ds")) == ["ok.jpg"]


@pytest.mark.parametrize(
    ("content", "where", "reason"),
    [
        (b'{"images": [\n  {"id": 1,,}\n]}', "line 2 column 12", "malformed JSON"),
        (b"[]", "top level", "found a list"),
        (b'{"annotations": []}', "images", "missing"),
        (b'{"images": {"id": 1}}', "images", "expected a list"),
    ],
)
def test_malformed_files_are_reported_with_their_position(
    store: Store, tmp_path: Path, content: bytes, where: str, reason: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    report = _import(store, path)
    [problem] = report.problems
    assert (problem.file, problem.where) == (str(path), where) and reason in problem.reason
    assert report.summary() == "nothing imported into 'ds'; 1 problems"
    with store.session() as s, pytest.raises(NotFoundError):  # no empty dataset left behind
        from annotator.store.datasets import get_dataset

        get_dataset(s, "ds")


def test_crowd_kept_flagged_polygons_and_masks_counted(store: Store, coco_source: Callable[..., Path]) -> None:  # fmt: skip
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1,
         "segmentation": {"counts": [0, 20, 30], "size": [60, 80]}},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10],
         "segmentation": [[5, 5, 15, 5, 15, 15]]},
    ]  # fmt: skip
    report = _import(store, coco_source(anns))
    assert (report.crowd, report.polygons, report.masks) == (1, 1, 1)
    assert "1 crowd regions kept flagged iscrowd=True" in report.summary()
    assert store_labels(store, "ds")["img0.jpg"] == [
        ("cat", 0.0, 0.0, 10.0, 10.0, True), ("dog", 5.0, 5.0, 10.0, 10.0, False)
    ]  # fmt: skip


def test_image_level_labels_make_a_classification_or_multilabel_dataset(
    store: Store, coco_source: Callable[..., Path]
) -> None:
    single = [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 2,
                                                           "category_id": 2}]  # fmt: skip
    assert _import(store, coco_source(single), "one").task == "classification"
    multi = [*single, {"id": 3, "image_id": 2, "category_id": 1}]
    report = _import(store, coco_source(multi), "many")
    assert report.task == "multilabel" and report.labels == 3


def test_task_conflicts(store: Store, coco_source: Callable[..., Path]) -> None:
    labels = [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 1,
                                                           "category_id": 2}]  # fmt: skip
    with pytest.raises(InvalidInputError, match="holds boxes but dataset 'ds' is classification"):
        _import(store, coco_source(), task="classification")
    report = _import(store, coco_source(labels), "single", task="classification")
    assert report.labels == 0 and "2 classes (cat, dog) on one image" in report.problems[0].reason
    assert image_rows(store, "single")["img0.jpg"].status == "unlabeled"
    with pytest.raises(InvalidInputError, match="whole-image labels, no boxes"):
        _import(store, coco_source(labels), "det", task="detection")
    with store.session() as s, pytest.raises(NotFoundError):  # refused before it was created
        from annotator.store.datasets import get_dataset

        get_dataset(s, "det")


def test_layouts_are_found(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "rf" / "valid" / "a.jpg", (20, 20), (1, 1, 1))
    write_coco(tmp_path / "rf" / "valid" / "_annotations.coco.json",
               [{"id": 1, "file_name": "a.jpg"}], [])  # fmt: skip
    parsed = coco.read(tmp_path / "rf")
    assert [(it.sample.split, Path(it.sample.path).name) for it in parsed.items] == [
        ("val", "a.jpg")
    ]
    write_jpeg(tmp_path / "fo" / "data" / "b.jpg", (20, 20), (1, 1, 1))
    write_coco(tmp_path / "fo" / "labels.json", [{"id": 1, "file_name": "b.jpg"}], [])
    assert Path(coco.read(tmp_path / "fo").items[0].sample.path).name == "b.jpg"
    with pytest.raises(NotFoundError, match="no COCO file found"):
        coco.read(tmp_path / "fo" / "data")


def test_writer_output(sample_store: Store, tmp_path: Path) -> None:
    with sample_store.session() as s:
        export_dataset(s, "coco", "scenes", tmp_path / "out")
        export_dataset(s, "coco", "pets", tmp_path / "pets")
    files = sorted((tmp_path / "out" / "annotations").iterdir())
    assert [f.name for f in files] == ["instances_train.json", "instances_val.json"]
    data = [orjson.loads(f.read_bytes()) for f in files]
    for d in data:
        assert set(d) == {"info", "licenses", "categories", "images", "annotations"}
        assert [c["id"] for c in d["categories"]] == list(range(1, 15))
        assert all({"id", "image_id", "category_id", "bbox", "area", "iscrowd"} <= set(a)
                   for a in d["annotations"])  # fmt: skip
    ann_ids = [a["id"] for d in data for a in d["annotations"]]
    assert len(ann_ids) == len(set(ann_ids)) == 34
    assert sum(len(d["images"]) for d in data) == 15  # china and flower (no boxes) included
    listed = {i["file_name"] for d in data for i in d["images"]}
    assert {"china.jpg", "flower.jpg"} <= listed
    pets = orjson.loads((tmp_path / "pets" / "annotations" / "instances_train.json").read_bytes())
    assert all("bbox" not in a and a["iscrowd"] == 0 for a in pets["annotations"])
