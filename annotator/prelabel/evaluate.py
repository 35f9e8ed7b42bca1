"""How good a model run is, measured against what people accepted. The images compared are those
the run processed that a person has judged (status labeled or reviewed, or holding an accepted
label); the truth is their accepted labels (human labels, and predictions a person accepted),
the predictions are every label the run stored on them, whatever their review state.
Detection: COCO mAP@[.5:.95], mAP@.5 and AP per class, through pycocotools. Classification:
accuracy, precision, recall and F1 per class, and the confusion matrix (multilabel: per class,
and accuracy as exact-set match). Results are plain JSON-ready dicts. pycocotools is imported
lazily."""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from typing import Any

from annotator.errors import InvalidInputError
from annotator.store.models import Annotation, Dataset, Image
from annotator.store.predictions import get_run, judged_images, truth_and_predictions
from annotator.store.types import Session

NO_PREDICTION = "(none)"


def evaluate(session: Session, ds: Dataset, run_id: int | None = None) -> dict[str, Any]:
    """Metrics of run `run_id` (default: the newest) of dataset `ds`."""
    run = get_run(session, ds, run_id)
    images = judged_images(session, run)
    if not images:
        raise InvalidInputError(
            f"run {run.id}: none of the {run.image_count} images it processed has been labeled "
            "or reviewed yet; accept or fix some predictions first"
        )
    head = {
        "run": {"id": run.id, "model": run.model, "weights_sha256": run.weights_sha256},
        "task": ds.task,
        "images": len(images),
    }
    truth, predicted = truth_and_predictions(session, run, [i.id for i in images])
    names = {c.id: c.name for c in ds.classes}
    if ds.task == "detection":
        return head | detection_metrics(images, truth, predicted, names)
    return head | classification_metrics(images, truth, predicted, names, ds.task)


# -- detection --------------------------------------------------------------------------------


def detection_metrics(
    images: list[Image], truth: list[Annotation], predicted: list[Annotation],
    names: dict[int, str],
) -> dict[str, Any]:  # fmt: skip
    """COCO box metrics; AP of a class with no accepted box is None."""
    counts_truth = _per_class(truth)
    counts_pred = _per_class(predicted)
    ap, ap50, overall = _coco_eval(images, truth, predicted, list(names))
    classes = [
        {"class": name, "ap": ap.get(cid), "ap50": ap50.get(cid),
         "labels": counts_truth.get(cid, 0), "predictions": counts_pred.get(cid, 0)}
        for cid, name in names.items()
    ]  # fmt: skip
    return {"map": overall[0], "map50": overall[1], "classes": classes}


def _per_class(anns: list[Annotation]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for ann in anns:
        counts[ann.class_id] += 1
    return counts


def _coco_dicts(
    images: list[Image], truth: list[Annotation], predicted: list[Annotation],
    class_ids: list[int],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    gt = {
        "images": [{"id": i.id, "width": i.width, "height": i.height} for i in images],
        "categories": [{"id": cid, "name": str(cid)} for cid in class_ids],
        "annotations": [
            {"id": a.id, "image_id": a.image_id, "category_id": a.class_id,
             "bbox": [a.x, a.y, a.w, a.h], "area": (a.w or 0) * (a.h or 0),
             "iscrowd": int(a.iscrowd)}
            for a in truth if a.kind == "box"
        ],
    }  # fmt: skip
    dt = [
        {"image_id": a.image_id, "category_id": a.class_id, "bbox": [a.x, a.y, a.w, a.h],
         "score": a.score if a.score is not None else 1.0}
        for a in predicted if a.kind == "box"
    ]  # fmt: skip
    return gt, dt


APs = tuple[dict[int, float | None], dict[int, float | None], tuple[float | None, float | None]]


def _coco_eval(
    images: list[Image], truth: list[Annotation], predicted: list[Annotation],
    class_ids: list[int],
) -> APs:  # fmt: skip
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, dt_list = _coco_dicts(images, truth, predicted, class_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        if not dt_list:  # pycocotools cannot load an empty result list
            return _no_predictions(gt_dict, class_ids)
        coco = COCOeval(gt, gt.loadRes(dt_list), iouType="bbox")
        coco.evaluate()
        coco.accumulate()
        coco.summarize()
    precision = coco.eval["precision"]  # [iou thresholds, recall, class, area, max dets]
    ap = {cid: _mean(precision[:, :, k, 0, -1]) for k, cid in enumerate(coco.params.catIds)}
    ap50 = {cid: _mean(precision[0, :, k, 0, -1]) for k, cid in enumerate(coco.params.catIds)}
    return ap, ap50, (_stat(coco.stats[0]), _stat(coco.stats[1]))


def _no_predictions(gt: dict[str, Any], class_ids: list[int]) -> APs:
    present = {a["category_id"] for a in gt["annotations"]}
    ap: dict[int, float | None] = {cid: (0.0 if cid in present else None) for cid in class_ids}
    overall = 0.0 if present else None
    return ap, dict(ap), (overall, overall)


def _mean(values: Any) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def _stat(value: float) -> float | None:
    return None if value < 0 else float(value)


# -- classification ---------------------------------------------------------------------------


def classification_metrics(
    images: list[Image], truth: list[Annotation], predicted: list[Annotation],
    names: dict[int, str], task: str,
) -> dict[str, Any]:  # fmt: skip
    """Per class precision/recall/F1; accuracy; the confusion matrix (single-label only)."""
    true_sets = _label_sets(truth)
    pred_sets = _label_sets(predicted, best_only=task == "classification")
    ids = [i.id for i in images if task == "multilabel" or true_sets.get(i.id)]
    if task == "classification":
        true_sets = {i: set(sorted(true_sets[i])[:1]) for i in ids}
    pairs = [(true_sets.get(i, set()), pred_sets.get(i, set())) for i in ids]
    exact = sum(1 for t, p in pairs if t == p)
    result: dict[str, Any] = {
        "images": len(ids),
        "accuracy": exact / len(ids) if ids else None,
        "classes": [_class_scores(cid, name, pairs) for cid, name in names.items()],
        "confusion": _confusion(pairs, names) if task == "classification" else None,
    }
    return result


def _label_sets(anns: list[Annotation], best_only: bool = False) -> dict[int, set[int]]:
    by_image: dict[int, list[Annotation]] = defaultdict(list)
    for ann in anns:
        if ann.kind == "label":
            by_image[ann.image_id].append(ann)
    if best_only:
        return {i: {max(a, key=lambda x: x.score or 0.0).class_id} for i, a in by_image.items()}
    return {i: {a.class_id for a in group} for i, group in by_image.items()}


def _class_scores(cid: int, name: str, pairs: list[tuple[set[int], set[int]]]) -> dict[str, Any]:
    tp = sum(1 for t, p in pairs if cid in t and cid in p)
    fp = sum(1 for t, p in pairs if cid not in t and cid in p)
    fn = sum(1 for t, p in pairs if cid in t and cid not in p)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"class": name, "precision": precision, "recall": recall, "f1": f1,
            "support": tp + fn, "predicted": tp + fp}  # fmt: skip


def _confusion(pairs: list[tuple[set[int], set[int]]], names: dict[int, str]) -> dict[str, Any]:
    order = list(names)
    columns = [*order, None]
    counts = [[0] * len(columns) for _ in order]
    for truth, pred in pairs:
        row = order.index(next(iter(truth)))
        col = columns.index(next(iter(pred))) if pred else len(order)
        counts[row][col] += 1
    return {"rows": [names[c] for c in order],
            "columns": [names[c] for c in order] + [NO_PREDICTION], "counts": counts}  # fmt: skip
