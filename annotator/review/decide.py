"""Turning what FiftyOne holds into a plan of store changes, without changing anything: label
tags accept/reject/fix become review decisions, sample tags skip/relabel become statuses, labels
whose class or box the App changed become edits, labels deleted there become deletes, labels
added to ground_truth become new labels. A mirrored label stands for the store's label with the
same id on the same image and, where the push recorded it, the same creation time: never for
another label that got its id. A decision on something the store changed since the push becomes
a conflict, never a change. Knows the store only through records, a lookup of pushed states and
the edit types a step applies (`annotator.store.edits`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field

from annotator.annotation import Box
from annotator.review import backend as fob
from annotator.review.convert import PushedLabel, abs_box, same_box
from annotator.review.mirror import FoLabel, FoSample
from annotator.store import edits
from annotator.store.models import Dataset
from annotator.store.review_reads import ImageRecord, LabelRecord

# (annotation id, revision) -> (class name, box) as it was at that revision, when known
PushedLookup = Callable[[int, int], tuple[str, Box | None] | None]


@dataclass(slots=True)
class Ref:
    """Where a decision sits in FiftyOne: a sample (label_id None) or one of its labels."""

    sample_id: str
    field: str | None = None
    label_id: str | None = None
    tags: list[str] = dc_field(default_factory=list)  # its tags when read


@dataclass(frozen=True, slots=True)
class Link:
    """A label added in the App that the store holds already (multilabel): only its id is
    written back to the App."""

    ann_id: int


KINDS: dict[type, str] = {  # what a step is called in the pull's report
    edits.Review: "review",
    edits.EditAnnotation: "edit",
    edits.Delete: "delete",
    edits.AssignClass: "create",
    edits.ToggleClass: "create",
    edits.AddBox: "create",
    Link: "link",
    edits.SetStatus: "status",
}


@dataclass(slots=True)
class Step:
    """One store change: the edit to apply to an image (or a link), and the App tag it uses up."""

    image_id: int
    ref: Ref
    edit: edits.Edit | Link
    tag: str | None = None

    @property
    def kind(self) -> str:
        """review | edit | delete | create | link | status."""
        return KINDS[type(self.edit)]


@dataclass(slots=True)
class Conflict:
    """A decision not applied because its target changed in the store since the push."""

    image: str
    ref: Ref
    what: str
    reason: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.image}: {self.what}: {self.reason}"


@dataclass
class Plan:
    steps: list[Step] = dc_field(default_factory=list)
    conflicts: list[Conflict] = dc_field(default_factory=list)
    settled: list[tuple[Ref, str]] = dc_field(default_factory=list)  # tags already true in store
    ignored: list[str] = dc_field(default_factory=list)


class Planner:
    """Builds the plan of one pull from FiftyOne samples and store images."""

    def __init__(self, ds: Dataset, images: dict[int, ImageRecord], pushed: PushedLookup) -> None:
        self.task = ds.task
        self.class_ids = {c.name: c.id for c in ds.classes}
        self.images, self.pushed = images, pushed
        self.plan = Plan()

    def run(self, samples: list[FoSample]) -> Plan:
        for sample in samples:
            img = self.images.get(sample.image_id) if sample.image_id is not None else None
            if img is None:
                self._gone(sample)
                continue
            by_id = {rec.id: rec for rec in img.labels}
            for label in sample.labels:
                self._label(img, sample, label, by_id)
            self._deleted(img, sample, by_id)
            self._sample(img, sample)
        return self.plan

    def _gone(self, sample: FoSample) -> None:
        decided = [t for t in sample.tags if t in fob.SAMPLE_DECISIONS]
        decided += [t for lab in sample.labels for t in lab.tags if t in fob.LABEL_DECISIONS]
        if decided:
            self.plan.ignored.append(
                f"image {sample.image_id}: deleted from the store; tags {decided} not applied"
            )

    def _label(self, img: ImageRecord, sample: FoSample, label: FoLabel,
               by_id: dict[int, LabelRecord]) -> None:  # fmt: skip
        ref = Ref(sample.sample_id, label.field, label.label_id, label.tags)
        if label.annotator_id is None:
            self._added(img, label, ref)
            return
        was = sample.pushed.get(label.annotator_id)
        rec = by_id.get(label.annotator_id)
        if rec is not None and was is not None and was.created != rec.created:
            rec = None  # the id came back for another label since the push
        if rec is not None:
            self._edited(img, label, rec, ref, was)
        elif was is not None and not was.shows(label.class_name, label.bbox):
            what = f"label {label.annotator_id} ({was.label})"
            self._conflict(
                img, ref, what, "edited in FiftyOne and deleted in the store since the push"
            )
        self._decision(img, label, rec, ref)

    def _deleted(self, img: ImageRecord, sample: FoSample, by_id: dict[int, LabelRecord]) -> None:
        """Labels the push wrote that are gone from the App: deleted in the store too, unless
        the store changed them since the push (a conflict)."""
        shown = {label.annotator_id for label in sample.labels}
        for ann_id, was in sorted(sample.pushed.items()):
            rec = by_id.get(ann_id)
            if ann_id in shown or rec is None or rec.created != was.created:
                continue  # still there, or deleted in the store as well
            ref = Ref(sample.sample_id, tags=sample.tags)
            if rec.revision != was.revision:
                what = f"label {ann_id} ({rec.class_name}) deleted in FiftyOne"
                self._conflict(img, ref, what, _stale(rec.revision, was.revision))
            else:
                self.plan.steps.append(Step(img.id, ref, edits.Delete(ann_id)))

    def _decision(self, img: ImageRecord, label: FoLabel, rec: LabelRecord | None,
                  ref: Ref) -> None:  # fmt: skip
        tags = sorted({t for t in label.tags if t in fob.LABEL_DECISIONS})
        what = f"label {label.annotator_id} ({label.class_name})"
        if len(tags) > 1:
            self.plan.ignored.append(f"{img.filepath}: {what}: contradictory tags {tags}")
            return
        if not tags:
            return
        tag = tags[0]
        state = fob.LABEL_DECISIONS[tag]
        note = fob.FIX_NOTE if tag == "fix" else rec.note if rec else None
        if rec is None:
            self._conflict(img, ref, f"{what} '{tag}'", "deleted in the store since the push", tag)
        elif rec.review == state and rec.note == note:
            self.plan.settled.append((ref, tag))
        elif rec.revision != label.revision:
            self._conflict(img, ref, f"{what} '{tag}'", _stale(rec.revision, label.revision), tag)
        else:
            fix = fob.FIX_NOTE if tag == "fix" else None
            self.plan.steps.append(Step(img.id, ref, edits.Review((rec.id,), state, fix), tag))

    def _edited(self, img: ImageRecord, label: FoLabel, rec: LabelRecord, ref: Ref,
                was: PushedLabel | None) -> None:  # fmt: skip
        shown = self._content(img, label)
        if _same(shown, (rec.class_name, rec.box)):
            return
        if was is not None and was.shows(label.class_name, label.bbox):
            return  # the store changed since the push; the App did not
        what = f"label {rec.id} ({rec.class_name})"
        if rec.revision != label.revision:
            if was is not None or not _same(shown, self.pushed(rec.id, label.revision or 0)):
                reason = "edited in FiftyOne and changed in the store since the push"
                self._conflict(img, ref, what, reason)
            return
        class_name, box = shown
        class_id = self.class_ids.get(class_name or "")
        if class_id is None:
            self.plan.ignored.append(f"{img.filepath}: {what}: unknown class {class_name!r}")
            return
        new_class = class_id if class_name != rec.class_name else None
        new_box = None
        if box is not None and rec.box is not None and not same_box(box, rec.box):
            new_box = box.clipped(img.width, img.height)
        self.plan.steps.append(Step(img.id, ref, edits.EditAnnotation(rec.id, new_class, new_box)))

    def _added(self, img: ImageRecord, label: FoLabel, ref: Ref) -> None:
        where = f"{img.filepath}: label {label.class_name!r} added in FiftyOne"
        if label.field != fob.GROUND_TRUTH:
            self.plan.ignored.append(f"{where} to {label.field}: only ground_truth is imported")
            return
        class_id = self.class_ids.get(label.class_name or "")
        if class_id is None:
            self.plan.ignored.append(f"{where}: unknown class")
            return
        box = self._content(img, label)[1]
        if self.task == "detection" and box is None:
            self.plan.ignored.append(f"{where}: has no box")
            return
        twin = self._accepted_twin(img, label.class_name or "")
        if self.task == "multilabel" and twin is not None:
            self.plan.steps.append(Step(img.id, ref, Link(twin)))
        else:
            self.plan.steps.append(Step(img.id, ref, self._create(img, class_id, box)))

    def _create(self, img: ImageRecord, class_id: int, box: Box | None) -> edits.Edit:
        """The edit that adds a label of `class_id` (the box, when there is one) to `img`."""
        if box is not None:
            return edits.AddBox(img.id, class_id, box.clipped(img.width, img.height))
        if self.task == "multilabel":
            return edits.ToggleClass(img.id, class_id)
        return edits.AssignClass(img.id, class_id)

    def _accepted_twin(self, img: ImageRecord, class_name: str) -> int | None:
        for rec in img.labels:
            if rec.review == "accepted" and rec.class_name == class_name and rec.box is None:
                return rec.id
        return None

    def _sample(self, img: ImageRecord, sample: FoSample) -> None:
        tags = sorted({t for t in sample.tags if t in fob.SAMPLE_DECISIONS})
        ref = Ref(sample.sample_id, tags=sample.tags)
        if len(tags) > 1:
            self.plan.ignored.append(f"{img.filepath}: contradictory sample tags {tags}")
        elif tags:
            tag = tags[0]
            status = fob.SAMPLE_DECISIONS[tag]
            if img.status == status:
                self.plan.settled.append((ref, tag))
            elif img.revision != sample.revision:
                reason = _stale(img.revision, sample.revision)
                self._conflict(img, ref, f"sample '{tag}'", reason, tag)
            else:
                self.plan.steps.append(Step(img.id, ref, edits.SetStatus(img.id, status), tag))

    def _content(self, img: ImageRecord, label: FoLabel) -> tuple[str | None, Box | None]:
        if self.task != "detection" or label.bbox is None:
            return label.class_name, None
        return label.class_name, abs_box(label.bbox, img.width, img.height)

    def _conflict(self, img: ImageRecord, ref: Ref, what: str, reason: str,
                  tag: str | None = None) -> None:  # fmt: skip
        self.plan.conflicts.append(Conflict(img.filepath, ref, what, reason, tag))


def _same(a: tuple[str | None, Box | None], b: tuple[str, Box | None] | None) -> bool:
    if b is None or a[0] != b[0]:
        return False
    if a[1] is None or b[1] is None:
        return a[1] is None and b[1] is None
    return same_box(a[1], b[1])


def _stale(now: int, pushed: int | None) -> str:
    return f"changed in the store since the push (revision {now}, pushed {pushed})"
