"""Use case: pull the decisions made in the FiftyOne App back into the store. Reads the mirror,
plans (annotator.review.decide), applies each step through annotator.store.labels (one
transaction and one history group each, author `fiftyone`; a label deleted in the App is
deleted in the store), marks in FiftyOne what was used up (decision tags removed, conflicts
tagged `conflict`, new labels given their annotation id), then pushes so the mirror shows the
result. Running it twice changes nothing the second time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from annotator.annotation import Box
from annotator.errors import ConflictError, InvalidInputError, NotFoundError
from annotator.review import backend as fob
from annotator.review import mirror
from annotator.review.decide import Conflict, Link, Plan, Planner, Ref, Step
from annotator.review.push import PushReport, push, sync_state
from annotator.review.views import DEFAULT_THRESHOLD
from annotator.store import review_reads as reads
from annotator.store.db import reading
from annotator.store.edits import ToggleClass, apply
from annotator.store.history import events_of_annotation
from annotator.store.models import Dataset, Image
from annotator.store.types import ProgressFn, Session

AUTHOR = "fiftyone"
COUNT_NAMES = {"review": "reviewed", "edit": "edited", "delete": "deleted", "create": "added",
               "link": "linked", "status": "status"}  # fmt: skip


@dataclass
class PullReport:
    """What a pull did: changes by kind, conflicts left for the user, input ignored."""

    dataset: str
    fo_dataset: str
    applied: Counter[str] = field(default_factory=Counter)
    conflicts: list[Conflict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    push: PushReport | None = None

    @property
    def changes(self) -> int:
        return sum(self.applied.values())


def pull(session: Session, ds: Dataset, *, fo_name: str | None = None,
         progress: ProgressFn | None = None) -> PullReport:  # fmt: skip
    """Apply the tags and label edits made in FiftyOne dataset `fo_name` to `ds`."""
    fob.require_fiftyone()
    name = fo_name or fob.default_name(ds.name)
    reading(session)  # no write lock held while FiftyOne is read
    with fob.quiet():
        fods, threshold = _mirror(session, ds, name)
        report = PullReport(ds.name, name)
        samples = mirror.read_samples(fods, ds.task, content=True)
        images = reads.load_images(session, ds, reads.image_ids(session, ds))
        by_id = {img.id: img for img in images}
        plan = Planner(ds, by_id, _pushed_lookup(session, ds)).run(samples)
        session.commit()  # end the read transaction before writing
        created = _apply(session, plan, by_id, report)
        _mark(fods, ds.task, plan, created, report)
    taken = {s.image_id for s in samples if s.image_id in by_id and s.app_changes()}
    report.push = push(session, ds, fo_name=name, threshold=threshold, progress=progress,
                       pulled={i for i in taken if i is not None})  # fmt: skip
    return report


def _mirror(session: Session, ds: Dataset, name: str) -> tuple[Any, float]:
    """The pushed FiftyOne dataset and its view threshold; refused when never pushed."""
    state = sync_state(session, ds, name)
    if state is None or not fob.dataset_exists(name):
        raise NotFoundError(
            f"dataset {ds.name!r} has no FiftyOne mirror {name!r}: run annotator review push "
            f"{ds.name} first"
        )
    fods = fob.load(name)
    if fods.info.get(fob.TOKEN_KEY) != state.info.get("token"):
        raise ConflictError(
            f"FiftyOne dataset {name!r} no longer mirrors dataset {ds.name!r}: "
            "push with --full to rebuild it"
        )
    return fods, float(state.info.get("threshold", DEFAULT_THRESHOLD))


def _pushed_lookup(session: Session, ds: Dataset) -> Any:
    """(annotation id, revision) -> (class, box) as recorded in the history, when it is."""
    names = {c.id: c.name for c in ds.classes}

    def lookup(ann_id: int, revision: int) -> tuple[str, Box | None] | None:
        for event in events_of_annotation(session, ann_id):
            for snap in (event.before, event.after):
                if snap and snap.get("revision") == revision:
                    return names.get(snap["class_id"], ""), _snap_box(snap)
        return None

    return lookup


def _snap_box(snap: dict[str, Any]) -> Box | None:
    if snap.get("kind") != "box":
        return None
    return Box(snap["x"], snap["y"], snap["w"], snap["h"])


ORDER = {"edit": 0, "delete": 1, "create": 2, "link": 3, "review": 4, "status": 5}


def _apply(session: Session, plan: Plan, images: dict[int, reads.ImageRecord],
           report: PullReport) -> dict[str, tuple[int, int]]:  # fmt: skip
    """Run the steps; returns label id in FiftyOne -> (annotation id, revision) of labels
    created or linked. A step refused by the store becomes a conflict or an ignored line.
    Each step expects the image's revision as read plus this pull's own changes."""
    revisions = {i: img.revision for i, img in images.items()}
    created: dict[str, tuple[int, int]] = {}
    done: list[Step] = []
    for step in sorted(plan.steps, key=lambda s: ORDER[s.kind]):
        try:
            made = _run(session, step, revisions[step.image_id])
        except ConflictError as exc:
            session.rollback()
            path = images[step.image_id].filepath
            plan.conflicts.append(Conflict(path, step.ref, step.kind, str(exc), step.tag))
            continue
        except (InvalidInputError, NotFoundError) as exc:
            session.rollback()
            report.ignored.append(f"{images[step.image_id].filepath}: {step.kind}: {exc}")
            continue
        image = session.get(Image, step.image_id)
        if image is not None:  # else gone: the image's next step is refused as not found
            revisions[step.image_id] = image.revision
        if made is not None and step.ref.label_id:
            created[step.ref.label_id] = made
        report.applied[COUNT_NAMES[step.kind]] += 1
        done.append(step)
    plan.steps = done
    report.conflicts = plan.conflicts
    report.ignored = plan.ignored + report.ignored
    return created


def _run(session: Session, step: Step, revision: int) -> tuple[int, int] | None:
    """One step through the store's edits; returns (id, revision) of a label it created or
    linked."""
    if isinstance(step.edit, Link):
        return step.edit.ann_id, 1
    made = apply(session, step.edit, AUTHOR, revision)
    if isinstance(step.edit, ToggleClass) and made is None:
        raise ConflictError("the class was on the image already: toggled off, not added")
    if step.kind != "create" or made is None:
        return None
    return made.id, made.revision


def _mark(fods: Any, task: str, plan: Plan, created: dict[str, tuple[int, int]],
          report: PullReport) -> None:  # fmt: skip
    """Use up the applied tags (a `conflict` tag left by an earlier pull goes with them), tag
    conflicts, and give new labels their annotation ids."""
    label_tags: dict[tuple[str, str], list[str]] = {}
    sample_tags: dict[str, list[str]] = {}

    def change(ref: Ref, drop: tuple[str | None, ...], add: str | None) -> None:
        if ref.label_id and ref.field:
            key = (ref.field, ref.label_id)
            label_tags[key] = _new_tags(label_tags.get(key, ref.tags), drop, add)
        else:
            sample_tags[ref.sample_id] = _new_tags(sample_tags.get(ref.sample_id, ref.tags),
                                                   drop, add)  # fmt: skip

    for step in plan.steps:
        if step.tag:
            change(step.ref, (step.tag, fob.CONFLICT_TAG), None)
    for ref, tag in plan.settled:
        change(ref, (tag, fob.CONFLICT_TAG), None)
    for conflict in report.conflicts:
        change(conflict.ref, (conflict.tag,), fob.CONFLICT_TAG)
    for name in fob.LABEL_FIELDS:
        values = {key[1]: tags for key, tags in label_tags.items() if key[0] == name}
        if values:
            fods.set_label_values(f"{fob.list_path(task, name)}.tags", values)
    if sample_tags:
        fods.set_values("tags", sample_tags, key_field="id")
    _link(fods, task, plan, created)


def _new_tags(tags: list[str], drop: tuple[str | None, ...], add: str | None) -> list[str]:
    kept = [t for t in tags if t not in drop]
    return [*kept, add] if add and add not in kept else kept


def _link(fods: Any, task: str, plan: Plan, created: dict[str, tuple[int, int]]) -> None:
    """Labels added in FiftyOne now name the store's label they became."""
    for name in fob.LABEL_FIELDS:
        ids = {s.ref.label_id: created[s.ref.label_id] for s in plan.steps
               if s.ref.field == name and s.ref.label_id in created}  # fmt: skip
        if not ids:
            continue
        path = fob.list_path(task, name)
        fods.set_label_values(f"{path}.{fob.ID}", {k: v[0] for k, v in ids.items()})
        fods.set_label_values(f"{path}.{fob.REVISION}", {k: v[1] for k, v in ids.items()})
