"""Placing image files in an export: copied, hard-linked or symlinked byte for byte, or not at
all (`none`: labels only). An image with an EXIF orientation tag is always written upright
(pixels rotated, tag dropped), because the labels describe the displayed image and most
trainers read raw pixels. Depends on Pillow only (imported when an image needs rotating)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from annotator.annotation import Sample
from annotator.errors import InvalidInputError

MEDIA_MODES = ("copy", "hardlink", "symlink", "none")


class MediaPlacer:
    """Puts each sample's file at its export path, in the chosen mode."""

    def __init__(self, mode: str) -> None:
        if mode not in MEDIA_MODES:
            raise InvalidInputError(f"unknown media mode {mode!r}: choose {', '.join(MEDIA_MODES)}")
        self.mode = mode
        self.rotated = 0
        self.copied_instead = 0

    def place(self, sample: Sample, target: str) -> None:
        if self.mode == "none":
            return
        source = Path(sample.path)
        if not source.is_file():
            raise InvalidInputError(
                f"image {sample.path} (id {sample.id}) is missing: restore it or remove it from "
                "the dataset; nothing was exported"
            )
        if sample.orientation != 1:
            write_upright(source, target)
            self.rotated += 1
        elif self.mode == "copy":
            shutil.copyfile(source, target)
        elif self.mode == "hardlink":
            self._link(source, target)
        else:
            os.symlink(os.path.abspath(source), target)

    def _link(self, source: Path, target: str) -> None:
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(source, target)  # another file system: a copy is the next best
            self.copied_instead += 1

    def warnings(self) -> list[str]:
        out = []
        if self.copied_instead:
            out.append(f"{self.copied_instead} images copied: hard links were not possible")
        return out


def write_upright(source: Path, target: str | Path) -> None:
    """Write `source` with its EXIF orientation applied to the pixels, in the same format,
    keeping the rest of its EXIF and its colour profile."""
    from PIL import Image, ImageOps

    with Image.open(source) as img:
        fmt = img.format
        icc = img.info.get("icc_profile")
        upright = ImageOps.exif_transpose(img)
        exif = upright.getexif()
        exif.pop(0x0112, None)
        params: dict[str, object] = {"exif": exif.tobytes()} if exif else {}
        if icc:
            params["icc_profile"] = icc
        if fmt == "JPEG":
            params.update(quality=95, subsampling=0)
        upright.save(target, format=fmt, **params)
