"""Suspect boxes on a detection dataset: each image's accepted boxes compared with a model run's
predictions by cleanlab's object-detection label quality (ObjectLab). cleanlab's
`find_label_issues` says which images hold an issue and `get_label_quality_scores` how bad each
image is (the flags' score, worst first); its per-box subscores, against the per-class
thresholds `find_label_issues` applies, say which boxes: a box the run predicted confidently
that no label covers (missing, with the predicted class suggested), a labelled box on which a
confident prediction of another class sits (swapped, with that class suggested), and a labelled
box whose confident same-class prediction overlaps it too little (misplaced). Only images
holding both accepted boxes and predictions take part. cleanlab is imported inside functions."""

from __future__ import annotations

import contextlib
import io
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from annotator.errors import InvalidInputError
from annotator.store.box_suspects import BoxRecord, boxes_and_predictions, comparison_run
from annotator.store.datasets import current_user
from annotator.store.models import Dataset
from annotator.store.suspects import NewFlag, write_flags
from annotator.store.types import Session

if TYPE_CHECKING:
    import numpy as np


@dataclass
class BoxSuspectsReport:
    run: int  # the suspects run that stored the flags
    model_run: int  # the model run whose predictions the boxes were compared with
    model: str
    images: int  # images holding both accepted boxes and predictions
    boxes: int
    predictions: int
    flagged_images: int
    flagged: int  # box flags
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "none"
        return (f"run {self.run}: {self.flagged} suspect boxes ({kinds}) on "
                f"{self.flagged_images} of {self.images} images with accepted boxes and "
                f"predictions of run {self.model_run} ({self.model}); {self.boxes} boxes, "
                f"{self.predictions} predictions, {self.seconds:.1f} s")  # fmt: skip


@dataclass
class ImageBoxes:
    """One image as cleanlab takes it, with the records behind its rows (predictions in
    cleanlab's order: by class, then as stored)."""

    image_id: int
    boxes: list[BoxRecord]
    predicted: list[BoxRecord]


def find_box_suspects(
    session: Session, ds: Dataset, run_id: int | None = None
) -> BoxSuspectsReport:
    """Compare the accepted boxes with run `run_id`'s predictions (default: the newest run with
    predictions on labelled images) and store the suspect boxes as a new run of flags. Commits."""
    from annotator.learn.suspects import require_cleanlab

    require_cleanlab()
    started = time.perf_counter()
    run = comparison_run(session, ds, run_id)
    found = boxes_and_predictions(session, ds, run)
    if not found.labelled:
        raise InvalidInputError(
            f"run {run.id} ({run.model}) has no scored predicted boxes on images with accepted "
            f"boxes in {ds.name!r}: nothing to compare"
        )
    class_ids = [c.id for c in ds.classes]
    position = {cid: k for k, cid in enumerate(class_ids)}
    images = [ImageBoxes(i, found.labelled[i],
                     sorted(found.predicted[i], key=lambda b: position[b.class_id]))
              for i in found.labelled]  # fmt: skip
    flags = box_flags(images, class_ids)
    suspects_run = write_flags(session, ds, flags, current_user())
    return BoxSuspectsReport(
        suspects_run, run.id, run.model, len(images), sum(len(i.boxes) for i in images),
        sum(len(i.predicted) for i in images), len({f.image_id for f in flags}), len(flags),
        dict(Counter(str(f.kind) for f in flags)), time.perf_counter() - started,
    )  # fmt: skip


def _xyxy(box: BoxRecord) -> list[float]:
    return [box.x, box.y, box.x + box.w, box.y + box.h]


def cleanlab_inputs(
    images: list[ImageBoxes], class_ids: list[int]
) -> tuple[list[dict[str, Any]], list[list[np.ndarray]]]:
    """labels (bboxes as x1, y1, x2, y2, class indices) and predictions (per class, rows of
    x1, y1, x2, y2, score) as cleanlab's object detection takes them."""
    import numpy as np

    position = {cid: k for k, cid in enumerate(class_ids)}
    labels, predictions = [], []
    for image in images:
        labels.append({
            "bboxes": np.array([_xyxy(b) for b in image.boxes], dtype=np.float64).reshape(-1, 4),
            "labels": np.array([position[b.class_id] for b in image.boxes], dtype=np.int64),
        })  # fmt: skip
        per_class: list[list[list[float]]] = [[] for _ in class_ids]
        for b in image.predicted:
            per_class[position[b.class_id]].append([*_xyxy(b), float(b.score or 0.0)])
        predictions.append([np.array(rows, dtype=np.float64).reshape(-1, 5) for rows in per_class])
    return labels, predictions


