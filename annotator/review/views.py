"""The saved views of a mirror (needs_review, low_confidence, unlabeled, disagreements,
rejected, suspect_labels), saved again on every push, and where prelabels and ground truth
disagree: FiftyOne's `evaluate_detections` for boxes (a sample with a false positive or negative
disagrees); class sets are compared in `convert` for whole-image labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotator.review import backend as fob

DEFAULT_THRESHOLD = 0.5
VIEW_NAMES = ("needs_review", "low_confidence", "unlabeled", "disagreements", "rejected",
              "suspect_labels")  # fmt: skip
DESCRIPTIONS = {
    "needs_review": "samples with pending prelabels",
    "low_confidence": "prelabels with confidence under {threshold}",
    "unlabeled": "images nobody has labelled yet",
    "disagreements": "prelabels and ground truth differ (false positives or negatives)",
    "rejected": "samples with rejected labels",
    "suspect_labels": "labels cross-validation or a model run's boxes doubt (open suspect "
    "flags), worst first",
}


def build(fods: Any, threshold: float) -> dict[str, Any]:
    """The views by name, over `fods`."""
    from fiftyone import ViewField as F

    confident = (F("confidence") != None) & (F("confidence") < threshold)  # noqa: E711
    return {
        "needs_review": fods.exists(fob.PRELABELS),
        "low_confidence": fods.filter_labels(fob.PRELABELS, confident),
        "unlabeled": fods.match(F("status") == "unlabeled"),
        "disagreements": fods.match(F(fob.DISAGREEMENT) == True),  # noqa: E712
        "rejected": fods.exists(fob.REJECTED),
        "suspect_labels": fods.exists(fob.SUSPECT).sort_by(fob.SUSPECT),
    }


def save(fods: Any, threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """(Re)save every view; returns their names."""
    for name, view in build(fods, threshold).items():
        description = DESCRIPTIONS[name].format(threshold=threshold)
        fods.save_view(name, view, description=description, overwrite=True)
    return list(VIEW_NAMES)


def box_disagreements(fods: Any, sample_ids: Sequence[str]) -> dict[str, bool]:
    """Whether each sample's pending boxes and ground-truth boxes disagree (IoU 0.5, same
    class), from FiftyOne's detection evaluation; samples lacking either side agree."""
    result = dict.fromkeys(sample_ids, False)
    view = (
        fods.select(list(sample_ids))
        .exists(fob.PRELABELS)
        .exists(fob.GROUND_TRUTH)
        .select_fields([fob.PRELABELS, fob.GROUND_TRUTH])
    )
    if not len(view):
        return result
    owner = _label_owners(view)
    results = view.evaluate_detections(fob.PRELABELS, gt_field=fob.GROUND_TRUTH, progress=False)
    missing = results.missing
    for truth, pred, truth_id, pred_id in zip(
        results.ytrue, results.ypred, results.ytrue_ids, results.ypred_ids, strict=True
    ):
        if truth == missing or pred == missing:
            result[owner[pred_id if truth == missing else truth_id]] = True
    return result


def _label_owners(view: Any) -> dict[str, str]:
    """Label id -> sample id for both sides of the evaluation."""
    owner: dict[str, str] = {}
    columns = view.values(["id", f"{fob.PRELABELS}.detections.id",
                           f"{fob.GROUND_TRUTH}.detections.id"])  # fmt: skip
    for sid, preds, truths in zip(*columns, strict=True):
        for label_id in (preds or []) + (truths or []):
            owner[label_id] = sid
    return owner
