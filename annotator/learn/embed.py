"""The embedding use case: one vector per image from a classification backbone's pooled
features (the input of its last linear layer), stored as float16 in the store. The model is
resolved exactly as `prelabel` resolves it (torchvision registry, TorchScript file or
`module:factory`, weights from `--weights` or torch's cache) and the images go through the same
DataLoader path (decoded in workers, EXIF orientation applied, resized and cropped as the model
expects). Only images without a vector of this model and these weights are processed, and every
batch is one commit, so a killed run loses at most one batch and a re-run finishes the job.
torch is imported inside functions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.errors import InvalidInputError
from annotator.prelabel.frames import ClassifyInput, classify_batch
from annotator.prelabel.pipeline import (
    Decoded,
    ImageFiles,
    check_run_options,
    default_workers,
    make_loader,
    pick_device,
)
from annotator.prelabel.registry import load_model
from annotator.store import embeddings as store
from annotator.store.imagefile import BadImage
from annotator.store.images import resolve_path
from annotator.store.models import Dataset
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor, nn

DEFAULT_MODEL = "mobilenet_v2"


@dataclass
class EmbedOptions:
    """What `annotator embed` was asked to do."""

    model: str = DEFAULT_MODEL
    weights: Path | None = None
    batch_size: int = 64
    device: str = "auto"
    limit: int | None = None
    workers: int | None = None  # None: up to 4, one per CPU core

    def check(self) -> None:
        check_run_options(self.batch_size, self.limit, self.device, self.workers)


@dataclass
class EmbedReport:
    """What an embedding run did."""

    model: str
    weights_sha256: str | None
    weights_source: str
    device: str
    features: str
    dim: int = 0
    embedded: int = 0
    already_done: int = 0
    bad: list[BadImage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Backbone:
    """A classifier whose forward returns pooled features: `features` says which layer's input
    they are (or that a model without a linear head gives its outputs)."""

    name: str
    module: nn.Module
    spec: ClassifyInput
    weights_sha256: str | None
    weights_source: str
    features: str

    def embed(self, batch: Tensor) -> np.ndarray:
        """N x dim float32 features of a batch of model inputs (see `frames.classify_batch`)."""
        import torch

        out = self.module(batch)
        out = out if isinstance(out, torch.Tensor) else out[0]
        return out.flatten(1).float().cpu().numpy()


def load_backbone(arch: str, weights: Path | None = None) -> Backbone:
    """The classification model ARCH (as `prelabel --model` takes it) without its head."""
    model = load_model(arch, weights)
    if model.task != "classification" or not isinstance(model.spec, ClassifyInput):
        raise InvalidInputError(
            f"--model {model.name}: a detection model; embed needs a classification backbone "
            "(mobilenet_v2, resnet50, efficientnet_b0, ...)"
        )
    features = drop_head(model.module)
    return Backbone(model.name, model.module, model.spec, model.weights_sha256,
                    model.weights_source, features)  # fmt: skip


def drop_head(module: nn.Module) -> str:
    """Replace the module's last linear layer by an identity, so its forward returns what that
    layer was given: the pooled features. A TorchScript module, or one without a linear layer,
    is left as it is (its outputs are the features). Returns which it was."""
    import torch
    from torch import nn

    if isinstance(module, torch.jit.ScriptModule):
        return "the model's outputs (TorchScript)"
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return "the model's outputs (no linear layer)"
    name, linear = linears[-1]
    parent_name, _, attr = name.rpartition(".")
    setattr(module.get_submodule(parent_name), attr, nn.Identity())
    return f"input of {name} ({linear.in_features} values)"


def embed(
    session: Session, ds: Dataset, options: EmbedOptions, progress: ProgressFn | None = None
) -> EmbedReport:
    """Store a vector for every image of `ds` that has none from this model and weights."""
    options.check()
    backbone = load_backbone(options.model, options.weights)
    device = pick_device(options.device)
    report = EmbedReport(backbone.name, backbone.weights_sha256, backbone.weights_source,
                         device, backbone.features)  # fmt: skip
    todo = store.images_without(session, ds.id, backbone.name, backbone.weights_sha256)
    report.already_done = store.image_count(session, ds.id) - len(todo)
    todo = todo[: options.limit] if options.limit else todo
    if not todo:
        return report
    items = [(i.id, str(resolve_path(ds, i.path)), i.width, i.height) for i in todo]
    started = time.perf_counter()
    _run_over(session, backbone, options, device, report, items, progress)
    report.seconds = time.perf_counter() - started
    return report


def _run_over(
    session: Session, backbone: Backbone, options: EmbedOptions, device: str,
    report: EmbedReport, items: list[tuple[int, str, int, int]], progress: ProgressFn | None,
) -> None:  # fmt: skip
    import torch

    workers = default_workers() if options.workers is None else options.workers
    loader = make_loader(ImageFiles(items, backbone.spec), options.batch_size, workers)
    backbone.module.to(device)
    done = 0
    if progress:
        progress(0, len(items))
    with torch.inference_mode():
        for batch in loader:
            embed_batch(session, backbone, batch, device, report)
            done += len(batch)
            if progress:
                progress(done, len(items))


def embed_batch(
    session: Session, backbone: Backbone, batch: list[Decoded], device: str, report: EmbedReport
) -> None:
    """Features of one decoded batch, stored in one commit; unreadable files are reported."""
    good = [d for d in batch if d.tensor is not None]
    report.bad.extend(BadImage(d.path, d.reason or "unreadable") for d in batch if d.tensor is None)
    if not good:
        return
    vectors = backbone.embed(classify_batch([d.tensor for d in good], backbone.spec, device))
    report.dim = int(vectors.shape[1])
    pairs = [(d.image_id, vectors[k]) for k, d in enumerate(good)]
    report.embedded += store.write_embeddings(
        session, backbone.name, backbone.weights_sha256, pairs
    )


def vectors_of(decoded: list[Decoded], backbone: Backbone, device: str) -> np.ndarray:
    """The features of already decoded images, without storing them (benchmarks, tests)."""
    import torch

    with torch.inference_mode():
        return backbone.embed(classify_batch([d.tensor for d in decoded], backbone.spec, device))


def stored_models(session: Session, ds: Dataset) -> dict[str, int]:
    """Embedding models with vectors in `ds`, and how many images each covers."""
    return store.embedding_counts(session, ds.id)


def no_embeddings(ds: Dataset, model: str, counts: dict[str, Any]) -> str:
    """The message for a dataset without vectors of `model`: what exists, and what to run."""
    have = ", ".join(f"{m} ({n} images)" for m, n in counts.items()) or "none"
    return (
        f"dataset {ds.name!r} has no embeddings of {model!r} (it has: {have}): run annotator "
        f"embed {ds.name} --model {model}"
    )
