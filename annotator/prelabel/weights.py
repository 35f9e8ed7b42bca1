"""Weights files: reading a checkpoint safely (`torch.load(weights_only=True)`: tensors and plain
containers only, never arbitrary pickled objects), finding its state dict (a bare state dict or a
checkpoint dict under 'state_dict', 'model' or 'model_state_dict'), refusing one that does not fit
the architecture with the keys that differ, and finding torchvision's published weights in torch's
cache (`$TORCH_HOME/hub/checkpoints`), downloading them there when online. Offline, the error names
the exact file and folder. `$ANNOTATOR_OFFLINE=1` forbids downloading. torch is imported lazily."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from torch import Tensor, nn

OFFLINE_ENV = "ANNOTATOR_OFFLINE"
STATE_KEYS = ("state_dict", "model", "model_state_dict")
CATEGORY_KEYS = ("categories", "classes")
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt)$")
LISTED = 4  # how many mismatching keys an error names
DOWNLOAD_TIMEOUT_S = 30.0


@dataclass
class Checkpoint:
    """A weights file read from disk: its hash, its tensors by name, and its class names when
    the checkpoint carries them (`categories` or `classes`, index = output index)."""

    path: Path
    sha256: str
    state: dict[str, Tensor]
    categories: list[str] | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix torchvision puts in its weights' file names (`name-b0353104.pth`)."""
    match = HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def read_checkpoint(path: Path) -> Checkpoint:
    """Load `path` with weights_only=True; InvalidInputError when it is not a checkpoint."""
    if not path.is_file():
        raise NotFoundError(f"--weights {path}: no such file")
    obj = _torch_load(path)
    state, categories = _state_of(obj, path)
    return Checkpoint(path, sha256_file(path), state, categories)


def _torch_load(path: Path) -> Any:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            raise InvalidInputError(
                f"{path}: refused: it holds pickled Python objects ({found.group(1)}), not only "
                "tensors (weights are loaded with weights_only=True)"
            ) from exc
        raise InvalidInputError(f"{path}: not a PyTorch checkpoint ({_why(path, exc)})") from exc
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise InvalidInputError(f"{path}: not a PyTorch checkpoint ({_why(path, exc)})") from exc


def _why(path: Path, exc: BaseException) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        return "empty file"
    if head.startswith(b"PK"):
        return f"a zip archive torch cannot read: {first_line(exc)}"
    if head.startswith(b"\x80"):
        return f"an unreadable pickle: {first_line(exc)}"
    return "not written by torch.save"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else "") or type(exc).__name__


def _is_state(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _state_of(obj: Any, path: Path) -> tuple[dict[str, Tensor], list[str] | None]:
    state: Any = obj if _is_state(obj) else None
    if state is None and isinstance(obj, Mapping):
        state = next((obj[k] for k in STATE_KEYS if _is_state(obj.get(k))), None)
    if state is None:
        raise InvalidInputError(
            f"{path}: holds no state dict (expected tensors by name, or a checkpoint dict with "
            f"{', '.join(repr(k) for k in STATE_KEYS)})"
        )
    return _strip_prefix(dict(state), "module."), _categories_of(obj)


def _strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _categories_of(obj: Any) -> list[str] | None:
    if not isinstance(obj, Mapping):
        return None
    for key in CATEGORY_KEYS:
        value = obj.get(key)
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return list(value)
    return None


def fit_state(module: nn.Module, state: Mapping[str, Tensor], path: Path, arch: str) -> None:
    """Load `state` into `module`, refusing (with the keys) a file made for another shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {list(state[k].shape)}, model {list(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        _listed(f"{len(shapes)} tensors differ in shape", shapes),
        _listed(f"{len(missing)} model tensors are missing from the file", missing),
        _listed(f"{len(unexpected)} file tensors are not in the model", unexpected),
    ]
    found = [p for p in problems if p]
    if found:
        raise InvalidInputError(f"{path}: does not fit {arch}: {'; '.join(found)}")
    module.load_state_dict(dict(state), strict=True)


def _listed(what: str, keys: list[str]) -> str:
    if not keys:
        return ""
    more = f", … {len(keys) - LISTED} more" if len(keys) > LISTED else ""
    return f"{what} ({', '.join(keys[:LISTED])}{more})"


def cache_dir() -> Path:
    """Where torch keeps downloaded weights: `$TORCH_HOME/hub/checkpoints`."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def url_file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def find_cached(urls: list[str]) -> tuple[Path, str] | None:
    """The first of `urls` whose file is in torch's cache, with that url."""
    folder = cache_dir()
    for url in urls:
        candidate = folder / url_file_name(url)
        if candidate.is_file():
            return candidate, url
    return None


def check_published(path: Path, sha256: str) -> None:
    """A cached file whose hash does not match its name is corrupt (a cut download)."""
    prefix = hash_prefix(path.name)
    if prefix and not sha256.startswith(prefix):
        raise InvalidInputError(
            f"{path}: corrupt (its SHA-256 does not start with {prefix}); delete it and retry"
        )


def download(url: str, arch: str) -> Path:
    """Fetch torchvision's published weights into the cache; the offline error says what to
    put where."""
    import torch

    target = cache_dir() / url_file_name(url)
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        raise _offline(arch, url, target, f"${OFFLINE_ENV} is set")
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=None, progress=False)
    except Exception as exc:  # URLError, timeouts, HTTP errors, a full disk
        raise _offline(arch, url, target, first_line(exc)) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _offline(arch: str, url: str, target: Path, reason: str) -> NotFoundError:
    return NotFoundError(
        f"no weights for {arch}: {target.name} is not in {target.parent} and cannot be "
        f"downloaded ({reason}); put the file {url} there as {target}, or pass --weights FILE"
    )
