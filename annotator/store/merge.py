"""Use case: merge dataset SRC into dataset DEST, possibly from another database. Images are
matched by SHA-256 (the same photo in both is one image); classes by name after `--map`
renaming (classes DEST lacks are added). An image new to DEST comes with its split, status and
its human and accepted or pending labels; an image in both whose labels differ is a conflict,
settled by `on_conflict`: keep DEST's, take SRC's (`theirs`), keep both as pending for review
(`both`), or add SRC's as pending and flag the image for a person (`review`). Work goes in
batches, one transaction and history group each: a kill leaves whole batches, and a re-run
finds what is merged already (same labels, or SRC's labels already pending) and skips it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.bulk import bulk_author, fetch_all
from annotator.store.datasets import color_for, validate_class_name
from annotator.store.history import Group, snapshot
from annotator.store.images import resolve_path, stored_path
from annotator.store.labels import remove
from annotator.store.models import Annotation, Dataset, Image, LabelClass

CONFLICT_MODES = ("keep", "theirs", "both", "review")
BATCH = 1000
ProgressFn = Callable[[int, int], None]
Key = tuple[str, str, float | None, float | None, float | None, float | None, bool]


@dataclass
class MergeReport:
    images_added: int = 0
    images_matched: int = 0
    labels_added: int = 0
    conflicts: int = 0
    classes_added: list[str] = field(default_factory=list)

    def summary(self, mode: str) -> str:
        return (
            f"merged: {self.images_added} images added, {self.images_matched} already there "
            f"(by SHA-256), {self.labels_added} labels added; {self.conflicts} conflicts "
            f"({mode})"
        )


def parse_map(text: str | None) -> dict[str, str]:
    """`a=b,c=d` -> {"a": "b", "c": "d"} (SRC class a becomes DEST class b)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        old, sep, new = part.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InvalidInputError(f"--map {part!r}: expected SRC_CLASS=DEST_CLASS")
        out[old.strip()] = validate_class_name(new)
    return out


def check_tasks(src: Dataset, dest: Dataset) -> None:
    if src.task == dest.task or (src.task, dest.task) == ("classification", "multilabel"):
        return
    raise InvalidInputError(
        f"cannot merge {src.task} dataset {src.name!r} into {dest.task} dataset {dest.name!r}: "
        "tasks differ (only classification into multilabel is allowed)"
    )


