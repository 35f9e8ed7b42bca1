"""Box crops as vectors: for each box, a square region around it (the box's longer side plus a
context margin on every side, clipped to the image) cut from the image as displayed (EXIF
orientation applied, full resolution), resized to the backbone's input square in one resampling,
and passed through the same backbone `embed` uses (pooled features). Images are decoded in the
DataLoader workers `prelabel` and `embed` use, one image with all its crops per item; boxes
narrower or lower than MIN_SIDE pixels are left out and counted. Nothing is stored: the vectors
live for one `train` run. torch is imported inside functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.annotation import Box
from annotator.learn.embed import Backbone
from annotator.prelabel.frames import ClassifyInput, classify_batch, load_rgb
from annotator.prelabel.pipeline import Decoded, ImageFiles, make_loader
from annotator.store.box_training import BoxRow, ImageFile
from annotator.store.imagefile import BadImage
from annotator.store.types import ProgressFn

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage
    from torch import Tensor

MARGIN = 0.1  # context on each side, as a share of the box's longer side
MIN_SIDE = 4.0  # boxes with a side shorter than this (displayed pixels) are not cropped


def too_small(box: Box) -> bool:
    return box.w < MIN_SIDE or box.h < MIN_SIDE


def crop_region(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the square centred on the box, its side the box's longer side plus
    MARGIN of it on each side, clipped to the width x height image."""
    side = max(box.w, box.h) * (1.0 + 2.0 * MARGIN)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = max(0.0, cx - side / 2.0), max(0.0, cy - side / 2.0)
    return x0, y0, min(float(width), cx + side / 2.0), min(float(height), cy + side / 2.0)


def crop_pixels(img: PILImage, box: Box, spec: ClassifyInput) -> Tensor:
    """The crop of `box` as a crop x crop x 3 uint8 tensor (the backbone's input square)."""
    import numpy as np
    import torch
    from PIL import Image

    resample = getattr(Image.Resampling, spec.interpolation.upper(), Image.Resampling.BILINEAR)
    region = crop_region(box, *img.size)
    square = img.resize((spec.crop, spec.crop), resample, box=region)
    return torch.from_numpy(np.array(square, dtype=np.uint8, copy=True))


class CropFiles(ImageFiles):
    """The DataLoader's dataset: item k is image k decoded, its tensor the list of its crops."""

    def __init__(
        self, items: list[tuple[int, str, int, int]], spec: ClassifyInput, boxes: list[list[Box]]
    ) -> None:
        super().__init__(items, spec)
        self.crop_spec = spec
        self.boxes = boxes

    def __getitem__(self, index: int) -> Decoded:
        image_id, path, width, height = self.items[index]
        try:
            img, display = load_rgb(Path(path))
        except FileNotFoundError:
            return Decoded(image_id, path, (width, height), reason="missing (moved or deleted)")
        except Exception as exc:  # Pillow raises many types for a broken file
            why = str(exc).strip() or type(exc).__name__
            return Decoded(image_id, path, (width, height), reason=f"corrupt image ({why})")
        if display != (width, height):
            return Decoded(image_id, path, (width, height), reason=f"changed since it was added: "
                           f"{display[0]}x{display[1]}, stored as {width}x{height}")  # fmt: skip
        crops = [crop_pixels(img, box, self.crop_spec) for box in self.boxes[index]]
        return Decoded(image_id, path, (width, height), crops)


@dataclass
class CropVectors:
    """One vector per cropped box (`keys` are their annotation ids, in the matrix's row order),
    the boxes left out as too small, and the images that could not be read."""

    keys: list[int]
    matrix: np.ndarray
    small: list[int] = field(default_factory=list)
    bad: list[BadImage] = field(default_factory=list)

    def rows(self) -> dict[int, int]:
        return {key: k for k, key in enumerate(self.keys)}


@dataclass(frozen=True)
class CropRun:
    """How to run the backbone over the crops."""

    device: str = "cpu"
    batch_size: int = 64
    workers: int = 0


def crop_vectors(
    backbone: Backbone, boxes: Sequence[BoxRow], files: dict[int, ImageFile], how: CropRun,
    progress: ProgressFn | None = None,
) -> CropVectors:  # fmt: skip
    """Vectors of `boxes` (each once, by annotation id), images read in the loader's workers;
    `progress(done, total)` counts boxes."""
    import numpy as np
    import torch

    small = [b.ann_id for b in boxes if too_small(b.box)]
    by_image: dict[int, list[BoxRow]] = {}
    for row in boxes:
        if not too_small(row.box) and row.image_id in files:
            by_image.setdefault(row.image_id, []).append(row)
    ids = sorted(by_image)
    items = [(i, files[i].path, files[i].width, files[i].height) for i in ids]
    files_crops = CropFiles(items, backbone.spec, [[b.box for b in by_image[i]] for i in ids])
    loader = make_loader(files_crops, how.batch_size, how.workers)
    total = sum(len(v) for v in by_image.values())
    found = CropVectors([], np.zeros((0, 0), dtype=np.float32), small)
    parts: list[np.ndarray] = []
    backbone.module.to(how.device)
    done = 0
    if progress:
        progress(0, total)
    with torch.inference_mode():
        for batch in loader:
            done += _one_batch(backbone, batch, by_image, how, found, parts)
            if progress:
                progress(done, total)
    if parts:
        found.matrix = np.concatenate(parts)
    return found


def _one_batch(
    backbone: Backbone, batch: list[Decoded], by_image: dict[int, list[BoxRow]], how: CropRun,
    found: CropVectors, parts: list[np.ndarray],
) -> int:  # fmt: skip
    """Vectors of one batch of images' crops, appended to `found`; returns the boxes done."""
    crops: list[Tensor] = []
    done = 0
    for decoded in batch:
        done += len(by_image[decoded.image_id])
        if decoded.tensor is None:
            found.bad.append(BadImage(decoded.path, decoded.reason or "unreadable"))
            continue
        crops.extend(decoded.tensor)
        found.keys.extend(row.ann_id for row in by_image[decoded.image_id])
    for start in range(0, len(crops), how.batch_size):
        chunk = crops[start : start + how.batch_size]
        parts.append(backbone.embed(classify_batch(chunk, backbone.spec, how.device)))
    return done
