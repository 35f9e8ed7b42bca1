"""Turning a model's raw outputs into what the store keeps: labels in the dataset's classes
(boxes mapped back to displayed pixels), the predictions dropped for want of a mapped class, and
each image's uncertainty.

Uncertainty, always >= 0, higher = more worth a person's look:
- classification: 1 - (p1 - p2), where p1 >= p2 are the two best dataset-class scores (a class's
  score sums the softmax probabilities of the model categories mapped to it). 0 for a sure
  prediction, 1 when the two best classes tie.
- detection: max over the image's mapped detections (those the model returns, including ones
  below the threshold) of 1 - |s - t| / max(t, 1 - t), for score s and threshold t: 1 when a box
  sits exactly on the threshold, 0 when every box is at 0 or 1 (or there is none)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotator.annotation import Label
from annotator.errors import InvalidInputError
from annotator.prelabel.frames import box_to_display
from annotator.prelabel.mapping import ClassMap
from annotator.store.predictions import ImagePredictions

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class Dropped:
    """What could not be stored: predictions whose category maps to no class (by category
    name), and images where no class reached the threshold."""

    unmapped: Counter[str] = field(default_factory=Counter)
    below_threshold: int = 0


def margin_uncertainty(scores: list[float]) -> float:
    """1 - (best - second best); scores in [0, 1]."""
    top = [*sorted(scores, reverse=True)[:2], 0.0, 0.0]
    return min(1.0, max(0.0, 1.0 - (top[0] - top[1])))


def threshold_uncertainty(scores: list[float], threshold: float) -> float:
    """How close the closest score sits to the threshold, in [0, 1]."""
    span = max(threshold, 1.0 - threshold) or 1.0
    return max((max(0.0, 1.0 - abs(s - threshold) / span) for s in scores), default=0.0)


def class_matrix(cmap: ClassMap) -> Tensor:
    """C x K: 1 where model category c maps to dataset class k."""
    import torch

    matrix = torch.zeros(len(cmap.categories), len(cmap.classes))
    index = {name: k for k, name in enumerate(cmap.classes)}
    for c, target in enumerate(cmap.targets):
        if target is not None:
            matrix[c, index[target]] = 1.0
    return matrix


@dataclass
class ClassifyOutputs:
    """Classifier logits -> whole-image labels (one, or several for multilabel datasets)."""

    cmap: ClassMap
    threshold: float
    multilabel: bool
    dropped: Dropped
    matrix: Tensor | None = None

    def convert(self, image_ids: list[int], logits: Tensor) -> list[ImagePredictions]:
        if logits.dim() != 2 or logits.shape[1] != len(self.cmap.categories):
            raise InvalidInputError(
                f"the model returned scores of shape {list(logits.shape)} for {len(image_ids)} "
                f"images; expected [{len(image_ids)}, {len(self.cmap.categories)}] (its classes)"
            )
        probs = logits.detach().float().cpu().softmax(dim=1)
        if self.matrix is None:
            self.matrix = class_matrix(self.cmap)
        scores = (probs @ self.matrix).clamp_(0.0, 1.0).tolist()
        tops = probs.argmax(dim=1).tolist()
        return [self._one(i, s, t) for i, s, t in zip(image_ids, scores, tops, strict=True)]

    def _one(self, image_id: int, scores: list[float], top: int) -> ImagePredictions:
        ranked = sorted(enumerate(scores), key=lambda kv: kv[1], reverse=True)
        kept = [(k, s) for k, s in ranked if s >= self.threshold]
        if not self.multilabel:
            kept = kept[:1]
        if not kept:
            self.dropped.below_threshold += 1
            if self.cmap.target(top) is None:
                self.dropped.unmapped[self.cmap.category_name(top)] += 1
        labels = [_label(self.cmap.classes[k], s) for k, s in kept]
        return ImagePredictions(image_id, labels, margin_uncertainty(scores))


@dataclass
class DetectOutputs:
    """Detector outputs (boxes in the input frame) -> boxes in displayed pixels, or, for a
    classification or multilabel dataset, one label per class found (its best box's score)."""

    cmap: ClassMap
    threshold: float
    dataset_task: str
    dropped: Dropped

    def convert(
        self, image_ids: list[int], outputs: list[dict[str, Any]],
        frames: list[tuple[int, int]], displays: list[tuple[int, int]],
    ) -> list[ImagePredictions]:  # fmt: skip
        rows = zip(image_ids, outputs, frames, displays, strict=True)
        return [self._one(i, out, frame, display) for i, out, frame, display in rows]

    def _one(
        self, image_id: int, out: dict[str, Any], frame: tuple[int, int], display: tuple[int, int]
    ) -> ImagePredictions:
        boxes = out["boxes"].detach().float().cpu().tolist()
        labels = out["labels"].detach().cpu().tolist()
        scores = out["scores"].detach().float().cpu().tolist()
        kept: list[Label] = []
        mapped_scores: list[float] = []
        for xyxy, category, score in zip(boxes, labels, scores, strict=True):
            target = self.cmap.target(int(category))
            if target is None:
                if score >= self.threshold:
                    self.dropped.unmapped[self.cmap.category_name(int(category))] += 1
                continue
            mapped_scores.append(float(score))
            box = box_to_display(tuple(xyxy), frame, display) if score >= self.threshold else None
            if box is not None:
                kept.append(Label(target, box, _clip(score), "model", "pending"))
        if self.dataset_task != "detection":
            kept = self._as_labels(kept)
        uncertainty = threshold_uncertainty(mapped_scores, self.threshold)
        return ImagePredictions(image_id, kept, uncertainty)

    def _as_labels(self, boxes: list[Label]) -> list[Label]:
        best: dict[str, float] = {}
        for label in boxes:
            best[label.class_name] = max(best.get(label.class_name, 0.0), label.score or 0.0)
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
        if self.dataset_task == "classification":
            ranked = ranked[:1]
        return [_label(name, score) for name, score in ranked]


def _clip(score: float) -> float:
    return min(1.0, max(0.0, float(score)))


def _label(class_name: str, score: float) -> Label:
    return Label(class_name, None, _clip(score), "model", "pending")
