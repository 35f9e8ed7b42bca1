"""How well the people who labelled the same overlap images agree (`annotator agreement`).

Whole-image labels (classification, multilabel): Cohen's kappa (scikit-learn) when every image
has two voters, Fleiss' kappa (statsmodels) over the images with the usual number of voters,
and Krippendorff's alpha (krippendorff; any number of voters, missing votes allowed), overall
(classification) and per class (each class as given / not given). Boxes: each pair of voters'
boxes matched one to one by IoU >= 0.5 within a class, per class the matched fraction (2 x
matches / boxes of both) and the mean IoU of the matches. Per annotator: agreement with the
consensus (`annotator.store.consensus.decide`). A figure that is undefined (one class only, too
few images) is None. scikit-learn, statsmodels and krippendorff are imported inside functions."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from annotator.errors import MissingDependencyError
from annotator.store.consensus import IOU, decide
from annotator.store.overlap import Votes

XYWH = tuple[float, float, float, float]
Figure = float | None


def _need() -> None:
    try:
        import krippendorff  # noqa: F401
        import sklearn  # noqa: F401
        import statsmodels  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "agreement figures need scikit-learn, statsmodels and krippendorff: "
            "pip install 'annotator[team,learn]'"
        ) from None


def agreement(found: list[Votes], task: str, classes: list[str]) -> dict[str, Any]:
    """Every agreement figure of the overlap images `found` (see the module docstring)."""
    _need()
    people = sorted({p for v in found for p in v.labels})
    out: dict[str, Any] = {"task": task, "images": len(found), "annotators": people}
    if task == "detection":
        out["per_class"] = box_agreement(found, classes)
    else:
        out["overall"] = _label_figures(found, people, _whole(task, classes)) if task == (
            "classification") else None  # fmt: skip
        out["per_class"] = {c: _label_figures(found, people, _given(c)) for c in classes}
    out["per_annotator"] = per_annotator(found, task, classes)
    return out


def _whole(task: str, classes: list[str]) -> Callable[[list[str]], float]:
    """A voter's class as a number (NaN: gave none)."""
    return lambda names: float(classes.index(names[0])) if names else math.nan


def _given(name: str) -> Callable[[list[str]], float]:
    return lambda names: 1.0 if name in names else 0.0


def _label_figures(found: list[Votes], people: list[str],
                   value: Callable[[list[str]], float]) -> dict[str, Figure]:  # fmt: skip
    rows = [[value(v.labels[p]) if p in v.labels else math.nan for p in people] for v in found]
    return {"cohen_kappa": _cohen(rows), "fleiss_kappa": _fleiss(rows),
            "krippendorff_alpha": _alpha(rows)}  # fmt: skip


def _defined(x: float) -> Figure:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def _cohen(rows: list[list[float]]) -> Figure:
    """Cohen's kappa when every image has exactly two votes (the two voters in name order)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [[x for x in row if not math.isnan(x)] for row in rows]
    if not pairs or any(len(p) != 2 for p in pairs):
        return None
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(cohen_kappa_score(a, b))


def _fleiss(rows: list[list[float]]) -> Figure:
    """Fleiss' kappa over the images with the most common number of votes (at least 2)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    given = [[x for x in row if not math.isnan(x)] for row in rows]
    sizes = Counter(len(g) for g in given if len(g) >= 2)
    if not sizes:
        return None
    size = sizes.most_common(1)[0][0]
    data = [g for g in given if len(g) == size]
    if len({x for g in data for x in g}) < 2:
        return None
    table, _ = aggregate_raters(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(fleiss_kappa(table, method="fleiss"))


def _alpha(rows: list[list[float]]) -> Figure:
    """Krippendorff's alpha (nominal), voters x images with missing votes as NaN."""
    import krippendorff
    import numpy as np

    data = np.array(rows, dtype=float).T
    if data.size == 0 or len(set(data[~np.isnan(data)].tolist())) < 2:
        return None
    try:
        return _defined(krippendorff.alpha(reliability_data=data,
                                           level_of_measurement="nominal"))  # fmt: skip
    except ValueError:
        return None


def iou(a: XYWH, b: XYWH) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(a: list[tuple[str, XYWH]], b: list[tuple[str, XYWH]]) -> list[tuple[str, float]]:
    """One-to-one matches of same-class boxes with IoU >= 0.5, best first: (class, IoU)."""
    pairs = sorted(((iou(x, y), i, j) for i, (ca, x) in enumerate(a)
                    for j, (cb, y) in enumerate(b) if ca == cb), reverse=True)  # fmt: skip
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for value, i, j in pairs:
        if value >= IOU and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((a[i][0], value))
    return out


def box_agreement(found: list[Votes], classes: list[str]) -> dict[str, dict[str, Any]]:
    """Per class over every pair of voters of every image: boxes, matches, matched fraction
    and mean IoU of the matches."""
    boxes: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    ious: dict[str, list[float]] = {c: [] for c in classes}
    for v in found:
        people = sorted(v.boxes)
        for i, p in enumerate(people):
            for q in people[i + 1 :]:
                boxes.update(name for name, _ in v.boxes[p] + v.boxes[q])
                for name, value in match(v.boxes[p], v.boxes[q]):
                    matched[name] += 2
                    ious[name].append(value)
    return {c: {"boxes": boxes[c], "matched": matched[c] // 2,
                "matched_fraction": round(matched[c] / boxes[c], 4) if boxes[c] else None,
                "mean_iou": round(sum(ious[c]) / len(ious[c]), 4) if ious[c] else None}
            for c in classes}  # fmt: skip


def per_annotator(found: list[Votes], task: str, classes: list[str]) -> dict[str, Any]:
    """Per annotator: images voted on, and agreement with the consensus (the fraction of
    images where their labels equal it; for boxes the matched fraction against it)."""
    seen: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for v in found:
        decision = decide(v, task, classes)
        for person in v.labels:
            seen[person] += 1
            if task == "detection":
                mine = v.boxes[person]
                agree[person] += 2 * len(match(mine, list(decision.boxes)))
                total[person] += len(mine) + len(decision.boxes)
            elif decision.tie is None:
                agree[person] += sorted(v.labels[person]) == sorted(decision.labels)
                total[person] += 1
    return {p: {"images": seen[p],
                "agreement": round(agree[p] / total[p], 4) if total[p] else None}
            for p in sorted(seen)}  # fmt: skip
