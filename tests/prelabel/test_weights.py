"""Weights files: safe loading, the shapes they must fit, and torch's cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from annotator.errors import InvalidInputError, NotFoundError
from annotator.prelabel.weights import (
    OFFLINE_ENV,
    cache_dir,
    download,
    find_cached,
    fit_state,
    hash_prefix,
    read_checkpoint,
)


class Pickled:
    """An arbitrary Python object: weights_only loading must refuse it."""

    def __init__(self) -> None:
        self.value = 1


def _state() -> dict[str, torch.Tensor]:
    return nn.Linear(3, 2).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": s, "optimizer": {"lr": 0.1}},
        lambda s: {f"module.{k}": v for k, v in s.items()},
    ],
)
def test_state_dicts_are_found_in_common_checkpoint_shapes(
    tmp_path: Path, wrap: Callable[[dict[str, torch.Tensor]], object]
) -> None:
    state = _state()
    torch.save(wrap(state), tmp_path / "w.pth")
    ckpt = read_checkpoint(tmp_path / "w.pth")
    assert set(ckpt.state) == {"weight", "bias"}
    assert torch.equal(ckpt.state["weight"], state["weight"])
    assert len(ckpt.sha256) == 64


def test_checkpoint_categories_are_kept(tmp_path: Path) -> None:
    torch.save({"state_dict": _state(), "categories": ["cat", "dog"]}, tmp_path / "w.pth")
    assert read_checkpoint(tmp_path / "w.pth").categories == ["cat", "dog"]


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not weights\n")
    torch.save({"object": Pickled()}, tmp_path / "pickled.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(
        InvalidInputError,
        match=r"notes.txt: not a PyTorch checkpoint \(not written by torch.save\)",
    ):
        read_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(InvalidInputError, match="refused: it holds pickled Python objects"):
        read_checkpoint(tmp_path / "pickled.pth")
    with pytest.raises(InvalidInputError, match="holds no state dict"):
        read_checkpoint(tmp_path / "nostate.pth")
    with pytest.raises(NotFoundError, match="no such file"):
        read_checkpoint(tmp_path / "absent.pth")


def test_shape_mismatches_are_refused_with_the_keys() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    state = nn.Sequential(nn.Linear(4, 2), nn.ReLU()).state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(InvalidInputError) as info:
        fit_state(model, state, Path("w.pth"), "tiny")
    message = str(info.value)
    assert message.startswith("w.pth: does not fit tiny: 1 tensors differ in shape ")
    assert "0.weight: file [2, 4], model [2, 3]" in message
    assert "2 model tensors are missing from the file (2.weight, 2.bias)" in message
    assert "1 file tensors are not in the model (extra.weight)" in message
    assert "\n" not in message


def test_a_fitting_state_is_loaded() -> None:
    model, state = nn.Linear(3, 2), _state()
    fit_state(model, state, Path("w.pth"), "tiny")
    assert torch.equal(model.weight, state["weight"])


def test_cache_lookup_and_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    url = "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth"
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert cache_dir() == folder
    assert find_cached([url]) is None
    with pytest.raises(NotFoundError) as info:
        download(url, "mobilenet_v2")
    assert str(info.value) == (
        f"no weights for mobilenet_v2: mobilenet_v2-7ebf99e0.pth is not in {folder} and cannot be "
        f"downloaded (${OFFLINE_ENV} is set); put the file {url} there as "
        f"{folder / 'mobilenet_v2-7ebf99e0.pth'}, or pass --weights FILE"
    )
    folder.mkdir(parents=True)
    (folder / "mobilenet_v2-7ebf99e0.pth").write_bytes(b"x")
    assert find_cached([url]) == (folder / "mobilenet_v2-7ebf99e0.pth", url)


def test_hash_prefix_of_published_names() -> None:
    assert hash_prefix("mobilenet_v2-b0353104.pth") == "b0353104"
    assert hash_prefix("my-weights.pth") is None
