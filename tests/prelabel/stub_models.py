"""Stand-in models for the prelabelling tests, loaded as `tests.prelabel.stub_models:NAME` the
way a user's own `package.module:factory` model is: they return known boxes in the resized
frame they are given, so the tests can check where the boxes land in the displayed image."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

CATEGORIES = ["__background__", "cat", "dog", "unicorn", "bird"]
FRAME_SIDE = 100  # the frame's longer side
# (x0, y0, x1, y1) in frame pixels, category index, score
FIXED = [
    ((10.0, 20.0, 60.0, 70.0), 1, 0.9),  # cat, well inside
    ((90.0, 60.0, 120.0, 90.0), 2, 0.31),  # dog, past the frame's right edge, near the threshold
    ((0.0, 0.0, 10.0, 10.0), 2, 0.1),  # dog, below the threshold
    ((5.0, 5.0, 15.0, 15.0), 3, 0.8),  # unicorn: no dataset class
]


class FixedBoxes(nn.Module):
    """Returns FIXED for every image, and records the frame sizes it was given."""

    task = "detection"
    categories = CATEGORIES
    input_size = FRAME_SIDE

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[int, int]] = []

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        out = []
        for image in images:
            self.frames.append((image.shape[-1], image.shape[-2]))
            out.append({
                "boxes": torch.tensor([b for b, _, _ in FIXED]),
                "labels": torch.tensor([c for _, c, _ in FIXED]),
                "scores": torch.tensor([s for _, _, s in FIXED]),
            })  # fmt: skip
        return out


class RedMarker(nn.Module):
    """Finds the red pixels of each frame and returns their bounding box as a 'cat'."""

    task = "detection"
    categories = CATEGORIES
    input_size = FRAME_SIDE

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        out: list[dict[str, Any]] = []
        for image in images:
            r, g, b = image[0], image[1], image[2]
            ys, xs = torch.nonzero((r > 0.6) & (g < 0.4) & (b < 0.4), as_tuple=True)
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 1, 1]
            out.append({
                "boxes": torch.tensor([[float(v) for v in box]]),
                "labels": torch.tensor([1]),
                "scores": torch.tensor([0.95 if len(xs) else 0.0]),
            })  # fmt: skip
        return out


def fixed_boxes() -> nn.Module:
    return FixedBoxes()


def red_marker() -> nn.Module:
    return RedMarker()


def tiny_classifier() -> tuple[nn.Module, list[str]]:
    """A (module, categories) factory: a classifier that always prefers its second class."""
    head = nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 3.0, 1.0]))
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head), ["cat", "dog", "bird"]


def too_few_names() -> tuple[nn.Module, list[str]]:
    """A classifier with three outputs but only two class names."""
    module, _ = tiny_classifier()
    return module, ["cat", "dog"]


class NotDicts(nn.Module):
    """A 'detector' that returns bare tensors instead of dicts."""

    task = "detection"
    categories = CATEGORIES

    def forward(self, images: list[Tensor]) -> list[Tensor]:
        return [torch.zeros(4) for _ in images]


def not_dicts() -> nn.Module:
    return NotDicts()


class Slow(nn.Module):
    """Wraps a module and sleeps before each forward pass: a model whose batches take time."""

    def __init__(self, inner: nn.Module, seconds: float) -> None:
        super().__init__()
        self.inner, self.seconds = inner, seconds

    def forward(self, batch: Tensor) -> Tensor:
        import time

        time.sleep(self.seconds)
        out: Tensor = self.inner(batch)
        return out


def slow_classifier() -> tuple[nn.Module, list[str]]:
    """tiny_classifier, 0.25 s per batch (for the shared-run tests and benchmark)."""
    module, names = tiny_classifier()
    return Slow(module, 0.25), names
