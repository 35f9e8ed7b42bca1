"""Export rules that hold for every format: which labels and images go out, the manifest,
atomic replacement of DEST, media modes, EXIF-rotated pixels, unique and non-ASCII names."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy import select

from annotator.errors import ConflictError, InvalidInputError, StorageError
from annotator.formats.exporting import export_dataset
from annotator.formats.importing import import_source
from annotator.formats.manifest import FileList, read_manifest
from annotator.store.db import Store
from tests.conftest import SAMPLE_DATA, write_jpeg
from tests.formats.conftest import image_rows, write_coco


def _export(store: Store, fmt: str, name: str, dest: Path, **kw: Any) -> Any:
    with store.session() as s:
        return export_dataset(s, fmt, name, dest, **kw)


def _add_prediction(store: Store, image_name: str, review: str, cls: str = "dog") -> int:
    from annotator.store.datasets import get_class, get_dataset
    from annotator.store.models import Annotation, ModelRun

    with store.session() as s:
        ds = get_dataset(s, "scenes")
        image = image_rows(store, "scenes")[image_name]
        run = ModelRun(dataset_id=ds.id, model="fasterrcnn")
        s.add(run)
        s.flush()
        ann = Annotation(dataset_id=ds.id, task="detection", image_id=image.id,
                         class_id=get_class(ds, cls).id, kind="box", x=1.0, y=2.0, w=30.0,
                         h=40.0, source="model", run_id=run.id, score=0.9, review=review,
                         author="model")  # fmt: skip
        s.add(ann)
        s.commit()
        return ann.id


def _entries(folder: Path) -> list[str]:
    """What a folder holds, the test database aside (hidden leftovers included)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("test.db"))


def _coco_ids(dest: Path) -> set[int]:
    files = (dest / "annotations").glob("*.json")
    return {a["id"] for f in files for a in orjson.loads(f.read_bytes())["annotations"]}


def test_pending_and_rejected_predictions(sample_store: Store, tmp_path: Path) -> None:
    pending = _add_prediction(sample_store, "china.jpg", "pending")
    rejected = _add_prediction(sample_store, "china.jpg", "rejected")
    accepted = _add_prediction(sample_store, "flower.jpg", "accepted")
    _export(sample_store, "coco", "scenes", tmp_path / "plain")
    ids = _coco_ids(tmp_path / "plain")
    assert accepted in ids and pending not in ids and rejected not in ids and len(ids) == 35
    report = _export(sample_store, "coco", "scenes", tmp_path / "all", include_pending=True)
    ids = _coco_ids(tmp_path / "all")
    assert pending in ids and rejected not in ids and len(ids) == 36
    assert report.manifest.include_pending is True


def test_unlabeled_and_unsplit_images_are_left_out(sample_store: Store, tmp_path: Path) -> None:
    from annotator.store.models import Annotation, Image

    rows = image_rows(sample_store, "scenes")
    with sample_store.session() as s:
        s.get(Image, rows["china.jpg"].id).status = "unlabeled"  # never looked at: not a negative
        s.get(Image, rows["kite.jpg"].id).split = None
        s.commit()
        kite_boxes = len(s.scalars(select(Annotation).where(
            Annotation.image_id == rows["kite.jpg"].id)).all())  # fmt: skip
    report = _export(sample_store, "coco", "scenes", tmp_path / "out")
    data = [orjson.loads(f.read_bytes()) for f in (tmp_path / "out/annotations").glob("*.json")]
    names = {i["file_name"] for d in data for i in d["images"]}
    assert "china.jpg" not in names and "kite.jpg" not in names and "flower.jpg" in names
    assert report.manifest.left_out == {"no_split": 1, "unlabeled": 1, "flagged": 0,
                                        "duplicate": 0, "no_single_class": 0}  # fmt: skip
    assert sum(len(d["annotations"]) for d in data) == 34 - kite_boxes


