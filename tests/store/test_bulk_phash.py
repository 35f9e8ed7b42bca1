"""`add` computes each image's perceptual hash where the image is probed: in worker processes
when it adds many images, in threads when it adds a few; both store the hash the duplicate
finder computes from the file (EXIF orientation applied)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import select

from annotator.store import probing
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.dupes import phash_file
from annotator.store.images import add_images
from annotator.store.models import Image


def _images(folder: Path, n: int) -> None:
    """n distinct JPEGs with different pictures (so their hashes differ), some EXIF-rotated."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = PILImage.new("RGB", (96, 64), (20 * (i % 10), 90, 160))
        ImageDraw.Draw(img).rectangle((i % 40, i % 30, i % 40 + 30, i % 30 + 20), fill="white")
        exif = PILImage.Exif()
        exif[0x0112] = 6 if i % 7 == 0 else 1
        img.save(folder / f"img{i:03d}.jpg", quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("processes", [True, False])
def test_add_stores_the_phash_of_each_image(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: bool
) -> None:
    n = 12
    _images(tmp_path / "images", n)
    monkeypatch.setattr(probing, "PHASH_PROCESS_MIN", 1 if processes else 10**9)
    with store.session() as s:
        ds = create_dataset(s, "ds", "detection", ["a"])
        report = add_images(s, ds, [tmp_path / "images"], workers=2)
        assert report.added == n
        rows = s.execute(select(Image.path, Image.phash, Image.width)).all()
    assert len(rows) == n
    for path, phash, width in rows:
        expected = phash_file(str(tmp_path / "images" / path))
        assert expected is not None
        assert phash == expected, path
        assert width == (64 if path in {f"img{i:03d}.jpg" for i in range(0, n, 7)} else 96)
    assert len({phash for _, phash, _ in rows}) > n // 2  # the hashes tell pictures apart
