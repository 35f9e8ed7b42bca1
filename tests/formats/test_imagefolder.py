"""ImageFolder import and export: split detection, hidden entries, the writer's class folders,
and the tasks each folder layout refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.errors import InvalidInputError
from annotator.formats import imagefolder
from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.store.db import Store
from tests.conftest import write_jpeg
from tests.formats.conftest import store_labels


def test_reader_classes_splits_hidden_and_root_files(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "d" / "train" / "dog" / "a.jpg", (20, 20), (1, 1, 1))
    write_jpeg(tmp_path / "d" / "train" / "cat" / "deep" / "b.png", (20, 20), (2, 2, 2))
    write_jpeg(tmp_path / "d" / "train" / ".cache" / "c.jpg", (20, 20), (3, 3, 3))
    write_jpeg(tmp_path / "d" / "val" / "cat" / ".hidden.jpg", (20, 20), (4, 4, 4))
    write_jpeg(tmp_path / "d" / "val" / "loose.jpg", (20, 20), (5, 5, 5))
    (tmp_path / "d" / "val" / "dog" / "notes.txt").parent.mkdir(parents=True)
    (tmp_path / "d" / "val" / "dog" / "notes.txt").write_text("not an image")
    parsed = imagefolder.read(tmp_path / "d")
    assert parsed.classes == ["cat", "dog"]
    got = [(it.sample.split, Path(it.sample.path).name, [lb.class_name for lb in it.sample.labels],
            it.labelled) for it in parsed.items]  # fmt: skip
    assert got == [("train", "b.png", ["cat"], True), ("train", "a.jpg", ["dog"], True),
                   ("val", "loose.jpg", [], False)]  # fmt: skip
    assert parsed.infer_task() == "classification"


def test_a_folder_named_like_a_split_among_classes_is_a_class(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "d" / "test" / "a.jpg", (20, 20), (1, 1, 1))
    write_jpeg(tmp_path / "d" / "zebra" / "b.jpg", (20, 20), (2, 2, 2))
    parsed = imagefolder.read(tmp_path / "d")
    assert parsed.classes == ["test", "zebra"] and {it.sample.split for it in parsed.items} == {
        None
    }


def test_writer_gives_every_split_every_class_folder(sample_store: Store, tmp_path: Path) -> None:
    with sample_store.session() as s:
        report = export_dataset(s, "imagefolder", "pets", tmp_path / "out")
    classes = ["cat", "dog", "bird", "person", "vehicle", "other"]
    for split in ("train", "val"):
        assert sorted(p.name for p in (tmp_path / "out" / split).iterdir()) == sorted(classes)
    files = {f"{p.parent.name}/{p.name}" for p in (tmp_path / "out").rglob("*.jpg")}
    expected = {f"{cls}/{name}" for name, labels in store_labels(sample_store, "pets").items()
                for cls, *_ in labels}  # fmt: skip
    assert files == expected and len(files) == 15
    assert any("allow_empty=True" in w for w in report.warnings)
    assert len(report.manifest.extra["tree_sha256"]) == 64 and report.manifest.files == {}


@pytest.mark.parametrize(
    ("fmt", "name", "message"),
    [
        ("imagefolder", "scenes", "imagefolder cannot hold a detection dataset ('scenes'): "
                                  "export it as coco or yolo"),
        ("imagefolder", "multi", "imagefolder cannot hold a multilabel dataset ('multi'): "
                                 "export it as coco"),
        ("yolo", "multi", "yolo cannot hold a multilabel dataset ('multi'): export it as coco"),
    ],
)  # fmt: skip
def test_layouts_refuse_tasks_they_cannot_hold(sample_store: Store, tmp_path: Path, fmt: str,
                                               name: str, message: str) -> None:  # fmt: skip
    from annotator.store.datasets import create_dataset

    with sample_store.session() as s:
        create_dataset(s, "multi", "multilabel", ["a"])
        with pytest.raises(InvalidInputError) as exc:
            export_dataset(s, fmt, name, tmp_path / "out")
    assert str(exc.value) == message and not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", ["a/b", ".hidden", ".."])
def test_class_names_that_cannot_be_folders_are_refused(store: Store, tmp_path: Path,
                                                        bad: str) -> None:  # fmt: skip
    write_jpeg(tmp_path / "src" / "a.jpg", (20, 20), (1, 1, 1))
    with store.session() as s:
        from annotator.store.datasets import create_dataset
        from annotator.store.splits import assign_splits

        ds = create_dataset(s, "slash", "classification", [bad])
        import_source(s, "imagefolder", tmp_path / "src", "slash")
        assign_splits(s, ds, {"train": 1.0})
        with pytest.raises(InvalidInputError, match="cannot be a folder name"):
            export_dataset(s, "imagefolder", "slash", tmp_path / "out")
