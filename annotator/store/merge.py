"""Use case: merge dataset SRC into dataset DEST, possibly from another database. Images are
matched by SHA-256 (the same photo in both is one image); classes by name after `--map`
renaming (classes DEST lacks are added). An image new to DEST comes with its split, status and
its human and accepted or pending labels; an image in both whose labels differ is a conflict,
settled by `on_conflict`: keep DEST's, take SRC's (`theirs`), keep both as pending for review
(`both`), or add SRC's as pending and flag the image for a person (`review`). Work goes in
batches, one transaction and history group each: a kill leaves whole batches, and a re-run
finds what is merged already (same labels, or SRC's labels already pending) and skips it.
A batch is planned here on plain rows and written by `annotator.store.merge_sql` in a few
whole-batch statements, still one history event per label created, deleted or made pending."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store import merge_sql as sql
from annotator.store.bulk import bulk_author, fetch_all, gc_paused, now_param
from annotator.store.datasets import color_for, validate_class_name
from annotator.store.images import resolve_path, stored_path
from annotator.store.models import Dataset, Image, LabelClass
from annotator.store.types import ProgressFn

CONFLICT_MODES = ("keep", "theirs", "both", "review")
COPIED = ("accepted", "pending")  # the source's labels a merge brings (not rejected, not votes)
BATCH = 1000
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
class _Batch:
    """What one batch writes: labels to create, delete or turn pending, images to update."""

    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)


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
        self.dest_names = {c.id: c.name for c in self.dest.classes}
        self.dest_id, self.task = self.dest.id, self.dest.task

    def batch(self, ids: list[int]) -> None:
        """Merge the source images `ids`: one transaction, one history group."""
        src_conn = self.src_session.connection()
        rows = sql.read_images(src_conn, ids)
        labels = sql.read_labels(src_conn, ids, COPIED)
        conn = self.session.connection()
        existing = sql.images_by_sha(conn, self.dest_id, [r["sha256"] for r in rows])
        work = _Batch()
        new_ids = self._add_images(conn, [r for r in rows if r["sha256"] not in existing])
        for row in rows:
            if row["sha256"] not in existing:
                for lab in labels.get(row["id"], []):
                    self._copy(work, new_ids[row["sha256"]], lab, lab["review"])
        matched = [r for r in rows if r["sha256"] in existing]
        mine = sql.read_labels(conn, [existing[r["sha256"]][0] for r in matched])
        for row in matched:
            image = existing[row["sha256"]]
            self.report.images_matched += 1
            self._match(work, image, labels.get(row["id"], []), mine.get(image[0], []))
        self._write(conn, work)
        self.session.commit()

    def _add_images(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        now = now_param(conn)
        values = [
            (self.dest_id, self._path(r), r["sha256"], r["width"], r["height"], r["orientation"],
             r["size_bytes"], r["split"], r["status"], None, 1, now, now)
            for r in rows
        ]  # fmt: skip
        sql.insert_images(conn, values)
        self.report.images_added += len(rows)
        found = sql.images_by_sha(conn, self.dest_id, [r["sha256"] for r in rows])
        return {sha: found[sha][0] for sha in found}

    def _path(self, row: dict[str, Any]) -> str:
        path = stored_path(self.dest, resolve_path(self.src, row["path"]))
        if path in self.paths:  # another photo under that name: keep both
            path = str(Path(path).with_name(f"merged-{row['sha256'][:8]}-{Path(path).name}"))
        self.paths.add(path)
        return path

    def _copy(self, work: _Batch, image_id: int, lab: dict[str, Any], review: str) -> None:
        class_id = self.dest_ids[self.src_names[lab["class_id"]]]
        work.created.append({
            **lab, "id": None, "dataset_id": self.dest_id, "task": self.task,
            "image_id": image_id, "class_id": class_id, "source": "human", "run_id": None,
            "review": review, "revision": 1, "layer": None,
        })  # fmt: skip
        self.report.labels_added += 1

    def _match(
        self, work: _Batch, image: Any, anns: list[dict[str, Any]], mine: list[dict[str, Any]]
    ) -> None:
        image_id, status, revision, flag = image
        anns = [a for a in anns if a["review"] == "accepted"]
        theirs = sorted(_key(a, self.src_names) for a in anns)
        accepted = [a for a in mine if a["review"] == "accepted"]
        ours = sorted(_key(a, self.dest_names) for a in accepted)
        pending = [_key(a, self.dest_names) for a in mine if a["review"] == "pending"]
        if not theirs or ours == theirs or all(pending.count(k) >= theirs.count(k) for k in theirs):
            return  # nothing to bring, the same labels, or merged already as pending
        if not ours:  # DEST holds no label of its own: SRC's are welcome
            for ann in anns:
                self._copy(work, image_id, ann, "accepted")
            status = "labeled" if status == "unlabeled" else status
            work.images.append(_image(image_id, status, flag, revision + 1))
            return
        self.report.conflicts += 1
        if self.mode == "keep":
            return
        if self.mode == "theirs":
            work.deleted.extend(accepted)
        if self.mode == "both":
            work.pending.extend(accepted)
        for ann in anns:
            self._copy(work, image_id, ann, "accepted" if self.mode == "theirs" else "pending")
        if self.mode == "review":
            flag = f"merge from {self.src.name}: its labels differ from this dataset's"
        work.images.append(_image(image_id, status, flag, revision + 1))

    def _write(self, conn: Connection, work: _Batch) -> None:
        """The batch's changes and one history event per label changed, in that order:
        deletions, labels turned pending, labels created."""
        now, group = now_param(conn), uuid.uuid4().hex
        events = [sql.event(self.dest_id, "delete", a, before=a) for a in work.deleted]
        for ann in work.pending:
            after = {**ann, "review": "pending", "revision": ann["revision"] + 1}
            events.append(sql.event(self.dest_id, "review", ann, before=ann, after=after))
        new_ids = sql.new_label_ids(conn, len(work.created))
        for lab, new_id in zip(work.created, new_ids, strict=True):
            lab["id"] = new_id
        sql.delete_labels(conn, [a["id"] for a in work.deleted])
        sql.make_pending(conn, [a["id"] for a in work.pending])
        sql.insert_events(conn, events, self.author, now, group)
        sql.insert_labels(conn, work.created, now)
        sql.create_events(conn, work.created, self.author, now, group)
        sql.update_images(conn, work.images)


def _image(image_id: int, status: str, flag: str | None, revision: int) -> dict[str, Any]:
    return {"b_id": image_id, "b_status": status, "b_flag": flag, "b_revision": revision}


def _key(ann: dict[str, Any], names: dict[int, str]) -> Key:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return (names[ann["class_id"]], ann["kind"], r(ann["x"]), r(ann["y"]), r(ann["w"]),
            r(ann["h"]), bool(ann["iscrowd"]))  # fmt: skip


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
    with gc_paused():
        for start in range(0, len(ids), BATCH):
            job.batch(ids[start : start + BATCH])
            if progress:
                progress(min(start + BATCH, len(ids)), len(ids))
    return job.report


def _ids(src: Dataset) -> Any:
    return select(Image.id).where(Image.dataset_id == src.id).order_by(Image.id)
