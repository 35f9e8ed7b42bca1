"""`manifest.json`: the label files' SHA-256 spooled as they are written (`FileList`) come out
byte for byte as if the whole list had been in the manifest."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from annotator.formats.manifest import FileList, Manifest, SplitCounts, write_manifest

FILES = {
    "data.yaml": "a" * 64,
    'labels/train/quote"d.txt': "b" * 64,
    "labels/val/éte\\x.txt": "c" * 64,
    "labels/val/plain.txt": "d" * 64,
}


def _manifest(files: dict[str, str]) -> Manifest:
    return Manifest(
        version="1", format="yolo", dataset='files": {}', task="detection", classes=["a"],
        history_position=3, include_pending=False, media="copy", created_at="now",
        splits={"train": SplitCounts(images=1)}, files=files, extra={"files": {}},
    )  # fmt: skip


@pytest.mark.parametrize("own", [0, 1, 2, 4])
def test_spooled_files_make_the_same_manifest(tmp_path: Path, own: int) -> None:
    whole = write_manifest(tmp_path, _manifest(FILES)).read_bytes()
    items = list(FILES.items())
    listed = FileList(tmp_path)
    for relative, digest in items[own:]:
        listed.add(relative, digest)
    written = write_manifest(tmp_path, _manifest(dict(items[:own])), listed).read_bytes()
    assert written == whole
    assert orjson.loads(written)["files"] == FILES
    assert not listed.path.exists()  # the spool is gone from the export


def test_no_files(tmp_path: Path) -> None:
    whole = write_manifest(tmp_path, _manifest({})).read_bytes()
    listed = FileList(tmp_path)
    assert write_manifest(tmp_path, _manifest({}), listed).read_bytes() == whole
    assert b'"files": {}' in whole and not listed.path.exists()


def test_discard_removes_the_spool(tmp_path: Path) -> None:
    listed = FileList(tmp_path)
    listed.add("labels/a.txt", "e" * 64)
    assert listed.path.exists()
    listed.discard()
    assert list(tmp_path.iterdir()) == []
