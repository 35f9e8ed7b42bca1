"""Proof by the real consumers: our exports of the sample data loaded by pycocotools (and scored
against themselves), torchvision, FiftyOne's importers and Ultralytics' dataset checks, with
counts and boxes compared to the store."""

from __future__ import annotations

import contextlib
import io
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from annotator.formats.exporting import export_dataset
from annotator.store.db import Store
from tests.conftest import write_jpeg

SPLITS = ("train", "val")


@pytest.fixture(scope="module")
def exports(shared_sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # fmt: skip
    root = tmp_path_factory.mktemp("exports")
    jobs = {"scenes-coco": ("coco", "scenes"), "scenes-yolo": ("yolo", "scenes"),
            "pets-folder": ("imagefolder", "pets"), "pets-coco": ("coco", "pets")}  # fmt: skip
    with shared_sample_store.session() as s:
        for key, (fmt, name) in jobs.items():
            export_dataset(s, fmt, name, root / key)
    return {key: root / key for key in jobs}


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key immune to the 6-decimal rounding of YOLO (-5e-7 and 0.0 sort alike)."""
    return (row[0], *(round(v, 4) for v in row[1:]))


def truth(store: Store, name: str) -> dict[int, dict[str, Any]]:
    """{image id: {split, width, height, labels: {annotation id: (class, box)}}} of the store."""
    from annotator.store.datasets import get_dataset
    from annotator.store.models import Annotation, Image, LabelClass

    with store.session() as s:
        ds = get_dataset(s, name)
        out = {i.id: {"split": i.split, "width": i.width, "height": i.height, "path": i.path,
                      "labels": {}} for i in s.scalars(select(Image).where(
                          Image.dataset_id == ds.id))}  # fmt: skip
        for ann, cls in s.execute(select(Annotation, LabelClass.name).join(
                LabelClass, LabelClass.id == Annotation.class_id).where(
                Annotation.dataset_id == ds.id)):  # fmt: skip
            box = None if ann.x is None else (ann.x, ann.y, ann.w, ann.h)
            out[ann.image_id]["labels"][ann.id] = (cls, box, ann.iscrowd)
    return out


def test_pycocotools_reads_it_and_scores_ground_truth_against_itself_at_ap_1(
    shared_sample_store: Store, exports: dict[str, Path]
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    store = truth(shared_sample_store, "scenes")
    for split in SPLITS:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(exports["scenes-coco"] / "annotations" / f"instances_{split}.json"))
        assert set(gt.getImgIds()) == {i for i, v in store.items() if v["split"] == split}
        for ann in gt.loadAnns(gt.getAnnIds()):
            cls, box, crowd = store[ann["image_id"]]["labels"][ann["id"]]
            assert gt.loadCats(ann["category_id"])[0]["name"] == cls and ann["iscrowd"] == crowd
            assert ann["bbox"] == pytest.approx(box, rel=1e-6)
            assert ann["area"] == pytest.approx(box[2] * box[3], rel=1e-6)
        assert len(gt.getAnnIds()) == sum(len(store[i]["labels"]) for i in gt.getImgIds())
        dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                 "score": 1.0} for a in gt.loadAnns(gt.getAnnIds()) if not a["iscrowd"]]  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation = COCOeval(gt, gt.loadRes(dets), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        assert evaluation.stats[0] == pytest.approx(1.0) and evaluation.stats[1] == pytest.approx(
            1.0
        )


@pytest.mark.slow  # importing torch takes seconds
def test_torchvision_coco_detection_and_image_folder(shared_sample_store: Store,
                                                     exports: dict[str, Path]) -> None:  # fmt: skip
    from torchvision.datasets import CocoDetection, ImageFolder

    store = truth(shared_sample_store, "scenes")
    for split in SPLITS:
        root = exports["scenes-coco"]
        ds = CocoDetection(str(root / "images" / split),
                           str(root / "annotations" / f"instances_{split}.json"))  # fmt: skip
        assert len(ds) == sum(1 for v in store.values() if v["split"] == split)
        for index in range(len(ds)):
            image, target = ds[index]
            truth_image = store[ds.ids[index]]
            assert image.size == (truth_image["width"], truth_image["height"])  # rotated pixels
            assert sorted(t["id"] for t in target) == sorted(truth_image["labels"])
    pets = truth(shared_sample_store, "pets")
    for split in SPLITS:
        folder = ImageFolder(str(exports["pets-folder"] / split), allow_empty=True)
        assert folder.classes == sorted(["cat", "dog", "bird", "person", "vehicle", "other"])
        got = Counter((Path(p).name, folder.classes[c]) for p, c in folder.samples)
        want = Counter((Path(v["path"]).name, cls) for v in pets.values() if v["split"] == split
                       for cls, _, _ in v["labels"].values())  # fmt: skip
        assert got == want


@pytest.mark.slow
def test_fiftyone_importers(shared_sample_store: Store, exports: dict[str, Path]) -> None:
    import fiftyone as fo

    store = truth(shared_sample_store, "scenes")
    for split in SPLITS:
        expected = {Path(v["path"]).name: v for v in store.values() if v["split"] == split}
        coco = fo.Dataset.from_dir(dataset_dir=str(exports["scenes-coco"]),
                                   dataset_type=fo.types.COCODetectionDataset,
                                   data_path=f"images/{split}",
                                   labels_path=f"annotations/instances_{split}.json")  # fmt: skip
        yolo = fo.Dataset.from_dir(dataset_dir=str(exports["scenes-yolo"]),
                                   dataset_type=fo.types.YOLOv5Dataset, yaml_path="data.yaml",
                                   split=split)  # fmt: skip
        for dataset, field in ((coco, "detections"), (yolo, "ground_truth")):
            assert len(dataset) == len(expected)
            for sample in dataset:
                truth_image = expected[Path(sample.filepath).name]
                found = sample[field].detections if sample[field] else []
                boxes = sorted(((d.label, *d.bounding_box) for d in found), key=_rounded)
                w, h = truth_image["width"], truth_image["height"]
                want = sorted(((c, b[0] / w, b[1] / h, b[2] / w, b[3] / h)
                               for c, b, crowd in truth_image["labels"].values()
                               if field == "detections" or not crowd), key=_rounded)  # fmt: skip
                assert len(boxes) == len(want)
                for got_box, want_box in zip(boxes, want, strict=True):
                    assert got_box[0] == want_box[0]
                    assert got_box[1:] == pytest.approx(want_box[1:], abs=2e-6)
            dataset.delete()
    pets = truth(shared_sample_store, "pets")
    tree = fo.Dataset.from_dir(dataset_dir=str(exports["pets-folder"] / "train"),
                               dataset_type=fo.types.ImageClassificationDirectoryTree)  # fmt: skip
    want = Counter(cls for v in pets.values() if v["split"] == "train"
                   for cls, _, _ in v["labels"].values())  # fmt: skip
    assert Counter(tree.values("ground_truth.label")) == want
    tree.delete()


@pytest.fixture
def ultralytics_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Ultralytics keeps its settings under YOLO_CONFIG_DIR: a temporary folder, offline. Its
    import replaces PIL's `Image.open` process-wide; the original is put back afterwards so
    later tests in this worker see Pillow's own behaviour."""
    from PIL import Image

    monkeypatch.setattr(Image, "open", Image.open)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo-config"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    yield tmp_path


def test_ultralytics_detection_checks(shared_sample_store: Store, exports: dict[str, Path],
                                      ultralytics_env: Path) -> None:  # fmt: skip
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    copy = shutil.copytree(exports["scenes-yolo"], ultralytics_env / "copy")  # they write caches
    data = check_det_dataset(str(copy / "data.yaml"))
    from annotator.store import export_reads
    from annotator.store.bulk_sql import driver_rows

    with shared_sample_store.session() as s:
        classes = export_reads.dataset(driver_rows(s), "scenes").class_names()
    assert data["nc"] == len(classes) and list(data["names"].values()) == classes
    store = truth(shared_sample_store, "scenes")
    for split in SPLITS:
        labels = YOLODataset(img_path=data[split], data=data, task="detect").labels
        expected = {Path(v["path"]).name: v for v in store.values() if v["split"] == split}
        assert sorted(Path(lb["im_file"]).name for lb in labels) == sorted(expected)
        for lb in labels:
            truth_image = expected[Path(lb["im_file"]).name]
            w, h = truth_image["width"], truth_image["height"]
            assert lb["shape"] == (h, w)
            got = sorted(((classes[int(c)], *map(float, b)) for c, b in zip(
                lb["cls"].reshape(-1), lb["bboxes"], strict=True)), key=_rounded)  # fmt: skip
            want = sorted(((c, (b[0] + b[2] / 2) / w, (b[1] + b[3] / 2) / h, b[2] / w, b[3] / h)
                           for c, b, crowd in truth_image["labels"].values() if not crowd),
                          key=_rounded)  # fmt: skip
            assert len(got) == len(want)
            for g, x in zip(got, want, strict=True):
                assert g[0] == x[0] and g[1:] == pytest.approx(x[1:], abs=5e-7 + 1e-7)  # float32


def test_ultralytics_classification_check(store: Store, tmp_path: Path, ultralytics_env: Path) -> None:  # fmt: skip
    from ultralytics.data.utils import check_cls_dataset

    from annotator.formats.importing import import_source
    from annotator.store.datasets import get_dataset
    from annotator.store.splits import assign_splits

    for i, cls in enumerate(["zebra", "ant", "moth"] * 4):
        write_jpeg(tmp_path / "src" / cls / f"{i}.jpg", (32 + i, 24), (i * 20, 40, 90))
    with store.session() as s:
        import_source(s, "imagefolder", tmp_path / "src", "bugs")
        assign_splits(s, get_dataset(s, "bugs"), {"train": 0.5, "val": 0.5})
        export_dataset(s, "yolo", "bugs", tmp_path / "out")
    copy = shutil.copytree(tmp_path / "out", ultralytics_env / "copy")
    data = check_cls_dataset(str(copy))
    assert data["nc"] == 3 and list(data["names"].values()) == ["ant", "moth", "zebra"]
    for split in ("train", "val"):
        files = list(Path(data[split]).rglob("*.jpg"))
        assert Counter(p.parent.name for p in files) == {"ant": 2, "moth": 2, "zebra": 2}


def test_image_level_labels_in_coco(shared_sample_store: Store, exports: dict[str, Path]) -> None:
    pets = truth(shared_sample_store, "pets")
    for split in SPLITS:
        data = orjson.loads((exports["pets-coco"] / "annotations" /
                             f"instances_{split}.json").read_bytes())  # fmt: skip
        names = {c["id"]: c["name"] for c in data["categories"]}
        got = {a["id"]: names[a["category_id"]] for a in data["annotations"]}
        want = {aid: cls for v in pets.values() if v["split"] == split
                for aid, (cls, _, _) in v["labels"].items()}  # fmt: skip
        assert got == want
