"""Converting between store records and FiftyOne values: boxes in displayed pixels to FiftyOne's
relative [x, y, w, h] and back, an image record to the field values of its sample, the record of
what a push wrote (which tells edits, deletes and a label id reused for another label apart), and
the state of a sample already in FiftyOne that a rewrite must keep (tags, label ids, labels added
in the App and not pulled yet). FiftyOne is imported lazily."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotator.annotation import Box
from annotator.review import backend as fob
from annotator.store.review_reads import ImageRecord, LabelRecord


@dataclass(slots=True)
class PushedLabel:
    """One label as the last push wrote it, kept on its sample (`annotator_labels`): its
    revision, its identity (creation time) and what it showed (class, relative box)."""

    revision: int
    created: str
    label: str
    bbox: list[float] | None = None

    def to_value(self) -> dict[str, Any]:
        return {"revision": self.revision, "created": self.created, "label": self.label,
                "bbox": self.bbox}  # fmt: skip

    @classmethod
    def parse(cls, value: Any) -> PushedLabel | None:
        """The entry read back from FiftyOne; None when it is not one of ours."""
        try:
            bbox = value.get("bbox")
            return cls(int(value["revision"]), str(value["created"]), str(value["label"]),
                       [float(v) for v in bbox] if bbox is not None else None)  # fmt: skip
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def shows(self, label: str | None, bbox: Sequence[float] | None) -> bool:
        """Whether a label in FiftyOne still shows what was pushed (no edit in the App)."""
        if label != self.label or (bbox is None) != (self.bbox is None):
            return False
        if bbox is None or self.bbox is None:
            return True
        return all(abs(float(a) - b) <= 1e-9 for a, b in zip(bbox, self.bbox, strict=True))


@dataclass(slots=True)
class KeptLabel:
    """What a rewrite keeps of a label already in FiftyOne."""

    label_id: str
    tags: list[str]
    revision: int | None
    created: str | None = None  # the identity it was pushed with, when recorded


@dataclass(slots=True)
class Existing:
    """A sample already in FiftyOne: its id, tags, pushed revision and labels."""

    sample_id: str
    tags: list[str] = field(default_factory=list)
    revision: int | None = None
    labels: dict[int, KeptLabel] = field(default_factory=dict)
    orphans: dict[str, list[Any]] = field(default_factory=dict)  # field -> labels without id
    app_changes: list[str] = field(default_factory=list)  # edits and deletes not pulled


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


def _kept(rec: LabelRecord, existing: Existing | None) -> KeptLabel | None:
    """The FiftyOne label of `rec` to keep: never one pushed for another label that had the
    same id (a database from before ids were never reused)."""
    kept = existing.labels.get(rec.id) if existing else None
    if kept is not None and kept.created and kept.created != rec.created:
        return None
    return kept


def label_fields(task: str, img: ImageRecord, existing: Existing | None) -> dict[str, Any]:
    """ground_truth, prelabels and rejected of one image, keeping what FiftyOne alone holds,
    and the record of the labels written (`annotator_labels`)."""
    grouped: dict[str, list[Any]] = {f: [] for f in fob.LABEL_FIELDS}
    if existing:
        for name, orphans in existing.orphans.items():
            grouped[name].extend(orphans)
    for rec in img.labels:
        grouped[fob.FIELD_FOR_REVIEW[rec.review]].append(make_label(img, rec, _kept(rec, existing)))
    values = {name: field_value(task, name, labels) for name, labels in grouped.items()}
    values[fob.PUSHED] = pushed_record(img, values.values())
    return values


def pushed_record(img: ImageRecord, values: Iterable[Any]) -> dict[str, Any]:
    """What the push writes of each of our labels it shows, by annotation id (as text)."""
    created = {rec.id: rec.created for rec in img.labels}
    record: dict[str, Any] = {}
    for value in values:
        for lab in labels_of(value):
            ann_id = lab.get_field(fob.ID) if lab.has_field(fob.ID) else None
            if ann_id is None:
                continue  # added in the App, not pulled yet
            bbox = lab.bounding_box if lab.has_field("bounding_box") else None
            entry = PushedLabel(lab[fob.REVISION], created[ann_id], lab.label,
                                list(bbox) if bbox is not None else None)  # fmt: skip
            record[str(ann_id)] = entry.to_value()
    return record


def labels_of(value: Any) -> list[Any]:
    """The labels a field value holds (Detections, Classifications or one Classification)."""
    if value is None:
        return []
    for attr in ("detections", "classifications"):
        if hasattr(value, attr):
            return list(getattr(value, attr) or [])
    return [value]


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
        fob.SUSPECT: img.suspect_score,
        fob.SUGGESTED: img.suggested,
    }
    values.update(label_fields(task, img, existing))
    decided = class_disagreement(img) if task != "detection" else box_disagreement(img)
    if decided is not None:
        values[fob.DISAGREEMENT] = decided
    return values
