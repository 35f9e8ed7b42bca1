"""The model's input frame: how an image file becomes a model input (decode, EXIF orientation
applied, resize, crop, normalise) and how a box in the resized frame maps back to pixels of the
displayed image. Plain, picklable specs so DataLoader workers can run the decoding. torch is
imported inside the functions that build tensors; the geometry is pure Python."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.annotation import Box

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class ClassifyInput:
    """Resize the shorter side to `resize`, centre-crop `crop` x `crop`, normalise."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"


@dataclass(frozen=True, slots=True)
class DetectInput:
    """Scale so the shorter side is `min_size` unless the longer would pass `max_size` (the rule
    of torchvision's detectors), or stretch to `fixed` = (width, height). Values stay in [0, 1];
    detectors normalise themselves."""

    min_size: int = 800
    max_size: int = 1333
    fixed: tuple[int, int] | None = None


InputSpec = ClassifyInput | DetectInput


def frame_size(spec: DetectInput, width: int, height: int) -> tuple[int, int]:
    """The (width, height) of the frame a width x height image is resized to."""
    if spec.fixed is not None:
        return spec.fixed
    scale = min(spec.min_size / min(width, height), spec.max_size / max(width, height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def box_to_display(
    xyxy: tuple[float, float, float, float], frame: tuple[int, int], display: tuple[int, int]
) -> Box | None:
    """A box (x0, y0, x1, y1) in frame pixels as a Box in displayed pixels, clipped to the
    image; None when nothing of it is left."""
    sx, sy = display[0] / frame[0], display[1] / frame[1]
    x0, y0, x1, y1 = xyxy
    box = Box(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy).clipped(*display)
    return box if box.w > 0 and box.h > 0 else None


def load_rgb(path: Path, min_side: int | None = None) -> tuple[PILImage, tuple[int, int]]:
    """The image as displayed (EXIF orientation applied), RGB, and its displayed size read from
    the header. With `min_side`, a JPEG is decoded at the smallest DCT scale that keeps its
    shorter side at least that long (much faster; the resize that follows needs no more)."""
    from PIL import Image, ImageOps

    img = Image.open(path)
    width, height = img.size
    orientation = _orientation(img)
    if min_side is not None and img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    upright = ImageOps.exif_transpose(img) if orientation != 1 else img
    upright = upright.convert("RGB") if upright.mode != "RGB" else upright
    turned = orientation in SWAPPING_ORIENTATIONS
    return upright, ((height, width) if turned else (width, height))


def _orientation(img: PILImage) -> int:
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block: Pillow's exif_transpose leaves the image as it is
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _resample(name: str) -> int:
    from PIL import Image

    value: int = getattr(Image.Resampling, name.upper(), Image.Resampling.BILINEAR)
    return value


def classify_pixels(img: PILImage, spec: ClassifyInput) -> Tensor:
    """The centre `crop` x `crop` square of `img` resized so its shorter side is `resize`, as an
    H x W x 3 uint8 tensor (one resampling of just the cropped region)."""
    w, h = img.size
    scale = spec.resize / min(w, h)
    rw, rh = max(spec.crop, round(w * scale)), max(spec.crop, round(h * scale))
    left, top = (rw - spec.crop) // 2, (rh - spec.crop) // 2
    box = (left * w / rw, top * h / rh, (left + spec.crop) * w / rw, (top + spec.crop) * h / rh)
    img = img.resize((spec.crop, spec.crop), _resample(spec.interpolation), box=box)
    return _pixels(img)


def detect_pixels(img: PILImage, spec: DetectInput, display: tuple[int, int]) -> Tensor:
    """`img` (shown at `display` = (width, height)) resized to its frame (see `frame_size`), as
    an H x W x 3 uint8 tensor."""
    size = frame_size(spec, *display)
    if size != img.size:
        img = img.resize(size, _resample("bilinear"))
    return _pixels(img)


def _pixels(img: PILImage) -> Tensor:
    import numpy as np
    import torch

    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True))


def classify_batch(pixels: list[Tensor], spec: ClassifyInput, device: str) -> Tensor:
    """N x 3 x crop x crop float input: the uint8 images stacked, moved, scaled to [0, 1] and
    normalised with the model's mean and std in one pass."""
    import torch

    batch = _to_device(torch.stack(pixels), device).permute(0, 3, 1, 2).float()
    std = torch.tensor(spec.std, device=batch.device).view(1, -1, 1, 1)
    mean = torch.tensor(spec.mean, device=batch.device).view(1, -1, 1, 1)
    return batch.mul_(1.0 / (255.0 * std)).sub_(mean / std).contiguous()


def detect_inputs(pixels: list[Tensor], device: str) -> list[Tensor]:
    """3 x H x W float images in [0, 1], one per uint8 frame (sizes differ)."""
    return [_to_device(p, device).permute(2, 0, 1).float().div_(255.0).contiguous() for p in pixels]


def _to_device(tensor: Tensor, device: str) -> Tensor:
    """Pinned and copied asynchronously to a GPU; as it is on the CPU."""
    if device == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def decode_min_side(spec: InputSpec, width: int, height: int) -> int:
    """How long the decoded image's shorter side must be for `spec` (the JPEG draft size)."""
    if isinstance(spec, ClassifyInput):
        return spec.resize
    fw, fh = frame_size(spec, width, height)
    scale = max(fw / width, fh / height)
    return max(1, math.ceil(min(width, height) * scale))
