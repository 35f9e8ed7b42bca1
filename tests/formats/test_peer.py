"""The peer datasets (written by another project's exporters) imported, each with the meaning we
give it. Rules that decide most cases: an image is stored once per dataset (by SHA-256), so a
byte-identical copy is reported ("same image as ...") and skipped with its labels; whatever a
label file names must lie inside the dataset folder.

- coco_instances: categories 1, 2, 4 (a gap) become classes a, b, c in file order; image ids 5
  and 40 are only keys. a.jpg (train) has box b [2, 2, 3, 1]; b.jpg (val) has box a [0, 0, 1, 2]
  (its polygon counted, not imported) and a crowd region b [0, 0, 1, 9] kept as a box flagged
  iscrowd (its uncompressed RLE counted as a mask). The extra `attributes` dict is ignored.
- coco_image_info: `image_info_*` files list images nobody labelled: imported unlabeled, no
  classes.
- coco_labels: annotations without bbox are image-level labels; b.jpg has two, so the dataset
  is multilabel: a.jpg [b], b.jpg [a, b].
- coco_roboflow: the coco_instances content in Roboflow's layout: the very same store content.
- roboflow_dataset/coco: annotation id 0 is an ordinary id. All three images are the same bytes:
  train_001.jpg is imported with its box label_0 [2, 1, 3, 1]; train_002.jpg and val_001.jpg are
  reported as copies of it.
- roboflow_dataset/yolo: `names` list with `nc`; `val: ../valid/images` does not exist, so the
  conventional val/images is used (a note says so); Roboflow's `../train/images` means
  train/images. Same three identical images: one stored, with the same box as the COCO version.
  Images under 10 px are kept (the YOLO export warns that Ultralytics skips them).
- yolo_dataset/labels: the loose layout: obj.names (10 classes, indices kept), images/ and labels/
  per split; the stray README.txt is not a label file of any image and is ignored. train/1.jpg
  has label_2 and label_4 boxes; val/1.jpg is the same bytes (a train/val leak) and is reported.
- imagenet_dataset: class folders label_0, label_1. The file at the root belongs to no class:
  imported unlabeled (torchvision would ignore it). The nested folder inside label_1 belongs to
  label_1 (torchvision's reading), but both label_1 images are byte copies of label_0/label_0_1
  and are reported.
- imagenet_subsets_dataset: the same tree under train/ val/ test/: only the train copies are
  stored; every val and test file is a copy of a train file (a leak) and is reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.store.db import Store
from tests.formats.conftest import image_rows, store_labels


def _import(store: Store, fmt: str, source: Path, name: str = "peer") -> Any:
    with store.session() as s:
        return import_source(s, fmt, source, name)


def _classes(store: Store, name: str = "peer") -> list[str]:
    from annotator.store.datasets import get_dataset

    with store.session() as s:
        return [c.name for c in get_dataset(s, name).classes]


def _copies(report: Any) -> set[str]:
    return {Path(p.file).name for p in report.problems if "identical bytes" in p.reason}


INSTANCES = {
    "a.jpg": [("b", 2.0, 2.0, 3.0, 1.0, False)],
    "b.jpg": [("a", 0.0, 0.0, 1.0, 2.0, False), ("b", 0.0, 0.0, 1.0, 9.0, True)],
}


@pytest.mark.parametrize("layout", ["coco_instances", "coco_roboflow"])
def test_coco_instances(store: Store, peer: Path, layout: str) -> None:
    report = _import(store, "coco", peer / "coco_dataset" / layout)
    assert (report.task, report.images, report.labels, report.crowd) == ("detection", 2, 3, 1)
    assert (report.polygons, report.masks, report.problems) == (1, 1, [])
    assert _classes(store) == ["a", "b", "c"]
    assert store_labels(store, "peer") == INSTANCES
    assert {n: r.split for n, r in image_rows(store, "peer").items()} == {"a.jpg": "train",
                                                                          "b.jpg": "val"}  # fmt: skip


def test_coco_image_info(store: Store, peer: Path) -> None:
    report = _import(store, "coco", peer / "coco_dataset" / "coco_image_info")
    assert (report.images, report.labels, report.negatives, report.problems) == (2, 0, 0, [])
    assert {r.status for r in image_rows(store, "peer").values()} == {"unlabeled"}
    assert _classes(store) == []


def test_coco_labels(store: Store, peer: Path) -> None:
    report = _import(store, "coco", peer / "coco_dataset" / "coco_labels")
    assert (report.task, report.images, report.labels, report.problems) == ("multilabel", 2, 3, [])
    assert store_labels(store, "peer") == {
        "a.jpg": [("b", None, None, None, None, False)],
        "b.jpg": [("a", None, None, None, None, False), ("b", None, None, None, None, False)],
    }


def test_roboflow_coco(store: Store, peer: Path) -> None:
    report = _import(store, "coco", peer / "roboflow_dataset" / "coco")
    assert (report.images, report.labels) == (1, 1)
    assert _copies(report) == {"_annotations.coco.json"}
    assert {p.where for p in report.problems} == {"image id 2", "image id 1"}
    assert store_labels(store, "peer") == {"train_001.jpg": [("label_0", 2.0, 1.0, 3.0, 1.0,
                                                              False)]}  # fmt: skip


def test_roboflow_yolo(store: Store, peer: Path, tmp_path: Path) -> None:
    report = _import(store, "yolo", peer / "roboflow_dataset" / "yolo" / "data.yaml")
    assert report.task == "detection" and _classes(store) == ["label_0", "label_1"]
    assert any("val: '../valid/images' not found; used val/images" in n for n in report.notes)
    assert _copies(report) == {"train_002.jpg", "val_001.jpg"}
    [(name, labels)] = store_labels(store, "peer").items()
    assert name == "train_001.jpg"
    assert labels == [("label_0", pytest.approx(2.0), pytest.approx(1.0), pytest.approx(3.0),
                       pytest.approx(1.0), False)]  # fmt: skip
    with store.session() as s:
        exported = export_dataset(s, "yolo", "peer", tmp_path / "out")
    assert any("side under 10 px" in w for w in exported.warnings)


def test_yolo_loose_layout(store: Store, peer: Path) -> None:
    report = _import(store, "yolo", peer / "yolo_dataset" / "labels")
    assert _classes(store) == [f"label_{i}" for i in range(10)]
    assert _copies(report) == {"1.jpg"} and len(report.problems) == 1
    assert report.problems[0].file.endswith("images/val/1.jpg")
    rows = image_rows(store, "peer")
    assert [(r.path, r.split) for r in rows.values()] == [("images/train/1.jpg", "train")]
    [(cls2, *box2, _), (cls4, *box4, _)] = store_labels(store, "peer")["1.jpg"]
    assert (cls2, cls4) == ("label_2", "label_4")
    assert box2 == pytest.approx([0, 2, 4, 2], abs=1e-4)
    assert box4 == pytest.approx([3, 3, 2, 3], abs=1e-4)


def test_imagenet(store: Store, peer: Path) -> None:
    report = _import(store, "imagefolder", peer / "imagenet_dataset")
    assert report.task == "classification" and _classes(store) == ["label_0", "label_1"]
    assert _copies(report) == {"label_1_1.jpg"} and len(report.problems) == 2
    assert store_labels(store, "peer") == {
        "label_0_1.jpg": [("label_0", None, None, None, None, False)], "label_0_2.jpg": []
    }  # fmt: skip
    assert image_rows(store, "peer")["label_0_2.jpg"].status == "unlabeled"


def test_imagenet_subsets(store: Store, peer: Path) -> None:
    report = _import(store, "imagefolder", peer / "imagenet_subsets_dataset")
    rows = image_rows(store, "peer")
    assert {(r.path, r.split) for r in rows.values()} == {
        ("train/label_0/label_0_1.jpg", "train"), ("train/label_0_2.jpg", "train")
    }  # fmt: skip
    leaks = [p for p in report.problems if "/val/" in p.file or "/test/" in p.file]
    assert len(leaks) == 8 == len(report.problems) - 2
