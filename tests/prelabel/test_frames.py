"""The model's input frame: resizing rules, decoding with EXIF orientation, and boxes mapped
back to displayed pixels."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.annotation import Box
from annotator.prelabel.frames import (
    ClassifyInput,
    DetectInput,
    box_to_display,
    classify_batch,
    classify_pixels,
    detect_pixels,
    frame_size,
    load_rgb,
)
from tests.conftest import write_jpeg


@pytest.mark.parametrize(
    ("spec", "size", "frame"),
    [
        (DetectInput(800, 1333), (640, 480), (1066, 800)),  # shorter side to 800
        (DetectInput(800, 1333), (3000, 1000), (1333, 444)),  # longer side capped
        (DetectInput(100, 100), (400, 300), (100, 75)),
        (DetectInput(fixed=(320, 320)), (640, 480), (320, 320)),
    ],
)
def test_frame_size_follows_torchvision_detectors(
    spec: DetectInput, size: tuple[int, int], frame: tuple[int, int]
) -> None:
    assert frame_size(spec, *size) == frame


def test_boxes_scale_back_per_axis_and_clip_to_the_image() -> None:
    assert box_to_display((10, 20, 60, 70), (100, 75), (400, 300)) == Box(40, 80, 200, 200)
    # a stretched (fixed-size) frame scales x and y differently
    assert box_to_display((32, 32, 64, 64), (320, 320), (640, 480)) == Box(64, 48, 64, 48)
    assert box_to_display((90, 60, 120, 90), (100, 75), (400, 300)) == Box(360, 240, 40, 60)
    assert box_to_display((120, 10, 130, 20), (100, 75), (400, 300)) is None


def _marked(path: Path, orientation: int | None) -> Path:
    """A 400x300 (as displayed) white JPEG with a red block at x 240-320, y 60-120; with
    orientation 6 its pixels are stored turned a quarter left, as a camera would."""
    from PIL import Image

    img = Image.new("RGB", (400, 300), (255, 255, 255))
    img.paste((220, 0, 0), (240, 60, 320, 120))
    if orientation == 6:
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())
    else:
        img.save(path, quality=95)
    return path


@pytest.mark.parametrize("orientation", [None, 6])
def test_decoding_applies_exif_orientation(tmp_path: Path, orientation: int | None) -> None:
    img, display = load_rgb(_marked(tmp_path / "m.jpg", orientation))
    assert display == (400, 300) and img.size == (400, 300)
    red, _, blue = img.getpixel((280, 90))  # type: ignore[misc]
    assert red > 180 and blue < 60
    assert img.getpixel((100, 200)) == pytest.approx((255, 255, 255), abs=8)


def test_classification_pixels_are_the_centre_crop(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.new("RGB", (600, 300), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 300, 300))  # left half red, right half blue
    pixels = classify_pixels(img, ClassifyInput(resize=256, crop=224))
    assert tuple(pixels.shape) == (224, 224, 3)
    assert pixels[112, 5].tolist()[0] > 200  # left of centre: red
    assert pixels[112, 218].tolist()[2] > 200  # right of centre: blue


def test_classification_batch_is_normalised_nchw() -> None:
    import torch

    spec = ClassifyInput(crop=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    pixels = [
        torch.full((4, 4, 3), 255, dtype=torch.uint8),
        torch.zeros(4, 4, 3, dtype=torch.uint8),
    ]
    batch = classify_batch(pixels, spec, "cpu")
    assert tuple(batch.shape) == (2, 3, 4, 4)
    assert batch[0, :, 0, 0].tolist() == pytest.approx([2.0, 1.0, 0.5])
    assert batch[1, :, 0, 0].tolist() == pytest.approx([-2.0, -1.0, -0.5])


def test_detection_pixels_fill_the_frame(tmp_path: Path) -> None:
    path = write_jpeg(tmp_path / "r.jpg", (300, 400), orientation=6)
    img, display = load_rgb(path)
    pixels = detect_pixels(img, DetectInput(100, 100), display)
    assert display == (400, 300)
    assert tuple(pixels.shape) == (75, 100, 3)
