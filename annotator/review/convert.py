"""Converting between store records and FiftyOne values: boxes in displayed pixels to FiftyOne's
relative [x, y, w, h] and back, an image record to the field values of its sample, and the state
of a sample already in FiftyOne that a rewrite must keep (tags, label ids, labels added in the
App and not pulled yet). FiftyOne is imported lazily."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from annotator.annotation import Box
from annotator.review import backend as fob
from annotator.review.records import ImageRecord, LabelRecord


@dataclass(slots=True)
class KeptLabel:
    """What a rewrite keeps of a label already in FiftyOne."""

    label_id: str
    tags: list[str]
    revision: int | None


@dataclass(slots=True)
class Existing:
    """A sample already in FiftyOne: its id, tags, pushed revision and labels."""

    sample_id: str
    tags: list[str] = field(default_factory=list)
    revision: int | None = None
    labels: dict[int, KeptLabel] = field(default_factory=dict)
    orphans: dict[str, list[Any]] = field(default_factory=dict)  # field -> labels without id


def rel_box(box: Box, width: int, height: int) -> list[float]:
    """FiftyOne's relative [x, y, w, h] of a box in displayed pixels."""
    return [box.x / width, box.y / height, box.w / width, box.h / height]


def abs_box(bbox: Sequence[float], width: int, height: int) -> Box:
    """A FiftyOne relative box in displayed pixels (rounded to 1e-9 px: float noise only)."""
    x, y, w, h = (float(v) for v in bbox)
    return Box(*(round(v, 9) for v in (x * width, y * height, w * width, h * height)))


def same_box(a: Box, b: Box, tol: float = 1e-6) -> bool:
    """Equal up to float noise of the relative round trip (in pixels)."""
    return all(
        abs(p - q) <= tol for p, q in zip((a.x, a.y, a.w, a.h), (b.x, b.y, b.w, b.h), strict=True)
    )


def _has_decision(tags: Sequence[str], decisions: dict[str, str]) -> bool:
    return any(t in decisions for t in tags)


def _pushed_revision(current: int, kept_tags: Sequence[str], kept_rev: int | None,
                     decisions: dict[str, str]) -> int:  # fmt: skip
    """The revision to show: an undecided tag keeps the revision it was made on, so that pull
    sees the change under it as a conflict."""
    if kept_rev is not None and _has_decision(kept_tags, decisions):
        return kept_rev
    return current


def label_attrs(rec: LabelRecord, kept: KeptLabel | None) -> dict[str, Any]:
    """The keyword arguments of a FiftyOne label for one annotation."""
    from bson import ObjectId

    attrs: dict[str, Any] = {"label": rec.class_name, fob.ID: rec.id}
    tags = kept.tags if kept else []
    attrs[fob.REVISION] = _pushed_revision(
        rec.revision, tags, kept.revision if kept else None, fob.LABEL_DECISIONS
    )
    if kept:
        attrs["_id"] = ObjectId(kept.label_id)
        attrs["tags"] = list(tags)
    if rec.score is not None:
        attrs["confidence"] = rec.score
    if rec.source != "human":
        attrs.update(source=rec.source, model=rec.model, run_id=rec.run_id)
    if rec.note:
        attrs["note"] = rec.note
    if rec.iscrowd:
        attrs["iscrowd"] = True
    return attrs


def make_label(img: ImageRecord, rec: LabelRecord, kept: KeptLabel | None) -> Any:
    fo = fob.require_fiftyone()
    attrs = label_attrs(rec, kept)
    if rec.box is None:
        return fo.Classification(**attrs)
    return fo.Detection(bounding_box=rel_box(rec.box, img.width, img.height), **attrs)


def field_value(task: str, fieldname: str, labels: list[Any]) -> Any:
    """The value of a label field holding `labels` (None when empty)."""
    if not labels:
        return None
    fo = fob.require_fiftyone()
    kind = fob.label_types(task)[fieldname]
    if kind == "Classification":
        return labels[0]
    if kind == "Detections":
        return fo.Detections(detections=labels)
    return fo.Classifications(classifications=labels)


def label_fields(task: str, img: ImageRecord, existing: Existing | None) -> dict[str, Any]:
    """ground_truth, prelabels and rejected of one image, keeping what FiftyOne alone holds."""
    grouped: dict[str, list[Any]] = {f: [] for f in fob.LABEL_FIELDS}
    if existing:
        for name, orphans in existing.orphans.items():
            grouped[name].extend(orphans)
    for rec in img.labels:
        kept = existing.labels.get(rec.id) if existing else None
        grouped[fob.FIELD_FOR_REVIEW[rec.review]].append(make_label(img, rec, kept))
    return {name: field_value(task, name, labels) for name, labels in grouped.items()}


def class_disagreement(img: ImageRecord) -> bool:
    """Pending prelabels and accepted labels both present and naming different classes."""
    pending = {r.class_name for r in img.labels if r.review == "pending"}
    accepted = {r.class_name for r in img.labels if r.review == "accepted"}
    return bool(pending and accepted) and pending != accepted


def box_disagreement(img: ImageRecord) -> bool | None:
    """Whether pending and accepted boxes disagree, when their classes alone decide it: one
    side empty (no), or different counts per class (a box must go unmatched: yes). None when
    the boxes must be matched (FiftyOne's evaluation; crowd boxes always go there)."""
    pending = [r for r in img.labels if r.review == "pending"]
    accepted = [r for r in img.labels if r.review == "accepted"]
    if not pending or not accepted:
        return False
    if any(r.iscrowd for r in pending + accepted):
        return None
    if Counter(r.class_name for r in pending) != Counter(r.class_name for r in accepted):
        return True
    return None


def sample_values(task: str, img: ImageRecord, existing: Existing | None) -> dict[str, Any]:
    """Every field we write on the sample of `img` (the disagreement of boxes only when their
    classes decide it: the rest needs FiftyOne's evaluation)."""
    fo = fob.require_fiftyone()
    tags = existing.tags if existing else []
    revision = _pushed_revision(
        img.revision, tags, existing.revision if existing else None, fob.SAMPLE_DECISIONS
    )
    values: dict[str, Any] = {
        "filepath": img.filepath,
        "metadata": fo.ImageMetadata(width=img.width, height=img.height),
        fob.REVISION: revision,
        "split": img.split,
        "status": img.status,
        "uncertainty": img.uncertainty,
    }
    values.update(label_fields(task, img, existing))
    decided = class_disagreement(img) if task != "detection" else box_disagreement(img)
    if decided is not None:
        values[fob.DISAGREEMENT] = decided
    return values
