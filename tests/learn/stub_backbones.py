"""Stand-in backbones for the learning tests, loaded as `tests.learn.stub_backbones:NAME` the way
a user's `package.module:factory` model is. Their pooled features are each image's mean
normalised colour (3 values), so a dataset of coloured images is easy to learn."""

from __future__ import annotations

import time

from torch import Tensor, nn

CATEGORIES = ["a", "b", "c"]


class Sleep(nn.Module):
    """Waits a while per batch: a slow model, so a test can kill the run in the middle."""

    def forward(self, x: Tensor) -> Tensor:
        time.sleep(0.4)
        return x


def colour() -> tuple[nn.Module, list[str]]:
    """Mean colour, then a linear head (which embed removes)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3)), CATEGORIES


def slow_colour() -> tuple[nn.Module, list[str]]:
    module = nn.Sequential(Sleep(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
    return module, CATEGORIES