def test_manifest_records_what_was_written(sample_store: Store, tmp_path: Path) -> None:
    from annotator import __version__
    from annotator.store.datasets import get_dataset
    from annotator.store.history import position

    report = _export(sample_store, "yolo", "scenes", tmp_path / "out")
    manifest = read_manifest(tmp_path / "out" / "manifest.json")
    assert report.manifest.files == {"data.yaml": manifest.files["data.yaml"]}  # labels: spooled
    assert manifest == replace(report.manifest, files=manifest.files)
    assert not (tmp_path / "out" / FileList.NAME).exists()
    assert next(iter(manifest.files)) == "data.yaml"
    with sample_store.session() as s:
        ds = get_dataset(s, "scenes")
        assert manifest.history_position == position(s, ds.id) > 0
        assert manifest.classes == [c.name for c in ds.classes]
    assert (manifest.version, manifest.dataset, manifest.format) == (__version__, "scenes", "yolo")
    assert sum(s.images for s in manifest.splits.values()) == 15
    assert sum(sum(s.classes.values()) for s in manifest.splits.values()) == 34
    assert sum(s.classes.get("horse", 0) for s in manifest.splits.values()) == 6
    for relative, digest in manifest.files.items():
        assert hashlib.sha256((tmp_path / "out" / relative).read_bytes()).hexdigest() == digest
    assert len(manifest.files) == 16  # 15 label files and data.yaml


def test_dest_rules(sample_store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ConflictError, match="is not empty: pass --overwrite"):
        _export(sample_store, "coco", "scenes", dest)
    assert (dest / "keep.txt").read_text() == "mine"
    _export(sample_store, "coco", "scenes", dest, overwrite=True)
    assert not (dest / "keep.txt").exists() and (dest / "manifest.json").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        _export(sample_store, "coco", "scenes", tmp_path / "file")
    with pytest.raises(InvalidInputError, match="holds the images of dataset"):
        _export(sample_store, "coco", "scenes", SAMPLE_DATA, overwrite=True)
    assert _entries(tmp_path) == ["file", "out"]