@dataclass
class _Merge:
    src_session: Session
    src: Dataset
    session: Session
    dest: Dataset
    mapping: dict[str, str]
    mode: str
    report: MergeReport = field(default_factory=MergeReport)

    def __post_init__(self) -> None:
        names = {c.id: c.name for c in self.src.classes}
        self.src_names = {i: self.mapping.get(n, n) for i, n in names.items()}
        self.author = bulk_author("merge")
        stmt = select(Image.path).where(Image.dataset_id == self.dest.id)
        self.paths = set(self.session.scalars(stmt))

    def classes(self) -> None:
        have = {c.name for c in self.dest.classes}
        start = max((c.position for c in self.dest.classes), default=-1) + 1
        for src_cls in sorted(self.src.classes, key=lambda c: c.position):
            name = self.src_names[src_cls.id]
            if name not in have:
                pos = start + len(self.report.classes_added)
                cls = LabelClass(dataset_id=self.dest.id, name=name, position=pos,
                                 color=color_for(pos))  # fmt: skip
                self.dest.classes.append(cls)
                have.add(name)
                self.report.classes_added.append(name)
        self.session.commit()
        self.dest_ids = {c.name: c.id for c in self.dest.classes}

    def batch(self, rows: list[Image]) -> None:
        labels = self._src_labels([r.id for r in rows])
        existing = self._dest_images([r.sha256 for r in rows])
        group = Group(self.author)
        self.created: list[Annotation] = []
        added = [(row, self._add(row)) for row in rows if row.sha256 not in existing]
        self.session.flush()
        for row, image in added:
            for ann in labels.get(row.id, []):
                self._copy(image, ann, ann.review)
        for row in rows:
            if row.sha256 in existing:
                self.report.images_matched += 1
                self._match(existing[row.sha256], labels.get(row.id, []), group)
        self.session.flush()
        for new in self.created:
            group.add(self.dest.id, "create", image_id=new.image_id, annotation_id=new.id,
                      after=snapshot(new))  # fmt: skip
        group.flush(self.session)
        self.session.commit()

    def _src_labels(self, ids: list[int]) -> dict[int, list[Annotation]]:
        stmt = (
            select(Annotation)
            .where(Annotation.image_id.in_(ids), Annotation.review != "rejected")
            .order_by(Annotation.id)
        )
        out: dict[int, list[Annotation]] = {}
        for ann in self.src_session.scalars(stmt):
            out.setdefault(ann.image_id, []).append(ann)
        return out

    def _dest_images(self, shas: list[str]) -> dict[str, Image]:
        stmt = select(Image).where(Image.dataset_id == self.dest.id, Image.sha256.in_(shas))
        return {img.sha256: img for img in self.session.scalars(stmt)}

    def _add(self, row: Image) -> Image:
        path = stored_path(self.dest, resolve_path(self.src, row.path))
        if path in self.paths:  # another photo under that name: keep both
            path = str(Path(path).with_name(f"merged-{row.sha256[:8]}-{Path(path).name}"))
        self.paths.add(path)
        image = Image(
            dataset_id=self.dest.id, path=path, sha256=row.sha256,
            width=row.width, height=row.height, orientation=row.orientation,
            size_bytes=row.size_bytes, split=row.split, status=row.status, revision=1,
        )  # fmt: skip
        self.session.add(image)
        self.report.images_added += 1
        return image

    def _copy(self, image: Image, ann: Annotation, review: str) -> None:
        new = Annotation(
            dataset_id=self.dest.id, task=self.dest.task, image_id=image.id,
            class_id=self.dest_ids[self.src_names[ann.class_id]], kind=ann.kind, x=ann.x,
            y=ann.y, w=ann.w, h=ann.h, iscrowd=ann.iscrowd, points=ann.points, source="human",
            run_id=None, score=ann.score, review=review, note=ann.note, author=ann.author,
            revision=1,
        )  # fmt: skip
        self.session.add(new)
        self.created.append(new)
        self.report.labels_added += 1

    def _match(self, image: Image, anns: list[Annotation], group: Group) -> None:
        mine = list(self.session.scalars(select(Annotation).where(Annotation.image_id == image.id)))
        anns = [a for a in anns if a.review == "accepted"]
        theirs = sorted(self._key(a.class_id, a, self.src_names) for a in anns)
        names = {c.id: c.name for c in self.dest.classes}
        accepted = sorted(self._key(a.class_id, a, names) for a in mine if a.review == "accepted")
        pending = [self._key(a.class_id, a, names) for a in mine if a.review == "pending"]
        if (
            not theirs
            or accepted == theirs
            or all(pending.count(k) >= theirs.count(k) for k in theirs)
        ):
            return  # nothing to bring, the same labels, or merged already as pending
        if not accepted:  # DEST holds no label of its own: SRC's are welcome
            for ann in anns:
                self._copy(image, ann, "accepted")
            image.status = "labeled" if image.status == "unlabeled" else image.status
            image.revision += 1
            return
        self.report.conflicts += 1
        if self.mode == "keep":
            return
        if self.mode == "theirs":
            for ann in mine:
                if ann.review == "accepted":
                    remove(self.session, group, ann)
        if self.mode == "both":
            self._to_pending(image, [a for a in mine if a.review == "accepted"], group)
        for ann in anns:
            self._copy(image, ann, "accepted" if self.mode == "theirs" else "pending")
        if self.mode == "review":
            image.flag = f"merge from {self.src.name}: its labels differ from this dataset's"
        image.revision += 1

    def _to_pending(self, image: Image, anns: list[Annotation], group: Group) -> None:
        for ann in anns:
            before = snapshot(ann)
            ann.review, ann.revision = "pending", ann.revision + 1
            group.add(self.dest.id, "review", image_id=image.id, annotation_id=ann.id,
                      before=before, after=snapshot(ann))  # fmt: skip

    @staticmethod
    def _key(class_id: int, ann: Annotation, names: dict[int, str]) -> Key:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return (names[class_id], ann.kind, r(ann.x), r(ann.y), r(ann.w), r(ann.h), ann.iscrowd)


def merge(
    src_session: Session, src: Dataset, session: Session, dest: Dataset, *,
    mapping: dict[str, str] | None = None, on_conflict: str = "keep",
    progress: ProgressFn | None = None,
) -> MergeReport:  # fmt: skip
    """Merge `src` (read through `src_session`) into `dest`; commits after each batch."""
    if on_conflict not in CONFLICT_MODES:
        raise InvalidInputError(
            f"--on-conflict {on_conflict!r}: one of {', '.join(CONFLICT_MODES)}"
        )
    if src_session is session and src.id == dest.id:
        raise InvalidInputError("cannot merge a dataset into itself")
    check_tasks(src, dest)
    mapping = mapping or {}
    unknown = sorted(set(mapping) - {c.name for c in src.classes})
    if unknown:
        raise InvalidInputError(f"--map names classes {src.name!r} lacks: {', '.join(unknown)}")
    job = _Merge(src_session, src, session, dest, mapping, on_conflict)
    job.classes()
    ids = [r[0] for r in fetch_all(src_session.connection(), _ids(src))]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        job.batch(
            list(src_session.scalars(select(Image).where(Image.id.in_(chunk)).order_by(Image.id)))
        )
        if progress:
            progress(min(start + BATCH, len(ids)), len(ids))
    return job.report


def _ids(src: Dataset) -> Any:
    return select(Image.id).where(Image.dataset_id == src.id).order_by(Image.id)
