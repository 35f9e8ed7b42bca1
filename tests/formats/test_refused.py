"""A refused label never turns into a negative: an image an import refused labels of is stored
unlabeled and flagged with the reasons, never exported (least of all as a background image),
listed by the flagged queue and `stats`, and unflagged once a person labels it. Polygons give
their box and keep their points; merged categories and duplicate annotation ids are reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from annotator.annotation import Box
from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.store import labels
from annotator.store.datasets import get_dataset, stats
from annotator.store.db import Store
from annotator.store.models import Annotation
from annotator.store.queue import QueueSpec, first, total
from tests.formats.conftest import image_rows, store_labels, write_coco
from tests.formats.test_yolo import make_yolo

GOOD = {"id": 1, "image_id": 2, "category_id": 2, "bbox": [2, 2, 10, 10]}  # on img1.jpg

# every label of img0.jpg (image id 1, 80x60) refused, and why
REFUSED_COCO = [
    ({"id": 17, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5]}, "annotation id 17",
     "zero or negative box size"),
    ({"id": 17, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, -2]}, "annotation id 17",
     "zero or negative box size"),
    ({"id": 17, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}, "annotation id 17",
     "unknown category id 7"),
    ({"id": 17, "image_id": 1, "category_id": "1", "bbox": [1, 1, 5, 5]}, "annotation id 17",
     "unknown category id '1'"),
    ({"id": 17, "image_id": 1, "category_id": 1, "bbox": [70, 50, 30, 30]}, "annotation id 17",
     "lies outside the 80x60 image"),
    ({"id": 17, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5]}, "annotation id 17", "bbox"),
    ({"id": 17, "image_id": 1, "category_id": 1, "iscrowd": 1}, "annotation id 17",
     "a crowd region without bbox"),
    ({"id": 17, "image_id": 1, "category_id": 1, "segmentation": {"counts": "x", "size": [60, 80]}},
     "annotation id 17", "an RLE mask without bbox"),
    ({"id": 17, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, "a", 9, 9]]},
     "annotation id 17", "a polygon needs 3 or more x, y pairs"),
]  # fmt: skip


def _import(store: Store, fmt: str, source: Path, name: str = "ds", **kw: Any) -> Any:
    with store.session() as s:
        return import_source(s, fmt, source, name, **kw)


def _exported_names(store: Store, tmp_path: Path, name: str = "ds") -> dict[str, set[str]]:
    """{format: image file names} of a COCO and a YOLO export of every image (split train)."""
    out: dict[str, set[str]] = {}
    with store.session() as s:
        for fmt in ("coco", "yolo"):
            report = export_dataset(s, fmt, name, tmp_path / f"out-{fmt}")
            assert report.manifest.left_out["flagged"] >= 1
    coco = orjson.loads((tmp_path / "out-coco/annotations/instances_train.json").read_bytes())
    out["coco"] = {i["file_name"] for i in coco["images"]}
    out["yolo"] = {p.stem + ".jpg" for p in (tmp_path / "out-yolo/labels/train").iterdir()}
    return out


@pytest.mark.parametrize(("record", "where", "reason"), REFUSED_COCO)
def test_coco_image_with_every_label_refused_is_flagged_not_a_negative(
    store: Store, coco_source: Callable[..., Path], tmp_path: Path,
    record: dict[str, Any], where: str, reason: str,
) -> None:  # fmt: skip
    report = _import(store, "coco", coco_source([GOOD, record]))
    [problem] = report.problems
    assert problem.file.endswith("instances_train.json") and problem.where == where
    assert reason in problem.reason
    assert (report.negatives, report.flagged) == (1, 1)  # img2.jpg is listed with no annotation
    rows = image_rows(store, "ds")
    assert rows["img0.jpg"].status == "unlabeled"
    assert rows["img0.jpg"].flag.startswith(f"import: 1 labels refused: {where}: ")
    assert reason in rows["img0.jpg"].flag
    assert (rows["img2.jpg"].status, rows["img2.jpg"].flag) == ("labeled", None)
    assert store_labels(store, "ds")["img0.jpg"] == []
    exported = _exported_names(store, tmp_path)
    assert exported == {"coco": {"img1.jpg", "img2.jpg"}, "yolo": {"img1.jpg", "img2.jpg"}}


REFUSED_ROWS = [
    ("0 abc 0.5 0.2 0.2", "cx"),
    ("0 0.5 0.5", "3 columns, expected 5"),
    ("0 0.5 0.5 0.2 0.2 0.9", "6 columns, expected 5"),
    ("0 0.1 0.1 0.5 0.1 0.5 zebra", "column 7 'zebra' is not a number"),
    ("0 0.1 0.1 0.5 0.1 0.5 0.5 0.9", "8 columns"),
    ("cat 0.1 0.1 0.5 0.1 0.5 0.5", "class id 'cat'"),
    ("3 0.5 0.5 0.2 0.2", "class id 3 is beyond names"),
    ("0 1.5 0.5 0.2 0.2", "lies outside the 100x50 image"),
    ("0 0.1 0.1 0.5 0.1 0.9 0.1", "zero or negative"),  # a flat polygon
]


@pytest.mark.parametrize(("row", "reason"), REFUSED_ROWS)
def test_yolo_image_with_every_row_refused_is_flagged_not_a_negative(
    store: Store, tmp_path: Path, row: str, reason: str
) -> None:
    src = make_yolo(tmp_path / "y", {"a": f"{row}\n", "b": "", "c": None, "d": "1 0.5 0.5 0.2 0.2"})
    report = _import(store, "yolo", src)
    [problem] = report.problems
    assert problem.file == str(src / "labels" / "train" / "a.txt") and problem.where == "line 1"
    assert reason in problem.reason
    rows = image_rows(store, "ds")
    status = {n: (r.status, r.flag is not None) for n, r in rows.items()}
    assert status == {"a.jpg": ("unlabeled", True), "b.jpg": ("labeled", False),
                      "c.jpg": ("unlabeled", False), "d.jpg": ("labeled", False)}  # fmt: skip
    assert reason in rows["a.jpg"].flag and rows["a.jpg"].flag.startswith("import: 1 labels")
    assert (report.negatives, report.flagged) == (1, 1)
    exported = _exported_names(store, tmp_path)
    assert exported == {"coco": {"b.jpg", "d.jpg"}, "yolo": {"b.jpg", "d.jpg"}}


def test_partly_refused_image_keeps_good_labels_stays_flagged_until_labelled(
    store: Store, tmp_path: Path
) -> None:
    src = make_yolo(tmp_path / "y", {"a": "1 0.5 0.5 0.2 0.2\n0 0.5 0.5\n0 x 1 1 1\n", "b": ""})
    report = _import(store, "yolo", src)
    assert (report.labels, report.flagged, len(report.problems)) == (1, 1, 2)
    assert "1 images with refused labels left unlabeled and flagged" in report.summary()
    row = image_rows(store, "ds")["a.jpg"]
    assert (row.status, store_labels(store, "ds")["a.jpg"]) == (
        "unlabeled", [("dog", 40.0, 20.0, 20.0, 10.0, False)]
    )  # fmt: skip
    assert row.flag.startswith("import: 2 labels refused: line 2: 3 columns")
    assert "; line 3: cx" in row.flag
    assert _exported_names(store, tmp_path)["yolo"] == {"b.jpg"}  # not even its good label
    with store.session() as s:
        ds = get_dataset(s, "ds")
        assert stats(s, ds)["flagged"] == 1
        assert stats(s, ds)["flags"] == {row.path: row.flag}
        flagged = QueueSpec("flagged")
        assert (total(s, ds.id, flagged), first(s, ds.id, flagged)) == (1, row.id)
        labels.add_box(s, row.id, ds.classes[0].id, Box(1, 1, 5, 5), "tester")
    row = image_rows(store, "ds")["a.jpg"]
    assert (row.status, row.flag) == ("labeled", None)


def test_marking_a_flagged_image_done_clears_its_flag(store: Store, tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": "0 0.5 0.5\n"})
    _import(store, "yolo", src)
    row = image_rows(store, "ds")["a.jpg"]
    assert (row.status, row.flag is not None) == ("unlabeled", True)
    with store.session() as s:
        labels.set_status(s, row.id, "labeled", "tester", row.revision)
        assert stats(s, get_dataset(s, "ds"))["flagged"] == 0
    assert image_rows(store, "ds")["a.jpg"].flag is None


def _points(store: Store) -> dict[str, list[list[float] | None]]:
    rows = {r.id: name for name, r in image_rows(store, "ds").items()}
    with store.session() as s:
        out: dict[str, list[list[float] | None]] = {}
        for ann in s.scalars(select(Annotation).order_by(Annotation.id)):
            out.setdefault(rows[ann.image_id], []).append(ann.points)
    return out


def test_yolo_polygon_rows_give_their_box_and_keep_their_points(store: Store, tmp_path: Path) -> None:  # fmt: skip
    src = make_yolo(tmp_path / "y", {"a": "0 0.1 0.2 0.5 0.1 0.3 0.6\n1 0.5 0.5 0.2 0.2\n"})
    report = _import(store, "yolo", src)
    assert (report.labels, report.polygons, report.derived, report.problems) == (2, 1, 1, [])
    assert "1 boxes derived from polygons" in report.summary()
    assert store_labels(store, "ds")["a.jpg"] == [
        ("cat", pytest.approx(10.0), pytest.approx(5.0), pytest.approx(40.0),
         pytest.approx(25.0), False),
        ("dog", 40.0, 20.0, 20.0, 10.0, False),
    ]  # fmt: skip
    [points, none] = _points(store)["a.jpg"]
    assert points == pytest.approx([10.0, 10.0, 50.0, 5.0, 30.0, 30.0]) and none is None
    assert image_rows(store, "ds")["a.jpg"].status == "labeled"


def test_coco_segmentation_only_makes_a_detection_dataset(
    store: Store, coco_source: Callable[..., Path]
) -> None:
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 30, 12, 20, 40]]},
        {"id": 2, "image_id": 2, "category_id": 2, "segmentation": [[1, 1, 5, 1, 5, 5],
                                                                    [20, 20, 30, 20, 30, 30]]},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 4],
         "segmentation": [[1, 1, 5, 1, 5, 5]]},
    ]  # fmt: skip
    report = _import(store, "coco", coco_source(anns))
    assert (report.task, report.labels, report.problems) == ("detection", 3, [])
    assert (report.polygons, report.derived, report.masks) == (2, 2, 1)
    assert store_labels(store, "ds")["img0.jpg"] == [("cat", 10.0, 10.0, 20.0, 30.0, False)]
    assert ("dog", 1.0, 1.0, 29.0, 29.0, False) in store_labels(store, "ds")["img1.jpg"]
    points = _points(store)
    assert points["img0.jpg"] == [[10.0, 10.0, 30.0, 12.0, 20.0, 40.0]]
    assert points["img1.jpg"] == [None, [1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]  # two parts: box only


def test_duplicate_annotation_ids_refused_and_merged_categories_reported(
    store: Store, tmp_path: Path, coco_source: Callable[..., Path]
) -> None:
    anns = [
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
        {"id": 5, "image_id": 2, "category_id": 2, "bbox": [2, 2, 5, 5]},
    ]
    source = coco_source(anns)
    data = orjson.loads(source.read_bytes())
    data["categories"].append({"id": 8, "name": "cat"})
    data["annotations"].append({"id": 6, "image_id": 3, "category_id": 8, "bbox": [3, 3, 5, 5]})
    write_coco(source, data["images"], data["annotations"], data["categories"])
    report = _import(store, "coco", source)
    [problem] = report.problems
    assert problem.where == "annotation id 5" and "listed twice" in problem.reason
    assert report.notes == [f"{source}: categories 1, 8 share the name 'cat': merged"]
    rows = image_rows(store, "ds")
    assert (rows["img0.jpg"].status, rows["img0.jpg"].flag) == ("labeled", None)
    assert rows["img1.jpg"].status == "unlabeled" and "listed twice" in rows["img1.jpg"].flag
    assert store_labels(store, "ds")["img2.jpg"] == [("cat", 3.0, 3.0, 5.0, 5.0, False)]


def test_whole_image_label_in_a_detection_dataset_flags_the_image(
    store: Store, coco_source: Callable[..., Path]
) -> None:
    anns = [GOOD, {"id": 2, "image_id": 1, "category_id": 1}]
    report = _import(store, "coco", coco_source(anns), task="detection")
    assert report.flagged == 1 and "whole-image label" in report.problems[0].reason
    row = image_rows(store, "ds")["img0.jpg"]
    assert row.status == "unlabeled" and "whole-image label" in row.flag


def test_stats_cli_shows_the_flagged_count_and_reasons(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    src = make_yolo(tmp_path / "y", {"a": "0 0.5 0.5\n", "b": ""})
    assert run_cli("import", "yolo", str(src), "--dataset", "ds").exit_code == 0
    text = run_cli("stats", "ds").stdout
    assert "needs review (flagged): 1 images" in text
    data = orjson.loads(run_cli("stats", "ds", "--json").stdout)
    assert data["flagged"] == 1
    [(path, reason)] = data["flags"].items()
    assert path.endswith("a.jpg") and "line 1: 3 columns, expected 5" in reason
