"""Use case: export a dataset as COCO, YOLO or ImageFolder. The store streams the samples of each
split (bounded memory), the format's writer writes labels as they come, `MediaPlacer` puts the
images, and `manifest.json` records what was written. The export is built in a hidden sibling
folder and renamed into place at the end: an interrupted export leaves no half-written DEST,
and a non-empty DEST is replaced only with `overwrite`. The whole export reads one snapshot of
the store, so the history position in the manifest is exactly what it holds. It reads through
plain SQL (`annotator.store.export_reads`): from a SQLite file without loading SQLAlchemy,
except an export at a snapshot (`at`), which reads the snapshot through a session."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from annotator import __version__
from annotator.errors import ConflictError, InvalidInputError
from annotator.formats.common import UniqueNames, Writer, norm, within, write_error
from annotator.formats.manifest import (
    FileList,
    Manifest,
    SplitCounts,
    Tally,
    write_manifest,
)
from annotator.formats.media import MediaPlacer
from annotator.formats.registry import get_format
from annotator.store import export_reads as reads
from annotator.store.export_reads import ExportDataset, reviews_for
from annotator.store.incoming import gc_paused

if TYPE_CHECKING:
    from annotator.store.rewind import SnapshotView
    from annotator.store.summary import Rows
    from annotator.store.types import ProgressFn, Session

PROGRESS_EVERY = 256


@dataclass
class ExportReport:
    """What an export wrote. `manifest.files` holds only the files the writer returned at the
    end (COCO's label files, YOLO's `data.yaml`): a writer's `listed` label files (one per
    image) are in `manifest.json` only, never all in memory."""

    dest: Path
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        m = self.manifest
        images = sum(s.images for s in m.splits.values())
        labels = sum(s.labels for s in m.splits.values())
        negatives = sum(s.negatives for s in m.splits.values())
        per_split = ", ".join(f"{name} {s.images}" for name, s in m.splits.items())
        left = sum(m.left_out.values())
        return (
            f"exported {images} images ({negatives} negatives), {labels} labels of "
            f"{m.dataset!r} as {m.format} to {self.dest} ({per_split}); {left} images left out"
        )


def export_dataset(
    source: Session | Rows,
    fmt: str,
    name: str,
    dest: Path,
    *,
    media: str = "copy",
    overwrite: bool = False,
    include_pending: bool = False,
    progress: ProgressFn | None = None,
    at: str | None = None,
    allow_leakage: bool = False,
) -> ExportReport:
    """Export dataset `name` to `dest` in format `fmt` (as snapshot `at` recorded it, when
    given) from `source`: a session, or `Rows` over one read transaction (`at` needs a
    session). Reads only: commits nothing. Refused when a group of near-duplicates (`dupes`)
    spans two splits, unless `allow_leakage`."""
    rows, session = _reader(source)
    spec = get_format(fmt)
    ds = reads.dataset(rows, name)
    spec.check(ds.task, ds.name)
    placer = MediaPlacer(media)
    dest = norm(Path(dest).expanduser())
    check_dest(dest, ds, overwrite)
    view = _snapshot(session, ds, at) if at else None
    splits = view.splits() if view else reads.splits_present(rows, ds)
    if not (allow_leakage or view):
        reads.check_leakage(rows, ds)
    if not splits:
        raise InvalidInputError(
            f"dataset {ds.name!r} has no image with a split: run "
            f"annotator split {ds.name} --ratios train=0.8,val=0.2"
        )
    with staging(dest, overwrite) as tmp, gc_paused():
        names = view.class_names() if view else ds.class_names()
        with spec.writer(ds.task, tmp, names, ds.name) as writer:  # aborted on failure
            manifest = _manifest(rows, ds, fmt, media, include_pending, view)
            job = _Job(rows, ds, writer, placer, include_pending, progress, view)
            manifest.splits, manifest.left_out["no_single_class"] = job.run(splits)
            manifest.files = writer.close(splits)
        manifest.extra.update(writer.extra, rotated_images=placer.rotated)
        listed: FileList | None = getattr(writer, "listed", None)  # label files, spooled
        write_manifest(tmp, manifest, listed)
    return ExportReport(dest, manifest, writer.warnings + placer.warnings())


def _reader(source: Session | Rows) -> tuple[Rows, Session | None]:
    """The `Rows` an export reads through, and the session behind them (None: plain `Rows`)."""
    if callable(source):
        return source, None
    from annotator.store.bulk_sql import driver_rows

    _one_snapshot(source)
    return driver_rows(source), source


def _one_snapshot(session: Session) -> None:
    """Read the whole export from one snapshot (SQLite's read transaction already is one; a
    transaction the caller has open keeps its own isolation)."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _snapshot(session: Session | None, ds: ExportDataset, at: str) -> SnapshotView:
    """Dataset `ds` as snapshot `at` recorded it."""
    if session is None:
        raise ValueError("an export at a snapshot reads through a session")
    from annotator.store.datasets import get_dataset
    from annotator.store.versions import snapshot_view

    return snapshot_view(session, get_dataset(session, ds.name), at)


