"""The streamed COCO reader (large files) gives what the whole-file reader gives: every COCO
and refused-label test runs again here with every file streamed in tiny batches (2 records
validated at a time, 3 images a spill file and an import batch), and the labels of an image
may come anywhere in the file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import annotator.formats.coco_stream as coco_stream
import annotator.store.bulk as bulk
from annotator.formats.importing import import_source
from annotator.store.db import Store
from tests.conftest import write_jpeg
from tests.formats.conftest import image_rows, store_labels, write_coco
from tests.formats.test_coco import *  # noqa: F403  (run again, streamed)
from tests.formats.test_coco import test_malformed_files_are_reported_with_their_position
from tests.formats.test_refused import *  # noqa: F403  (run again, streamed)

del test_malformed_files_are_reported_with_their_position  # line and column: whole-file only


@pytest.fixture(autouse=True)
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coco_stream, "STREAM_BYTES", 0)
    monkeypatch.setattr(coco_stream, "RECORDS", 2)
    monkeypatch.setattr(coco_stream, "BUCKET", 3)
    monkeypatch.setattr(bulk, "BATCH", 3)


def _source(root: Path, n: int, seed: int) -> Path:
    images, anns = [], []
    rng = random.Random(seed)
    for i in range(n):
        write_jpeg(root / "images" / f"img{i}.jpg", (40, 30), (i * 20 % 255, 90, 10))
        images.append({"id": 100 + i, "file_name": f"img{i}.jpg", "width": 40, "height": 30})
        anns += [{"id": len(anns) + b + 1, "image_id": 100 + i, "category_id": 1 + b % 2,
                  "bbox": [b, b + 0.5, 10, 5 + i / 7]} for b in range(i % 4)]  # fmt: skip
    rng.shuffle(anns)  # an image's annotations anywhere in the file
    return write_coco(root / "annotations" / "instances_train.json", images, anns)


def _import(store: Store, source: Path, name: str) -> Any:
    with store.session() as s:
        return import_source(s, "coco", source, name)


def test_shuffled_annotations_give_what_the_whole_file_reader_gives(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path / "src", 11, seed=3)
    streamed = _import(store, source, "streamed")
    monkeypatch.setattr(coco_stream, "STREAM_BYTES", 1 << 40)
    whole = _import(store, source, "whole")
    assert (streamed.images, streamed.labels, streamed.negatives) == (11, 15, 3)
    assert (whole.images, whole.labels, whole.negatives) == (11, 15, 3)
    assert store_labels(store, "streamed") == store_labels(store, "whole")


def test_a_malformed_file_is_refused_whole_with_the_text_around_the_error(
    store: Store, coco_source: Callable[..., Path]
) -> None:
    path = coco_source()
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2] + b",," + text[len(text) // 2 :])
    report = _import(store, path, "ds")
    [problem] = report.problems
    assert problem.file == str(path) and problem.reason.startswith("malformed JSON: ")
    assert "near" in problem.reason and report.images == 0


def test_the_spill_is_removed_after_the_import(
    store: Store, coco_source: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folders: list[str] = []
    real = coco_stream.Spill.__init__

    def spy(self: coco_stream.Spill, *args: Any, **kw: Any) -> None:
        real(self, *args, **kw)
        folders.append(self.folder)

    monkeypatch.setattr(coco_stream.Spill, "__init__", spy)
    report = _import(store, coco_source(), "ds")
    assert report.labels == 2 and len(folders) == 1
    assert not Path(folders[0]).exists()


def _categories_first(path: Path) -> None:
    """Rewrite a COCO file with its categories before its images (as our exports write it)."""
    data = orjson.loads(path.read_bytes())
    order = ["info", "categories", "images", "annotations"]
    path.write_bytes(orjson.dumps({k: data[k] for k in order}, option=orjson.OPT_INDENT_2))


def test_categories_before_the_images_give_the_same_import(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path / "src", 9, seed=5)
    last = _import(store, source, "last")
    assert coco_stream._leading_categories(source) is None  # after the images: a full pass
    _categories_first(source)
    assert (
        coco_stream._leading_categories(source) == orjson.loads(source.read_bytes())["categories"]
    )  # read from the start of the file only
    first = _import(store, source, "first")
    assert (first.images, first.labels) == (last.images, last.labels) == (9, 12)
    assert store_labels(store, "first") == store_labels(store, "last")


def test_a_malformed_file_after_its_categories_is_refused_whole(
    store: Store, tmp_path: Path
) -> None:
    source = _source(tmp_path / "src", 6, seed=1)
    _categories_first(source)
    text = source.read_bytes()
    source.write_bytes(text[:-40] + b"}}" + text[-40:])  # past the categories and images
    assert coco_stream._leading_categories(source) is not None
    report = _import(store, source, "ds")
    [problem] = report.problems
    assert problem.reason.startswith("malformed JSON: ") and report.images == 0
    assert "nothing imported" in report.summary()


def test_refused_labels_flag_only_their_own_images(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images share one empty list until their labels arrive: a refusal on one never shows on
    another, streamed or whole."""
    source = _source(tmp_path / "src", 10, seed=5)
    data = orjson.loads(source.read_bytes())
    data["annotations"] += [
        {"id": 900, "image_id": 101, "category_id": 1, "bbox": [1, 1, 0, 5]},  # invalid
        {"id": 901, "image_id": 104, "category_id": 1, "bbox": [35, 25, 30, 30]},  # outside
        {"id": 902, "image_id": 108, "category_id": 9, "bbox": [1, 1, 5, 5]},  # unknown class
    ]
    write_coco(source, data["images"], data["annotations"], data["categories"])
    reports = [_import(store, source, "streamed")]
    monkeypatch.setattr(coco_stream, "STREAM_BYTES", 1 << 40)
    reports.append(_import(store, source, "whole"))
    for report, name in zip(reports, ("streamed", "whole"), strict=True):
        assert report.flagged == 3 and len(report.problems) == 3
        flags = {path: row.flag for path, row in image_rows(store, name).items() if row.flag}
        assert sorted(flags) == ["img1.jpg", "img4.jpg", "img8.jpg"]
        assert "annotation id 900" in flags["img1.jpg"] and "901" not in flags["img1.jpg"]
        assert "annotation id 901" in flags["img4.jpg"] and "902" not in flags["img4.jpg"]
    assert store_labels(store, "streamed") == store_labels(store, "whole")
    assert bulk.SHARED_EMPTY == []
