"""Use case: push a store dataset into its FiftyOne mirror. The first push (or `full`) writes
every image; later pushes write only the images changed since the history position recorded in
the SyncState row (plus images and labels inserted without history, renamed classes, and images
whose label counts no longer match), delete what the store no longer holds, and save the views
again. Writes are bulk (`add_samples`, `set_values`); tags set in the App and labels added there
and not pulled yet survive a rewrite. A sample whose labels were edited or deleted in the App
since the push is never rewritten: the push is refused until `review pull` took them in."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from annotator.errors import ConflictError
from annotator.review import backend as fob
from annotator.review import mirror, views
from annotator.review.convert import Existing, sample_values
from annotator.store import review_reads as reads
from annotator.store.db import reading
from annotator.store.history import position
from annotator.store.models import Dataset, SyncState
from annotator.store.types import ProgressFn, Session

BATCH = 1000


@dataclass
class PushReport:
    """What a push did."""

    dataset: str
    fo_dataset: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    rebuilt: bool = False
    position: int = 0
    samples: int = 0
    views: list[str] = field(default_factory=list)


def push(
    session: Session,
    ds: Dataset,
    *,
    fo_name: str | None = None,
    full: bool = False,
    threshold: float = views.DEFAULT_THRESHOLD,
    progress: ProgressFn | None = None,
    pulled: Collection[int] = (),
) -> PushReport:
    """Bring FiftyOne dataset `fo_name` (default `annotator-<name>`) up to date with `ds`.
    `pulled`: images whose App changes a pull has just taken in (or reported): rewritten, their
    leftovers replaced; App changes on any other sample to rewrite refuse the push."""
    fob.require_fiftyone()
    name = fo_name or fob.default_name(ds.name)
    reading(session)  # no write lock held while FiftyOne is written
    with fob.quiet():
        return _Push(session, ds, name, progress, set(pulled)).run(full, threshold)


def sync_state(session: Session, ds: Dataset, fo_name: str) -> SyncState | None:
    return reads.sync_state(session, ds, fob.target_key(fo_name))


def class_map(ds: Dataset) -> dict[str, list[str]]:
    return {str(c.id): [c.name, c.color] for c in ds.classes}


class _Push:
    """One push: the state it reads once, then the steps of `run`."""

    def __init__(self, session: Session, ds: Dataset, fo_name: str,
                 progress: ProgressFn | None, pulled: set[int]) -> None:  # fmt: skip
        self.session, self.ds, self.fo_name = session, ds, fo_name
        self.progress, self.pulled = progress, pulled
        self.state = sync_state(session, ds, fo_name)
        self.report = PushReport(ds.name, fo_name)
        self.done = self.total = 0
        self.fods: Any = None
        self.sample_of: dict[int, str] = {}

    def run(self, full: bool, threshold: float) -> PushReport:
        token = self.state.info.get("token") if self.state else None
        self.fods, created = fob.open_mirror(self.ds, self.fo_name, token, full)
        if created:
            self._claim()
        rebuild = full or created or not self._info().get("complete", False)
        self.report.rebuilt = rebuild
        started = datetime.now(UTC)
        pos = position(self.session, self.ds.id)
        last_label = reads.last_annotation_id(self.session, self.ds)
        store_ids = reads.image_ids(self.session, self.ds)
        strays = self._index(set(store_ids))
        if not rebuild:
            strays += self._readded()
        dirty = sorted(set(store_ids) if rebuild else self._changed(store_ids))
        self.total = len(strays) + len(dirty)
        self._tick(0)
        self._delete(strays)
        self._write(dirty)
        extra = sorted(self._miscounted())
        self.total += len(extra)
        self._write(extra)
        if rebuild or self._classes_changed():
            fob.set_classes(self.fods, self.ds)
        self.report.views = views.save(self.fods, threshold)
        self._record(started, pos, last_label, threshold)
        self.report.samples = len(self.fods)
        return self.report

    def _info(self) -> dict[str, Any]:
        return self.state.info if self.state else {}

    def _claim(self) -> None:
        """Name the new FiftyOne dataset in the SyncState row before writing to it, marked
        incomplete: a push cut short is finished by the next one instead of refused."""
        self.session.commit()  # end the read transaction: this write takes the lock anew
        state = self.state or SyncState(dataset_id=self.ds.id, target=fob.target_key(self.fo_name))
        state.position = 0
        state.info = {"fo_dataset": self.fo_name, "token": self.fods.info.get(fob.TOKEN_KEY),
                      "complete": False}  # fmt: skip
        self.session.add(state)
        self.session.commit()
        self.state = state

    def _index(self, store_ids: set[int]) -> list[str]:
        """Map images to samples; returns the samples to delete."""
        strays: list[str] = []
        for image_id, sids in mirror.sample_ids(self.fods).items():
            if image_id in store_ids:
                self.sample_of[image_id] = sids[0]
                strays.extend(sids[1:])
            else:
                strays.extend(sids)
        return strays

    def _readded(self) -> list[str]:
        """Samples of images registered since the last push under an id FiftyOne already
        shows (SQLite reuses the id of a deleted newest row): replaced, not updated."""
        assert self.state is not None
        since = self.state.info.get("started_at")
        if not since:
            return []
        fresh = reads.added_since(self.session, self.ds, datetime.fromisoformat(since))
        return [self.sample_of.pop(i) for i in sorted(fresh) if i in self.sample_of]

    def _changed(self, store_ids: list[int]) -> set[int]:
        """Images to rewrite: in history since the last push, holding labels inserted since,
        holding a renamed class, with a suspect flag raised or cleared since the last push
        began, not in FiftyOne yet, or just pulled."""
        assert self.state is not None
        info, session, ds = self.state.info, self.session, self.ds
        if info.get("root") != ds.root:
            return set(store_ids)
        old = info.get("classes", {})
        renamed = [int(k) for k, v in class_map(ds).items() if old.get(k, [None])[0] != v[0]]
        dirty = reads.touched_since(session, ds, self.state.position)
        dirty |= reads.with_new_labels(session, ds, int(info.get("last_annotation_id", 0)))
        dirty |= reads.with_classes(session, ds, renamed)
        since = info.get("started_at")
        if since:
            dirty |= reads.flags_changed_since(session, ds, datetime.fromisoformat(since))
        dirty |= {i for i in store_ids if i not in self.sample_of}
        return (dirty | self.pulled) & set(store_ids)

    def _classes_changed(self) -> bool:
        return self._info().get("classes") != class_map(self.ds)

    def _tick(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def _delete(self, sample_ids: list[str]) -> None:
        if sample_ids:
            self.fods.delete_samples(sample_ids)
            self.report.deleted += len(sample_ids)
            self._tick(len(sample_ids))

    def _write(self, image_ids: list[int]) -> None:
        for batch in reads.chunks(image_ids, BATCH):
            self._write_batch(reads.load_images(self.session, self.ds, batch))
            self._tick(len(batch))

    def _write_batch(self, images: list[reads.ImageRecord]) -> None:
        task = self.ds.task
        old = [self.sample_of[r.id] for r in images if r.id in self.sample_of]
        self._add_bare([r for r in images if r.id not in self.sample_of])
        kept = mirror.existing(self.fods, task, old)
        self._refuse_app_changes(images, kept)
        values = {self.sample_of[r.id]: sample_values(task, r, kept.get(self.sample_of[r.id]))
                  for r in images}  # fmt: skip
        for name in _field_names(values):
            column = {sid: v[name] for sid, v in values.items() if name in v}
            self.fods.set_values(name, column, key_field="id", validate=False)
        undecided = [sid for sid, v in values.items() if fob.DISAGREEMENT not in v]
        if undecided:
            found = views.box_disagreements(self.fods, undecided)
            self.fods.set_values(fob.DISAGREEMENT, found, key_field="id", validate=False)
        self.report.updated += len(old)

    def _refuse_app_changes(self, images: list[reads.ImageRecord],
                            kept: dict[str, Existing]) -> None:  # fmt: skip
        """A rewrite would undo edits and deletes made in the App and not pulled yet."""
        changed: list[str] = []
        for r in images:
            found = kept.get(self.sample_of[r.id])
            if found is not None and r.id not in self.pulled:
                changed += [f"{r.filepath}: {change}" for change in found.app_changes]
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise ConflictError(
                f"FiftyOne dataset {self.fo_name!r} holds changes made in the App that were not "
                f"pulled: {changed[0]}{more}; run annotator review pull {self.ds.name} first"
            )

    def _add_bare(self, images: list[reads.ImageRecord]) -> None:
        """New samples with only their file and image id; `_write_batch` fills the rest."""
        if not images:
            return
        fo = fob.require_fiftyone()
        samples = [fo.Sample(filepath=r.filepath, **{fob.ID: r.id}) for r in images]
        ids = self.fods.add_samples(samples, progress=False)
        del samples  # no live Sample objects: set_values would reload each of them
        self.sample_of.update(zip((r.id for r in images), ids, strict=True))
        self.report.added += len(images)

    def _miscounted(self) -> set[int]:
        """Images whose labels in FiftyOne no longer match the store's count (labels removed
        by a bulk delete that wrote no history); a cheap total check first."""
        task = self.ds.task
        totals = reads.label_totals(self.session, self.ds)
        paths = {r: f"{fob.list_path(task, f)}.{fob.ID}" for r, f in fob.FIELD_FOR_REVIEW.items()}
        expected = {r: _shown(task, r, *totals.get(r, (0, 0))) for r in paths}
        if all(self.fods.count(paths[r]) == expected[r] for r in paths):
            return set()
        store = reads.label_counts_per_image(self.session, self.ds)
        columns = self.fods.values([fob.ID, *paths.values()])
        wrong: set[int] = set()
        for image_id, *per_field in zip(*columns, strict=True):
            for review, value in zip(paths, per_field, strict=True):
                want = store.get((image_id, review), 0)
                if _count(value) != _shown(task, review, want, min(want, 1)):
                    wrong.add(image_id)
        return wrong & set(self.sample_of)

    def _record(self, started: datetime, pos: int, last_label: int, threshold: float) -> None:
        session = self.session
        session.commit()  # end the read transaction before writing
        state = self.state or SyncState(dataset_id=self.ds.id, target=fob.target_key(self.fo_name))
        state.position = pos
        state.info = {
            "fo_dataset": self.fo_name,
            "token": self.fods.info.get(fob.TOKEN_KEY),
            "last_annotation_id": last_label,
            "classes": class_map(self.ds),
            "root": self.ds.root,
            "threshold": threshold,
            "started_at": started.isoformat(),
            "complete": True,
        }
        session.add(state)
        session.commit()
        self.report.position = pos


def _field_names(values: dict[str, dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for sample in values.values():
        names.update(dict.fromkeys(sample))
    return list(names)


def _shown(task: str, review: str, labels: int, images: int) -> int:
    """How many labels FiftyOne shows: a classification shows one accepted label per image."""
    return images if task == "classification" and review == "accepted" else labels


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, list):
        return sum(v is not None for v in value)
    return 1
