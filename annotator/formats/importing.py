"""Use case: import a COCO, YOLO or ImageFolder source into a dataset. Reads and validates the
source (the format module), creates the dataset (task inferred or given) or adds to an existing
one (classes matched by name, new ones appended), fits the labels to the dataset's task, then
hands the images to the store's bulk import, which commits batch by batch (so a re-run after a
crash completes the import without duplicates)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotator.errors import InvalidInputError
from annotator.formats.common import Incoming, Parsed, Problem
from annotator.formats.registry import get_format
from annotator.store.bulk import BulkReport, gc_paused, import_samples
from annotator.store.datasets import add_classes, create_dataset, find_dataset
from annotator.store.models import TASKS, Dataset, LabelClass
from annotator.store.types import ProgressFn, Session


@dataclass(kw_only=True)
class ImportReport(BulkReport):
    """What an import did, for the summary the CLI prints: the store's bulk counts plus what
    the source held that we do not import."""

    dataset: str
    task: str
    created: bool
    polygons: int = 0
    derived: int = 0
    masks: int = 0
    new_classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.images == 0 and self.existing == 0:
            return f"nothing imported into {self.dataset!r}; {len(self.problems)} problems"
        parts = [
            f"imported {self.images} images ({self.negatives} negatives), {self.labels} "
            f"labels into {self.task} dataset {self.dataset!r}"
        ]
        if self.crowd:
            parts.append(f"{self.crowd} crowd regions kept flagged iscrowd=True")
        if self.polygons or self.derived:
            parts.append(
                f"{self.polygons} polygons kept as points, {self.derived} boxes derived "
                "from polygons"
            )
        if self.masks:
            parts.append(f"{self.masks} masks or multi-part polygons kept as boxes only")
        if self.flagged:
            parts.append(
                f"{self.flagged} images with refused labels left unlabeled and flagged "
                "for review (queue 'flagged')"
            )
        if self.clipped:
            parts.append(f"{self.clipped} boxes clipped to their image")
        if self.existing:
            parts.append(f"{self.existing} images already in the dataset (skipped)")
        parts.append(f"{len(self.problems)} problems")
        return "; ".join(parts)


def import_source(
    session: Session,
    fmt: str,
    source: Path,
    dataset: str,
    *,
    task: str | None = None,
    images: Path | None = None,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Import `source` (read as `fmt`) into dataset `dataset`, creating it when absent."""
    if task is not None and task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    with gc_paused():
        parsed = get_format(fmt).read(Path(source).expanduser(), images)
    try:
        return _import_parsed(session, parsed, dataset, task, progress)
    finally:
        close = getattr(parsed, "close", None)  # a streamed source's spill
        if close is not None:
            close()


def _import_parsed(
    session: Session, parsed: Parsed, dataset: str, task: str | None, progress: ProgressFn | None
) -> ImportReport:
    if not parsed.items:  # nothing readable: create nothing, say why
        return ImportReport(
            dataset=dataset,
            task=task or "-",
            created=False,
            problems=parsed.problems,
            notes=parsed.notes,
        )
    ds, created = _target(session, dataset, parsed, task)
    report = ImportReport(
        dataset=ds.name,
        task=ds.task,
        created=created,
        polygons=parsed.polygons,
        derived=parsed.derived,
        masks=parsed.masks,
        notes=parsed.notes,
    )
    report.problems.extend(parsed.problems)
    report.new_classes = [c.name for c in ensure_classes(session, ds, parsed.classes)]
    attach = getattr(parsed, "attach", None)  # a streamed source gives labels batch by batch

    def prepare(chunk: Sequence[Incoming]) -> None:
        if attach is not None:
            attach(chunk)
        for item in chunk:
            _fit_item(item, ds.task, report.problems)

    import_samples(session, ds, parsed.items, progress=progress, report=report, prepare=prepare)
    return report


def ensure_classes(session: Session, ds: Dataset, names: Iterable[str]) -> list[LabelClass]:
    """Append the classes of `names` that `ds` lacks (matched by name), in order."""
    have = {c.name for c in ds.classes}
    missing = list(dict.fromkeys(n for n in names if n not in have))
    return add_classes(session, ds, missing) if missing else []


def _target(session: Session, name: str, parsed: Parsed, task: str | None) -> tuple[Dataset, bool]:
    """The dataset to import into (created when absent), once its task can hold the source."""
    existing = find_dataset(session, name.strip())
    if existing is not None and task is not None and task != existing.task:
        raise InvalidInputError(
            f"dataset {existing.name!r} is {existing.task}, not {task}: "
            "import into a new dataset to change the task"
        )
    chosen = existing.task if existing is not None else task or parsed.infer_task()
    check_task(parsed, chosen, name.strip())
    if existing is not None:
        return existing, False
    return create_dataset(session, name, chosen, parsed.classes, parsed.root), True


def check_task(parsed: Parsed, task: str, dataset: str) -> None:
    """Refuse a source whose labels a dataset of `task` cannot hold at all."""
    if task != "detection" and parsed.has_boxes:
        raise InvalidInputError(
            f"the source holds boxes but dataset {dataset!r} is {task}: "
            "import it into a detection dataset"
        )
    if task == "detection" and not parsed.has_boxes and parsed.has_labels:
        raise InvalidInputError(
            f"the source holds whole-image labels, no boxes, but dataset {dataset!r} is "
            "detection: import it into a classification or multilabel dataset"
        )


def _fit_item(item: Incoming, task: str, problems: list[Problem]) -> None:
    """Drop, with a problem each, the labels that break the task (whole-image labels in a
    detection dataset, several classes on one image of a classification dataset); repeated
    identical image-level labels collapse to one."""
    labels = item.sample.labels
    if task == "detection":
        keep = _boxes_only(item, problems)
    else:
        first = {lb.class_name: i for i, lb in reversed(list(enumerate(labels)))}
        keep = sorted(first.values())
        if task == "classification" and len(first) > 1:
            names = ", ".join(sorted(first))
            reason = f"{len(first)} classes ({names}) on one image of a classification dataset"
            reason += ": labels skipped, image imported unlabeled"
            item.refuse(problems, item.file, item.where, reason)
            keep = []
    if len(keep) != len(labels):
        item.sample.labels = [labels[i] for i in keep]
        if item.label_where:
            item.label_where = [item.label_where[i] for i in keep]


def _boxes_only(item: Incoming, problems: list[Problem]) -> list[int]:
    labels = item.sample.labels
    keep = [i for i, lb in enumerate(labels) if lb.box is not None]
    if len(keep) != len(labels):
        reason = "a whole-image label in a detection dataset: skipped"
        for i in sorted(set(range(len(labels))) - set(keep)):
            where = item.label_where[i] if item.label_where else item.where
            item.refuse(problems, item.label_file or item.file, where, reason)
    return keep