def box_flags(images: list[ImageBoxes], class_ids: list[int]) -> list[NewFlag]:
    """The suspect boxes of the images cleanlab finds an issue in, scored by the image's label
    quality (0 worst .. 1)."""
    labels, predictions = cleanlab_inputs(images, class_ids)
    scores = _Scores.compute(labels, predictions)
    flags: list[NewFlag] = []
    for i in scores.flagged:
        flags.extend(_image_flags(images[i], scores, i, class_ids))
    return flags


@dataclass
class _Scores:
    """cleanlab's verdicts: images with an issue, each image's label quality, the per-box
    subscores and per-class thresholds, and the per-image similarity of labels to predictions."""

    flagged: list[int]
    quality: np.ndarray
    overlooked: list[np.ndarray]
    swap: list[np.ndarray]
    badloc: list[np.ndarray]
    limits: dict[str, list[float]]  # per kind, per class index: a subscore at most this is an issue
    aux: list[dict[str, Any]]
    high: float  # the probability above which a prediction is confident

    @classmethod
    def compute(cls, labels: list[dict[str, Any]], predictions: list[list[np.ndarray]]) -> _Scores:
        from cleanlab.internal import constants as c
        from cleanlab.object_detection import rank
        from cleanlab.object_detection.filter import _get_per_class_ap, find_label_issues

        with contextlib.redirect_stdout(io.StringIO()):  # cleanlab prints as it goes
            mask = find_label_issues(labels, predictions)
            quality = rank.get_label_quality_scores(labels, predictions, verbose=False)
            aux = rank._get_valid_inputs_for_compute_scores(c.ALPHA, labels, predictions)
            overlooked = rank.compute_overlooked_box_scores(
                alpha=c.ALPHA, high_probability_threshold=c.HIGH_PROBABILITY_THRESHOLD,
                auxiliary_inputs=aux)  # fmt: skip
            swap = rank.compute_swap_box_scores(
                alpha=c.ALPHA, high_probability_threshold=c.HIGH_PROBABILITY_THRESHOLD,
                auxiliary_inputs=aux)  # fmt: skip
            badloc = rank.compute_badloc_box_scores(
                alpha=c.ALPHA, low_probability_threshold=c.LOW_PROBABILITY_THRESHOLD,
                auxiliary_inputs=aux)  # fmt: skip
            ap = _get_per_class_ap(labels, predictions)
        k = len(predictions[0])
        factors = {"missing": c.OVERLOOKED_THRESHOLD_FACTOR, "swapped": c.SWAP_THRESHOLD_FACTOR,
                   "misplaced": c.BADLOC_THRESHOLD_FACTOR}  # fmt: skip
        limits = {
            kind: [float(ap.get(j, 0.0)) * f for j in range(k)] for kind, f in factors.items()
        }
        flagged = sorted((int(i) for i in mask.nonzero()[0]), key=lambda i: (quality[i], i))
        return cls(flagged, quality, overlooked, swap, badloc, limits, aux,
                   float(c.HIGH_PROBABILITY_THRESHOLD))  # fmt: skip


def _issue(score: float, limit: float) -> bool:
    return score == score and score <= limit  # NaN: not a candidate


def _image_flags(image: ImageBoxes, scores: _Scores, i: int, class_ids: list[int]) -> list[NewFlag]:
    aux, quality = scores.aux[i], float(scores.quality[i])
    flags = []
    for j, pred in enumerate(image.predicted):
        k = int(aux["pred_labels"][j])
        if _issue(float(scores.overlooked[i][j]), scores.limits["missing"][k]):
            flags.append(NewFlag(image.image_id, None, pred.class_id, quality, "missing",
                                 _box(pred), pred.id))  # fmt: skip
    for j, box in enumerate(image.boxes):
        k = int(aux["lab_labels"][j])
        if _issue(float(scores.swap[i][j]), scores.limits["swapped"][k]):
            instead = _swapped_for(aux, j, k, scores.high)
            flags.append(NewFlag(image.image_id, box.class_id,
                                 None if instead is None else class_ids[instead], quality,
                                 "swapped", _box(box), box.id))  # fmt: skip
        if _issue(float(scores.badloc[i][j]), scores.limits["misplaced"][k]):
            flags.append(NewFlag(image.image_id, box.class_id, None, quality, "misplaced",
                                 _box(box), box.id))  # fmt: skip
    return flags


def _swapped_for(aux: dict[str, Any], j: int, k: int, high: float) -> int | None:
    """The class of the confident prediction of another class most like labelled box j (the
    one cleanlab's swap score was measured against)."""
    import numpy as np

    others = np.where((aux["pred_labels"] != k) & (aux["pred_label_probs"] > high))[0]
    if others.size == 0:
        return None
    best = others[int(np.argmax(aux["similarity_matrix"][j, others]))]
    return int(aux["pred_labels"][best])


def _box(b: BoxRecord) -> tuple[float, float, float, float]:
    return (float(b.x), float(b.y), float(b.w), float(b.h))
