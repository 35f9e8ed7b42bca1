"""Resolving --model: torchvision's registry (with --weights or torch's cache), TorchScript
files and package.module:factory models, and the errors for what cannot be resolved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from annotator.errors import InvalidInputError, NotFoundError
from annotator.prelabel.frames import ClassifyInput, DetectInput
from annotator.prelabel.registry import load_model
from annotator.prelabel.weights import OFFLINE_ENV


def test_torchvision_weights_file_is_recognised_by_its_hash(mobilenet_weights: Path) -> None:
    model = load_model("mobilenet_v2", mobilenet_weights)
    assert model.task == "classification"
    assert model.weights_sha256 is not None and model.weights_sha256.startswith("b0353104")
    assert len(model.categories) == 1000 and model.categories[285] == "Egyptian cat"
    # the file is IMAGENET1K_V1, whose preprocessing resizes to 256 (the default V2 uses 232)
    assert model.spec == ClassifyInput(resize=256, crop=224)
    assert not model.module.training


def test_default_weights_come_from_torch_home(
    mobilenet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(NotFoundError, match=r"mobilenet_v2-7ebf99e0\.pth is not in .*checkpoints"):
        load_model("mobilenet_v2")
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(mobilenet_weights, cache / mobilenet_weights.name)
    model = load_model("mobilenet_v2")
    assert model.weights_sha256 is not None and model.weights_sha256.startswith("b0353104")
    assert "MobileNet_V2_Weights.IMAGENET1K_V1" in model.weights_source


def test_a_corrupt_cached_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(nn.Linear(1, 1).state_dict(), cache / "mobilenet_v2-b0353104.pth")
    with pytest.raises(InvalidInputError, match=r"mobilenet_v2-b0353104\.pth: corrupt"):
        load_model("mobilenet_v2")


def test_detectors_come_with_their_frame(detector_weights: Path) -> None:
    model = load_model("fasterrcnn_mobilenet_v3_large_320_fpn", detector_weights)
    assert model.task == "detection"
    assert model.categories[1] == "person" and model.categories[0] == "__background__"
    assert model.spec == DetectInput(min_size=320, max_size=640)


def test_a_checkpoint_for_another_architecture_is_refused(tmp_path: Path) -> None:
    from torchvision.models import get_model

    torch.save(get_model("squeezenet1_1", weights=None).state_dict(), tmp_path / "sq.pth")
    with pytest.raises(InvalidInputError) as info:
        load_model("mobilenet_v2", tmp_path / "sq.pth")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'sq.pth'}: does not fit mobilenet_v2: ")
    assert "model tensors are missing from the file (features.0.0.weight" in message
    assert "file tensors are not in the model (features.0.weight" in message


def test_checkpoint_categories_resize_the_head(tmp_path: Path) -> None:
    from torchvision.models import get_model

    state = get_model("mobilenet_v3_small", weights=None, num_classes=2).state_dict()
    torch.save({"model": state, "categories": ["cat", "dog"]}, tmp_path / "tuned.pth")
    model = load_model("mobilenet_v3_small", tmp_path / "tuned.pth")
    assert model.categories == ["cat", "dog"]


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("mobilenet_v9", "unknown model 'mobilenet_v9': not a torchvision classification or "
                         "detection model, a TorchScript file, or package.module:factory "
                         "(did you mean mobilenet_v2"),
        ("deeplabv3_resnet50", "--model deeplabv3_resnet50: a torchvision segmentation model"),
        ("tests.prelabel.nope:factory", "--model tests.prelabel.nope:factory: cannot load it"),
        ("tests.prelabel.stub_models:nope", "cannot load it"),
    ],
)  # fmt: skip
def test_unresolvable_models_are_refused(arch: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        load_model(arch)
    assert message in str(info.value)


def test_factory_models_carry_their_description() -> None:
    boxes = load_model("tests.prelabel.stub_models:fixed_boxes")
    assert boxes.task == "detection" and boxes.categories[1] == "cat"
    assert boxes.spec == DetectInput(min_size=100, max_size=100)
    assert boxes.weights_sha256 is None
    tiny = load_model("tests.prelabel.stub_models:tiny_classifier")
    assert tiny.task == "classification" and tiny.categories == ["cat", "dog", "bird"]
    assert tiny.spec == ClassifyInput(resize=256, crop=224)


def _tiny_scripted() -> torch.jit.ScriptModule:
    module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    return torch.jit.script(module)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_files_with_embedded_or_sidecar_metadata(tmp_path: Path) -> None:
    meta = {"task": "classification", "categories": ["cat", "dog"], "input_size": 64}
    embedded = tmp_path / "embedded.pt"
    torch.jit.save(
        _tiny_scripted(), str(embedded), _extra_files={"annotator.json": json.dumps(meta)}
    )
    model = load_model(str(embedded))
    assert model.categories == ["cat", "dog"]
    assert isinstance(model.spec, ClassifyInput) and model.spec.crop == 64
    assert model.weights_sha256 is not None and model.name.endswith("embedded.pt")
    beside = tmp_path / "beside.pt"
    torch.jit.save(_tiny_scripted(), str(beside))
    with pytest.raises(InvalidInputError, match=r"beside\.pt: no class names"):
        load_model(str(beside))
    (tmp_path / "beside.pt.json").write_text(json.dumps({"categories": ["a", "b"]}))
    assert load_model(str(beside)).categories == ["a", "b"]


def test_a_state_dict_is_not_a_torchscript_model(tmp_path: Path) -> None:
    torch.save(nn.Linear(1, 1).state_dict(), tmp_path / "sd.pth")
    with pytest.raises(InvalidInputError, match=r"sd.pth: not a TorchScript model .* --weights"):
        load_model(str(tmp_path / "sd.pth"))