def test_a_failing_export_leaves_dest_untouched(sample_store: Store, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from annotator.formats.media import MediaPlacer

    real = MediaPlacer.place
    calls = []

    def flaky(self: MediaPlacer, sample: Any, target: str) -> None:
        calls.append(target)
        if len(calls) == 5:
            raise OSError("disk full")
        real(self, sample, target)

    monkeypatch.setattr(MediaPlacer, "place", flaky)
    with pytest.raises(StorageError, match=r"cannot write the export to .*new: disk full"):
        _export(sample_store, "yolo", "scenes", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "previous.txt").write_text("v1")
    calls.clear()
    with pytest.raises(StorageError, match="disk full"):
        _export(sample_store, "yolo", "scenes", tmp_path / "old", overwrite=True)
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["previous.txt"]
    assert _entries(tmp_path) == ["old"]  # no leftovers


def test_media_modes(sample_store: Store, tmp_path: Path) -> None:
    rows = image_rows(sample_store, "scenes")
    for mode in ("copy", "hardlink", "symlink", "none"):
        _export(sample_store, "coco", "scenes", tmp_path / mode, media=mode)
    found = {p.name: p for p in (tmp_path / "copy" / "images").rglob("*.jpg")}
    assert len(found) == 15
    for name, path in found.items():
        source = SAMPLE_DATA / "images" / name
        if name == "dog_exif_rot.jpg":
            continue
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[name].sha256
        linked = tmp_path / "hardlink" / path.relative_to(tmp_path / "copy")
        assert os.path.samefile(linked, source)
        symlink = tmp_path / "symlink" / path.relative_to(tmp_path / "copy")
        assert symlink.is_symlink() and os.path.samefile(symlink, source)
    assert not list((tmp_path / "none" / "images").rglob("*.jpg"))
    assert len(list((tmp_path / "none" / "annotations").glob("*.json"))) == 2


def test_exif_oriented_images_are_written_upright(sample_store: Store, tmp_path: Path) -> None:
    from PIL import Image, ImageChops, ImageOps

    from annotator.store.imagefile import probe

    for mode in ("copy", "symlink"):
        report = _export(sample_store, "yolo", "scenes", tmp_path / mode, media=mode)
        [written] = (tmp_path / mode / "images").rglob("dog_exif_rot.jpg")
        assert not written.is_symlink()
        info = probe(written)
        assert (info.width, info.height, info.orientation) == (768, 576, 1)
        with (
            Image.open(SAMPLE_DATA / "images" / "dog_exif_rot.jpg") as src,
            Image.open(written) as out,
        ):
            expected = ImageOps.exif_transpose(src).convert("RGB")
            diff = ImageChops.difference(expected, out.convert("RGB"))
            assert max(diff.getextrema()[c][1] for c in range(3)) < 40  # re-encoded, not moved
        assert report.manifest.extra["rotated_images"] == 1


def test_names_stay_unique_and_non_ascii_survives(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_jpeg(src / "images" / "a" / "img001.jpg", (40, 30), (200, 0, 0))
    write_jpeg(src / "images" / "b" / "img001.jpg", (40, 30), (0, 200, 0))
    write_jpeg(src / "images" / "b" / "IMG001.png", (40, 30), (0, 0, 200))
    write_jpeg(src / "images" / "čaj 猫.jpg", (40, 30), (90, 90, 0))
    images = [{"id": i, "file_name": n} for i, n in enumerate(
        ["a/img001.jpg", "b/img001.jpg", "b/IMG001.png", "čaj 猫.jpg"], 1)]  # fmt: skip
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [i, i, 10, 10]} for i in range(1, 5)]
    with store.session() as s:
        import_source(s, "coco", write_coco(src / "annotations/instances_train.json", images,
                                            anns), "names")  # fmt: skip
    _export(store, "yolo", "names", tmp_path / "out")
    pictures = sorted(p.name for p in (tmp_path / "out/images/train").iterdir())
    labels = sorted(p.name for p in (tmp_path / "out/labels/train").iterdir())
    assert len(pictures) == 4 == len({p.casefold().rsplit(".", 1)[0] for p in pictures})
    assert "img001.jpg" in pictures and "čaj 猫.jpg" in pictures
    assert labels == sorted(p.rsplit(".", 1)[0] + ".txt" for p in pictures)
    first_x = {line.split()[1] for f in (tmp_path / "out/labels/train").iterdir()
               for line in f.read_text().splitlines()}  # fmt: skip
    assert len(first_x) == 4  # each image kept its own box


def test_yolo_crowd_left_out_and_data_yaml_without_val(store: Store, tmp_path: Path,
                                                       coco_source: Any) -> None:  # fmt: skip
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10]}]  # fmt: skip
    with store.session() as s:
        import_source(s, "coco", coco_source(anns), "crowd")
    report = _export(store, "yolo", "crowd", tmp_path / "out")
    assert (tmp_path / "out/labels/train/img0.txt").read_text().startswith("1 0.125000 ")
    assert len((tmp_path / "out/labels/train/img0.txt").read_text().splitlines()) == 1
    assert report.manifest.extra["crowd_left_out"] == 1
    assert any("crowd" in w for w in report.warnings)
    assert any("needs both a train and a val split" in w for w in report.warnings)
    assert yaml.safe_load((tmp_path / "out/data.yaml").read_text()) == {
        "train": "images/train", "names": {0: "cat", 1: "dog"}
    }  # fmt: skip


def test_nothing_to_export_without_splits(store: Store, coco_source: Any, tmp_path: Path) -> None:
    source = coco_source()
    renamed = source.with_name("labels.json")
    source.rename(renamed)
    with store.session() as s:
        import_source(s, "coco", renamed, "nosplit")
    with pytest.raises(InvalidInputError, match="run annotator split nosplit"):
        _export(store, "coco", "nosplit", tmp_path / "out")
    assert not (tmp_path / "out").exists()
