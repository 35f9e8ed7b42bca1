"""Reading the FiftyOne side of the mirror in bulk: which samples exist for which images, and
each sample's tags, pushed revision, record of the labels pushed and labels (ids, our annotation
ids, revisions, tags, class and box), read as columns with `values()` rather than sample by
sample; and what was changed in the App since the push (labels edited or deleted there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from annotator.review import backend as fob
from annotator.review.convert import Existing, KeptLabel, PushedLabel, labels_of


@dataclass(slots=True)
class FoLabel:
    """One label as FiftyOne holds it."""

    field: str
    label_id: str
    annotator_id: int | None
    revision: int | None
    tags: list[str]
    class_name: str | None = None
    bbox: list[float] | None = None


@dataclass(slots=True)
class FoSample:
    """One sample as FiftyOne holds it."""

    sample_id: str
    image_id: int | None
    revision: int | None
    tags: list[str]
    labels: list[FoLabel] = field(default_factory=list)
    pushed: dict[int, PushedLabel] = field(default_factory=dict)  # annotation id -> as pushed

    def app_changes(self) -> list[str]:
        """Our labels edited or deleted in the App since the push (empty when the push that
        wrote the sample kept no record of its labels)."""
        changes: list[str] = []
        shown = {lab.annotator_id: lab for lab in self.labels if lab.annotator_id is not None}
        for ann_id, was in sorted(self.pushed.items()):
            lab = shown.get(ann_id)
            if lab is None:
                changes.append(f"label {ann_id} ({was.label}) deleted")
            elif not was.shows(lab.class_name, lab.bbox):
                changes.append(f"label {ann_id} ({was.label}) edited")
        return changes


def sample_ids(fods: Any) -> dict[int | None, list[str]]:
    """Image id -> sample ids (None collects samples that name no image)."""
    found: dict[int | None, list[str]] = {}
    for image_id, sid in zip(*fods.values([fob.ID, "id"]), strict=True):
        found.setdefault(image_id, []).append(sid)
    return found


def _label_attrs(task: str, content: bool) -> list[str]:
    attrs = ["id", fob.ID, fob.REVISION, "tags"]
    if content:
        attrs.append("label")
        if task == "detection":
            attrs.append("bounding_box")
    return attrs


def read_samples(fods: Any, task: str, ids: Sequence[str] | None = None,
                 content: bool = False) -> list[FoSample]:  # fmt: skip
    """Samples `ids` (all when None) with their labels; `content` adds classes and boxes."""
    view = fods if ids is None else fods.select(list(ids))
    attrs = _label_attrs(task, content)
    paths = ["id", fob.ID, fob.REVISION, "tags", fob.PUSHED]
    for name in fob.LABEL_FIELDS:
        paths += [f"{fob.list_path(task, name)}.{a}" for a in attrs]
    columns = view.values(paths)
    samples = []
    for row in zip(*columns, strict=True):
        sample = FoSample(row[0], row[1], row[2], list(row[3] or []), pushed=_pushed(row[4]))
        for k, name in enumerate(fob.LABEL_FIELDS):
            start = 5 + k * len(attrs)
            sample.labels.extend(_labels(task, name, attrs, row[start : start + len(attrs)]))
        samples.append(sample)
    return samples


def _labels(task: str, name: str, attrs: list[str], values: Sequence[Any]) -> list[FoLabel]:
    if values[0] is None:
        return []
    single = fob.label_types(task)[name] == "Classification"
    cols = [[v] for v in values] if single else [list(v) for v in values]
    out = []
    for parts in zip(*cols, strict=True):
        data = dict(zip(attrs, parts, strict=True))
        out.append(
            FoLabel(
                field=name,
                label_id=data["id"],
                annotator_id=data[fob.ID],
                revision=data[fob.REVISION],
                tags=list(data["tags"] or []),
                class_name=data.get("label"),
                bbox=data.get("bounding_box"),
            )
        )
    return out


def _pushed(value: Any) -> dict[int, PushedLabel]:
    found: dict[int, PushedLabel] = {}
    for key, entry in (value or {}).items() if isinstance(value, dict) else ():
        parsed = PushedLabel.parse(entry)
        if parsed is not None and str(key).isdigit():
            found[int(key)] = parsed
    return found


def existing(fods: Any, task: str, ids: Sequence[str]) -> dict[str, Existing]:
    """What a rewrite of samples `ids` must keep, by sample id, with the App's changes."""
    if not ids:
        return {}
    found: dict[str, Existing] = {}
    with_orphans: list[str] = []
    for sample in read_samples(fods, task, ids, content=True):
        kept = Existing(sample.sample_id, sample.tags, sample.revision)
        kept.app_changes = sample.app_changes()
        for label in sample.labels:
            if label.annotator_id is None:
                with_orphans.append(sample.sample_id)
            else:
                was = sample.pushed.get(label.annotator_id)
                kept.labels[label.annotator_id] = KeptLabel(
                    label.label_id, label.tags, label.revision, was.created if was else None
                )
        found[sample.sample_id] = kept
    _add_orphans(fods, sorted(set(with_orphans)), found)
    return found


def _add_orphans(fods: Any, ids: list[str], found: dict[str, Existing]) -> None:
    """Labels added in FiftyOne (no annotation id yet), as FiftyOne objects."""
    if not ids:
        return
    columns = fods.select(ids).values(["id", *fob.LABEL_FIELDS])
    for sid, *values in zip(*columns, strict=True):
        for name, value in zip(fob.LABEL_FIELDS, values, strict=True):
            orphans = [lab for lab in labels_of(value) if _annotator_id(lab) is None]
            if orphans:
                found[sid].orphans[name] = orphans


def _annotator_id(label: Any) -> int | None:
    try:
        value = label[fob.ID]
    except (KeyError, AttributeError):
        return None
    return int(value) if value is not None else None
