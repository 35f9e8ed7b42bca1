"""Resolving `--model ARCH` into a ready model: a classification or detection architecture of
torchvision's model registry (with `--weights FILE` or torchvision's published weights from
torch's cache), a TorchScript file, or `package.module:factory` for a user's own model. The
result carries the model, its category names, its input frame and the weights' hash.

A factory returns an `nn.Module`, or a `(module, categories)` tuple; the module may carry
`categories`, `task` ('classification' or 'detection'), `input_size` (classification: the crop
side; detection: the frame's longer side), `resize_size`, `min_size`, `max_size`, `fixed_size`,
`mean` and `std`. A TorchScript file carries the same keys as JSON in its extra file
`annotator.json`, or in `FILE.json` beside it. Classifiers return logits; detectors return one
dict per image with `boxes` (x0, y0, x1, y1 in the input frame), `labels` and `scores`, like
torchvision's. The factory's module is imported as Python finds it, the current folder
included. torch and torchvision are imported lazily."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from annotator.errors import InvalidInputError
from annotator.prelabel import weights as wts
from annotator.prelabel.frames import IMAGENET_MEAN, IMAGENET_STD, ClassifyInput, DetectInput

if TYPE_CHECKING:
    from torch import nn

Task = Literal["classification", "detection"]
TASKS: tuple[Task, ...] = ("classification", "detection")
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
META_FILE = "annotator.json"
OTHER_FAMILIES = ("segmentation", "video", "optical_flow", "quantization")


@dataclass
class LoadedModel:
    """A model ready to run (in eval mode, on the CPU until the pipeline moves it)."""

    name: str
    task: Task
    module: nn.Module
    categories: list[str]
    spec: ClassifyInput | DetectInput
    weights_sha256: str | None
    weights_source: str


def load_model(arch: str, weights: Path | None = None) -> LoadedModel:
    """Resolve ARCH: a TorchScript file, `package.module:factory`, or a torchvision name."""
    path = Path(arch).expanduser()
    if path.is_file():
        model = _torchscript(path, weights)
    elif FACTORY.match(arch):
        model = _factory(arch, weights)
    else:
        model = _torchvision(arch, weights)
    model.module.eval()
    return model


# -- torchvision ------------------------------------------------------------------------------


def torchvision_task(arch: str) -> Task:
    """Whether `arch` is a torchvision classifier or detector; refused otherwise."""
    from torchvision import models

    if arch in models.list_models(module=models):
        return "classification"
    if arch in models.list_models(module=models.detection):
        return "detection"
    for family in OTHER_FAMILIES:
        if arch in models.list_models(module=getattr(models, family)):
            raise InvalidInputError(
                f"--model {arch}: a torchvision {family} model; prelabel runs classification "
                "and detection models"
            )
    raise InvalidInputError(
        f"unknown model {arch!r}: not a torchvision classification or detection model, a "
        f"TorchScript file, or package.module:factory{_close_model(arch)}"
    )


def _close_model(arch: str) -> str:
    import difflib

    from torchvision import models

    names = models.list_models(module=models) + models.list_models(module=models.detection)
    close = difflib.get_close_matches(arch, names, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _torchvision(arch: str, weights: Path | None) -> LoadedModel:
    from torchvision import models

    task = torchvision_task(arch)
    enum = models.get_model_weights(arch)
    if weights is not None:
        ckpt = wts.read_checkpoint(weights)
        published = _published(enum, ckpt.sha256)
        source = f"file {weights}"
    else:
        path, published = _cached_default(arch, enum)
        ckpt = wts.read_checkpoint(path)
        wts.check_published(path, ckpt.sha256)
        source = f"torchvision {published} ({path})"
    described = published or enum.DEFAULT
    categories = ckpt.categories or list(described.meta["categories"])
    module = _build(arch, task, len(categories) if ckpt.categories else None)
    wts.fit_state(module, ckpt.state, ckpt.path, arch)
    spec = _classify_spec(described) if task == "classification" else _detect_spec(module)
    return LoadedModel(arch, task, module, categories, spec, ckpt.sha256, source)


def _published(enum: Any, sha256: str) -> Any:
    """The torchvision weights entry whose published file this is (its name holds the hash)."""
    for entry in enum:
        prefix = wts.hash_prefix(wts.url_file_name(entry.url))
        if prefix and sha256.startswith(prefix):
            return entry
    return None


def _cached_default(arch: str, enum: Any) -> tuple[Path, Any]:
    """torchvision's default weights from the cache, else any of its other published weights
    there, else downloaded (an offline error names the file and folder)."""
    entries = [enum.DEFAULT, *(e for e in enum if e != enum.DEFAULT)]
    found = wts.find_cached([e.url for e in entries])
    if found is not None:
        path, url = found
        return path, next(e for e in entries if e.url == url)
    return wts.download(enum.DEFAULT.url, arch), enum.DEFAULT


def _build(arch: str, task: Task, num_classes: int | None) -> nn.Module:
    from torchvision import models

    kwargs: dict[str, Any] = {"weights": None}
    if task == "detection":
        kwargs["weights_backbone"] = None
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    module: nn.Module = models.get_model(arch, **kwargs)
    return module


def _classify_spec(entry: Any) -> ClassifyInput:
    t = entry.transforms()
    interpolation = getattr(t, "interpolation", None)
    return ClassifyInput(
        resize=int(t.resize_size[0]),
        crop=int(t.crop_size[0]),
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
        interpolation=str(getattr(interpolation, "value", "bilinear")),
    )


def _detect_spec(module: Any) -> DetectInput:
    transform = module.transform
    fixed = getattr(transform, "fixed_size", None)
    return DetectInput(
        min_size=int(transform.min_size[-1]),
        max_size=int(transform.max_size),
        fixed=(int(fixed[0]), int(fixed[1])) if fixed else None,
    )


# -- user models ------------------------------------------------------------------------------


def _factory(target: str, weights: Path | None) -> LoadedModel:
    module_name, attr = target.split(":")
    if os.getcwd() not in sys.path:  # a module in the current folder, as `python -m` finds it
        sys.path.append(os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"--model {target}: cannot load it ({exc})") from exc
    made = _call_factory(target, factory)
    module, categories = made if isinstance(made, tuple) else (made, None)
    meta = {k: getattr(module, k) for k in META_KEYS if hasattr(module, k)}
    if categories is not None:
        meta["categories"] = categories
    return _user_model(target, module, meta, weights, None, f"factory {target}")


def _call_factory(target: str, factory: Any) -> Any:
    """The factory's model; a target that is no model factory (a built-in such as `os:system`,
    a constant, one that fails or returns no `nn.Module`) is refused in one line."""
    from torch import nn

    if not callable(factory) or inspect.isbuiltin(factory) or isinstance(factory, type(os)):
        raise InvalidInputError(
            f"--model {target}: not a model factory (a Python function or class of yours that "
            "returns an nn.Module)"
        )
    try:
        made = factory()
    except Exception as exc:
        raise InvalidInputError(
            f"--model {target}: the factory failed ({wts.first_line(exc)})"
        ) from exc
    module = made[0] if isinstance(made, tuple) and made else made
    if not isinstance(module, nn.Module):
        raise InvalidInputError(
            f"--model {target}: the factory returned {type(module).__name__}, not an nn.Module"
        )
    return made


META_KEYS = ("categories", "task", "input_size", "resize_size", "min_size", "max_size",
             "fixed_size", "mean", "std")  # fmt: skip


def _torchscript(path: Path, weights: Path | None) -> LoadedModel:
    import torch

    extra = {META_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, not gone
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise InvalidInputError(
            f"{path}: not a TorchScript model ({wts.first_line(exc)}); for a state dict use "
            f"--model ARCH --weights {path}"
        ) from exc
    meta = _script_meta(path, extra[META_FILE])
    sha = wts.sha256_file(path)
    return _user_model(str(path.resolve())[-200:], module, meta, weights, sha, f"file {path}")


def _script_meta(path: Path, embedded: str | bytes) -> dict[str, Any]:
    sidecar = path.with_name(path.name + ".json")
    text = embedded.decode() if isinstance(embedded, bytes) else embedded
    if not text and sidecar.is_file():
        text = sidecar.read_text("utf-8")
    if not text:
        raise InvalidInputError(
            f"{path}: no class names: embed {META_FILE} (torch.jit.save(..., _extra_files=...)) "
            f'or write {sidecar} holding {{"task": "classification", "categories": [...]}}'
        )
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: {META_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{path}: {META_FILE} must hold a JSON object")
    return meta


def _user_model(
    name: str, module: Any, meta: Mapping[str, Any], weights: Path | None, sha: str | None,
    source: str,
) -> LoadedModel:  # fmt: skip
    task, categories = _task_and_categories(name, meta)
    if weights is not None:
        ckpt = wts.read_checkpoint(weights)
        wts.fit_state(module, ckpt.state, ckpt.path, name)
        sha, source = ckpt.sha256, f"file {weights}"
    if task == "classification":
        return LoadedModel(name, task, module, categories, _user_classify_spec(meta), sha, source)
    spec = _user_detect_spec(module, meta)
    return LoadedModel(name, task, module, categories, spec, sha, source)


def _task_and_categories(name: str, meta: Mapping[str, Any]) -> tuple[Task, list[str]]:
    task = meta.get("task", "classification")
    if task not in TASKS:
        raise InvalidInputError(f"{name}: task {task!r} is not one of {', '.join(TASKS)}")
    categories = meta.get("categories")
    if not categories or not all(isinstance(c, str) for c in categories):
        raise InvalidInputError(f"{name}: no class names (a non-empty list of strings)")
    return task, list(categories)


def _user_classify_spec(meta: Mapping[str, Any]) -> ClassifyInput:
    crop = int(meta.get("input_size", 224))
    return ClassifyInput(
        resize=int(meta.get("resize_size", round(crop * 256 / 224))),
        crop=crop,
        mean=tuple(meta.get("mean", IMAGENET_MEAN)),
        std=tuple(meta.get("std", IMAGENET_STD)),
    )


def _user_detect_spec(module: Any, meta: Mapping[str, Any]) -> DetectInput:
    if "fixed_size" in meta:
        width, height = meta["fixed_size"]
        return DetectInput(fixed=(int(width), int(height)))
    if "input_size" in meta:
        side = int(meta["input_size"])
        return DetectInput(min_size=side, max_size=side)
    if "min_size" not in meta and hasattr(module, "transform"):
        return _detect_spec(module)
    return DetectInput(int(meta.get("min_size", 800)), int(meta.get("max_size", 1333)))
