"""YOLO import and export: data.yaml handling, label lookup, every bad row kind, the writer's
rows, files and data.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from annotator.errors import InvalidInputError
from annotator.formats import yolo
from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.formats.manifest import read_manifest
from annotator.store.db import Store
from tests.conftest import write_jpeg
from tests.formats.conftest import image_rows, store_labels

NAMES = ["cat", "dog", "bird"]


def make_yolo(root: Path, labels: dict[str, str | None], config: dict[str, Any] | None = None,
              size: tuple[int, int] = (100, 50)) -> Path:  # fmt: skip
    """images/train/<stem>.jpg with labels/train/<stem>.txt (None: no label file)."""
    for i, (stem, text) in enumerate(labels.items()):
        write_jpeg(root / "images" / "train" / f"{stem}.jpg", size, (30 * i % 255, 60, 90))
        if text is not None:
            (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    cfg = config if config is not None else {"train": "images/train", "names": NAMES}
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _import(store: Store, source: Path, name: str = "ds") -> Any:
    with store.session() as s:
        return import_source(s, "yolo", source, name)


def test_import_converts_rows_to_pixels(store: Store, tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": "0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.2 0.2\n", "b": "",
                                     "c": None})  # fmt: skip
    report = _import(store, src / "data.yaml")
    assert (report.task, report.images, report.labels, report.negatives) == ("detection", 3, 2, 1)
    assert store_labels(store, "ds")["a.jpg"] == [
        ("cat", 40.0, 15.0, 20.0, 20.0, False), ("dog", 0.0, 0.0, 20.0, 10.0, False)
    ]  # fmt: skip
    status = {n: r.status for n, r in image_rows(store, "ds").items()}
    assert status == {"a.jpg": "labeled", "b.jpg": "labeled", "c.jpg": "unlabeled"}
    assert {r.split for r in image_rows(store, "ds").values()} == {"train"}


BAD_ROWS = [
    ("0 0.5 0.5 0.2 0.4 0.9", "6 columns, expected 5"),
    ("0 0.5 0.5", "3 columns, expected 5"),
    ("3 0.5 0.5 0.2 0.2", "class id 3 is beyond names (3 classes)"),
    ("-1 0.5 0.5 0.2 0.2", "class_id"),
    ("0 0.5 0.5 0 0.2", "zero or negative"),
    ("0 0.5 0.5 0.2 -0.1", "zero or negative"),
    ("0 abc 0.5 0.2 0.2", "cx"),
    ("0 nan 0.5 0.2 0.2", "cx"),
    ("0 1.5 0.5 0.2 0.2", "lies outside the 100x50 image"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_rows_are_reported_by_file_and_line(store: Store, tmp_path: Path, row: str,
                                                reason: str) -> None:  # fmt: skip
    src = make_yolo(tmp_path / "y", {"a": f"1 0.5 0.5 0.2 0.2\n{row}\n"})
    report = _import(store, src)
    [problem] = report.problems
    assert problem.file == str(src / "labels" / "train" / "a.txt") and problem.where == "line 2"
    assert reason in problem.reason
    assert store_labels(store, "ds")["a.jpg"] == [("dog", 40.0, 20.0, 20.0, 10.0, False)]


def test_polygon_rows_give_their_box(store: Store, tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": "0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.5 0.5 0.2 0.2\n"})
    report = _import(store, src)
    assert (report.polygons, report.derived, report.labels, report.problems) == (1, 1, 2, [])
    assert store_labels(store, "ds")["a.jpg"][0] == ("cat", 10.0, 5.0, 40.0, 20.0, False)


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("train: images/train\nnames: [a, b\n", "line 3 column 1", "malformed YAML"),
        ("train: images/train\nnames: {0: a, 2: b}\n", "names", "keys must be exactly 0..1"),
        ("train: images/train\n", "names", "missing"),
        ("- a\n- b\n", "top level", "expected a mapping"),
    ],
)
def test_bad_data_yaml_is_reported(store: Store, tmp_path: Path, text: str, where: str,
                                   reason: str) -> None:  # fmt: skip
    src = make_yolo(tmp_path / "y", {"a": "0 0.5 0.5 0.2 0.2\n"})
    (src / "data.yaml").write_text(text)
    report = _import(store, src / "data.yaml")
    [problem] = report.problems
    assert (problem.file, problem.where) == (str(src / "data.yaml"), where)
    assert reason in problem.reason and report.images == 0


def test_split_folders_never_leave_the_dataset_folder(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "images"
    write_jpeg(outside / "x.jpg", (20, 20), (1, 1, 1))
    src = make_yolo(tmp_path / "y", {"a": ""}, {"train": "images/train",
                                                "val": "../elsewhere/images", "names": NAMES})  # fmt: skip
    parsed = yolo.read(src)
    assert [Path(it.sample.path).name for it in parsed.items] == ["a.jpg"]
    [problem] = parsed.problems
    assert problem.where == "val" and "not found" in problem.reason


def test_names_list_nc_and_missing_val_folder(tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": "1 0.5 0.5 0.1 0.1\n"},
                    {"train": "../train/images", "val": "images/valid", "nc": 5,
                     "names": ["x", "y"]})  # fmt: skip
    (src / "images" / "train").rename(src / "images" / "val")
    (src / "train" / "images").mkdir(parents=True)
    write_jpeg(src / "train" / "images" / "t.jpg", (20, 20), (5, 5, 5))
    parsed = yolo.read(src / "data.yaml")
    assert parsed.classes == ["x", "y"]
    assert {(it.sample.split, Path(it.sample.path).name) for it in parsed.items} == {
        ("train", "t.jpg"), ("val", "a.jpg")
    }  # fmt: skip
    assert any("nc is 5 but names lists 2" in n for n in parsed.notes)
    assert any("val: 'images/valid' not found; used images/val" in n for n in parsed.notes)


def test_orphan_label_files_and_missing_names(tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": ""})
    (src / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    [problem] = yolo.read(src).problems
    assert problem.file.endswith("ghost.txt") and problem.reason == "no image for this label file"
    (src / "data.yaml").unlink()
    with pytest.raises(Exception, match="no class names found"):
        yolo.read(src)


def test_duplicate_names_refused(tmp_path: Path) -> None:
    src = make_yolo(tmp_path / "y", {"a": ""}, {"train": "images/train", "names": ["a", "a"]})
    with pytest.raises(InvalidInputError, match="unique"):
        yolo.read(src)


def test_writer_rows_files_and_data_yaml(sample_store: Store, tmp_path: Path) -> None:
    with sample_store.session() as s:
        export_dataset(s, "yolo", "scenes", tmp_path / "out")
    out = tmp_path / "out"
    config = yaml.safe_load((out / "data.yaml").read_text())
    assert "path" not in config and config["train"] == "images/train"
    assert config["val"] == "images/val" and "test" not in config
    assert list(config["names"]) == list(range(14)) and config["names"][0] == "person"
    labels = sorted((out / "labels").rglob("*.txt"))
    assert len(labels) == 15 == len(list((out / "images").rglob("*.jpg")))
    assert (out / "labels" / ("train" if (out / "images/train/china.jpg").exists() else "val")
            / "china.txt").read_text() == ""  # fmt: skip
    rows = [line.split() for f in labels for line in f.read_text().splitlines()]
    assert len(rows) == 34 and all(len(r) == 5 for r in rows)
    assert all(len(v.split(".")[1]) == 6 and 0 <= float(v) <= 1 for r in rows for v in r[1:])
    listed = read_manifest(out / "manifest.json").files
    assert set(listed) == {"data.yaml", *(str(f.relative_to(out)) for f in labels)}


def test_yolo_row_clips_to_the_image() -> None:
    from annotator.annotation import Box

    assert yolo.yolo_row(Box(-10, 0, 30, 50), 100, 50) == (0.1, 0.5, 0.2, 1.0)
    assert yolo.yolo_row(Box(90, 40, 20, 20), 100, 50) == pytest.approx((0.95, 0.9, 0.1, 0.2))


@pytest.mark.parametrize(
    ("image", "labels"),
    [
        ("/data/v1.2/images/train/a.jpg", "/data/v1.2/labels/train/a.txt"),
        ("/data/v1.2/images/train/x", "/data/v1.2/labels/train/x.txt"),
        ("/tmp/tmp.ab/ds/train/images/b.c.png", "/tmp/tmp.ab/ds/train/labels/b.c.txt"),
    ],
)
def test_label_path_keeps_dotted_folders(image: str, labels: str) -> None:
    """Where Ultralytics looks for labels; a dot in a folder name is not a suffix (the orphan
    scan once walked the folder above a dotted dataset path, e.g. all of /tmp)."""
    from annotator.formats.yolo_read import label_path

    assert label_path(Path(image)) == Path(labels)
