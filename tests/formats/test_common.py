"""Shared helpers: split names, paths kept inside the dataset folder, unique export names, and
how a validation error is put into words."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.annotation import Sample
from annotator.formats.common import UniqueNames, safe_join, split_from_name, within
from annotator.formats.records import COCO_ANNOTATIONS, validate_records


@pytest.mark.parametrize(
    ("name", "split"),
    [("instances_train2017", "train"), ("labels_val", "val"), ("valid", "val"),
     ("validation", "val"), ("image_info_test-dev2017", "test"), ("Train", "train"),
     ("detection", None), ("_annotations.coco", None)],
)  # fmt: skip
def test_split_from_name(name: str, split: str | None) -> None:
    assert split_from_name(name) == split


@pytest.mark.parametrize(
    ("name", "inside"),
    [("a/b.jpg", True), ("./a/../b.jpg", True), ("../b.jpg", False), ("../../etc/passwd", False),
     ("/etc/passwd", False), ("C:/x.jpg", False), ("a\\..\\..\\x.jpg", False), ("", False)],
)  # fmt: skip
def test_safe_join_keeps_paths_inside(tmp_path: Path, name: str, inside: bool) -> None:
    joined = safe_join(tmp_path, name)
    assert (joined is not None) == inside
    if joined is not None:
        assert within(tmp_path, joined) == joined


def test_unique_names() -> None:
    names = UniqueNames()
    got = [names.name(Sample(path, id=i)) for i, path in enumerate(
        ["/a/img.jpg", "/b/img.jpg", "/c/IMG.png", "/d/img-2.jpg", "/e/ünï 猫.jpg"], 1)]  # fmt: skip
    assert got == ["img.jpg", "img-2.jpg", "IMG-3.png", "img-2-4.jpg", "ünï 猫.jpg"]


def test_validate_records_names_each_bad_record() -> None:
    records = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 1]},
        {"image_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 4, "image_id": 1, "category_id": 1, "iscrowd": 2},
    ]
    good, positions, problems = validate_records(COCO_ANNOTATIONS, records, "f.json", "annotation")
    assert positions == [0] and good[0].bbox == (0, 0, 1, 1)
    assert [(p.where, p.reason) for p in problems] == [
        ("annotation id 2", "bbox width 0: zero or negative box size"),
        ("annotations[2]", "category_id: missing"),
        ("annotation id 4", "iscrowd: Input should be less than or equal to 1"),
    ]