def _manifest(
    rows: Rows, ds: ExportDataset, fmt: str, media: str, include_pending: bool,
    view: SnapshotView | None = None,
) -> Manifest:  # fmt: skip
    if view is not None:
        left, at = view.left_out(reviews_for(include_pending)), view.position
    else:
        left, at = reads.left_out(rows, ds, include_pending), reads.position(rows, ds)
    return Manifest(
        version=__version__,
        format=fmt,
        dataset=ds.name,
        task=ds.task,
        classes=view.class_names() if view else ds.class_names(),
        history_position=at,
        snapshot=view.tag if view else reads.tag_at(rows, ds, at),
        include_pending=include_pending,
        media=media,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        splits={},
        left_out=left,
    )


@dataclass
class _Job:
    """Streams every split through the writer and the media placer, counting as it goes."""

    rows: Rows
    ds: ExportDataset
    writer: Writer
    placer: MediaPlacer
    include_pending: bool
    progress: ProgressFn | None
    view: SnapshotView | None = None
    done: int = 0
    index: dict[int, int] = field(default_factory=dict)  # class id: position (`add_rows`)

    def run(self, splits: list[str]) -> tuple[dict[str, SplitCounts], int]:
        self.total = self.view.total() if self.view else reads.count_exportable(self.rows, self.ds)
        self.index = reads.class_index(self.ds)
        if self.progress:
            self.progress(0, self.total)
        names = UniqueNames()
        counts: dict[str, SplitCounts] = {}
        skipped = 0
        for split in splits:
            tally = Tally(self.index)
            skipped += self._write_split(split, names, tally)
            order = self.view.class_names() if self.view else self.ds.class_names()
            counts[split] = tally.counts(order)
        if self.progress:
            self.progress(self.total, self.total)
        return counts, skipped

    def _write_split(self, split: str, names: UniqueNames, counts: Tally) -> int:
        self.writer.begin(split)
        add_rows = getattr(self.writer, "add_rows", None)
        if add_rows is not None and self.view is None:
            skipped = self._write_rows(split, names, counts, add_rows)
            self.writer.end(split)
            return skipped
        skipped = 0
        samples = (
            self.view.samples(split, reviews_for(self.include_pending))
            if self.view
            else reads.export_samples(
                self.rows, self.ds, split, include_pending=self.include_pending
            )
        )
        for sample in samples:
            name = names.name(sample)
            target = self.writer.image_path(split, sample, name)
            if target is None:
                skipped += 1
                continue
            self.placer.place(sample, target)
            self.writer.add(split, sample, name)
            counts.count(sample)
            self.done += 1
            if self.progress and self.done % PROGRESS_EVERY == 0:
                self.progress(self.done, self.total)
        self.writer.end(split)
        return skipped

    def _write_rows(
        self, split: str, names: UniqueNames, counts: Tally, add_rows: Callable[..., None]
    ) -> int:
        """`_write_split`'s loop for a writer that takes the store's label rows as they are."""
        skipped = 0
        rows = reads.export_rows(self.rows, self.ds, split, include_pending=self.include_pending)
        image_path, place, index = self.writer.image_path, self.placer.place, self.index
        for sample, labels in rows:
            name = names.name(sample)
            target = image_path(split, sample, name)
            if target is None:
                skipped += 1
                continue
            place(sample, target)
            add_rows(split, sample, name, labels, index)
            counts.count_rows(labels)
            self.done += 1
            if self.progress and self.done % PROGRESS_EVERY == 0:
                self.progress(self.done, self.total)
        return skipped


def check_dest(dest: Path, ds: ExportDataset, overwrite: bool) -> None:
    """Refuse a DEST that is a file, a non-empty folder (unless `overwrite`), or a folder that
    holds the dataset's own images (replacing it would delete them)."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInputError(f"{dest} exists and is not a folder")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    if not overwrite:
        raise ConflictError(f"{dest} is not empty: pass --overwrite to replace it")
    if ds.root and within(dest, ds.root) is not None:
        raise InvalidInputError(
            f"{dest} holds the images of dataset {ds.name!r} ({ds.root}): "
            "choose another destination"
        )


@contextmanager
def staging(dest: Path, overwrite: bool = False) -> Iterator[Path]:
    """A hidden sibling folder to build in, renamed to `dest` when the block succeeds and
    removed when it fails (an interrupted export never leaves a half-written `dest`). A file
    system error (no space, no permission) becomes one error naming `dest`."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    except OSError as exc:
        raise write_error(dest, exc, None) from exc
    try:
        yield tmp
        _swap(tmp, dest, overwrite)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(dest, exc, tmp) from exc
        raise


def _swap(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Rename `tmp` to `dest` in one step that fails when `dest` has been filled meanwhile (by
    another export), unless `overwrite`: two exports into one new folder never both win."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is an ordinary folder
    try:
        os.rename(tmp, dest)  # replaces an absent or empty folder only
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        if not overwrite:
            raise ConflictError(
                f"{dest} was written by another export meanwhile: pass --overwrite to replace it"
            ) from exc
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
