"""Use case: registering image files in a dataset. Files are hashed, their headers read and their
perceptual hashes computed by worker processes (`probing`), inserted in batches (one
transaction each, so a kill -9 leaves whole batches), and bad files are reported, never stored.
Re-running after an interruption adds only what is missing. Also where an image's path is
resolved against its dataset's root."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.imagefile import BadImage, ImageInfo, is_image_name, walk_images
from annotator.store.models import Dataset, Image, utcnow
from annotator.store.types import ProgressFn

BATCH = 500


@dataclass
class AddReport:
    added: int = 0
    duplicates: int = 0
    rejected: list[BadImage] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)


def stored_path(ds: Dataset, path: Path) -> str:
    """How the store names `path`: relative (POSIX) under the dataset root, else absolute."""
    absolute = path.absolute()
    if ds.root:
        try:
            return absolute.relative_to(ds.root).as_posix()
        except ValueError:
            pass
    return absolute.as_posix()


def resolve_path(ds: Dataset, stored: str) -> Path:
    """The file an image row names, wherever the dataset root is now."""
    path = Path(stored)
    return path if path.is_absolute() or not ds.root else Path(ds.root) / path


def check_sources(sources: Iterable[Path]) -> None:
    """Refuse a source that names nothing (a broken symlink is a file to report, not an error)."""
    for src in sources:
        if not (src.exists() or src.is_symlink()):
            raise InvalidInputError(f"{src}: no such file or folder")


def collect(sources: Iterable[Path]) -> tuple[list[Path], list[BadImage]]:
    """Image files named by `sources` (files or folders, folders walked recursively)."""
    sources = list(sources)
    check_sources(sources)
    files: list[Path] = []
    bad: list[BadImage] = []
    for src in sources:
        if src.is_dir():
            found, problems = walk_images(src)
            files.extend(found)
            bad.extend(problems)
        else:
            files.append(src)
    return files, bad


def add_images(
    session: Session,
    ds: Dataset,
    sources: Iterable[Path],
    progress: ProgressFn | None = None,
    workers: int = 4,
) -> AddReport:
    """Register every image under `sources`; commits after each batch."""
    sources = [Path(s).expanduser() for s in sources]
    if ds.root is None and sources:
        first = sources[0]
        ds.root = str((first if first.is_dir() else first.parent).resolve())
    session.commit()  # a transaction holds the write lock: none is open while folders are walked
    files, bad = collect(sources)
    report = AddReport(rejected=bad)
    known_paths = set(session.scalars(select(Image.path).where(Image.dataset_id == ds.id)))
    known_hashes = set(session.scalars(select(Image.sha256).where(Image.dataset_id == ds.id)))
    session.commit()  # nor while images are probed: each batch's insert takes the lock anew
    todo = []
    for f in files:
        if stored_path(ds, f) in known_paths:
            report.duplicates += 1
        else:
            todo.append(f)
    done = report.duplicates
    if progress:
        progress(done, len(files))
    for batch in _probed_batches(todo, workers):
        rows = []
        for item in batch:
            if isinstance(item, BadImage):
                report.rejected.append(item)
            elif item.sha256 in known_hashes:
                report.duplicates += 1
            else:
                known_hashes.add(item.sha256)
                rows.append(_row(ds, item))
        _insert(session, rows, report)
        done += len(batch)
        if progress:
            progress(done, len(files))
    return report


def _probed_batches(files: list[Path], workers: int) -> Iterator[list[ImageInfo | BadImage]]:
    """Each batch of `files` probed with its perceptual hash, by `probing` (worker processes
    for all but a few files: the hash decodes the image); a symlink without an image's name
    is refused unread."""
    from annotator.store.probing import probe_batches  # worker processes: only `add` needs them

    named = [not is_image_name(f) and f.is_symlink() for f in files]
    paths = ([str(f) for f in files[i : i + BATCH]] for i in range(0, len(files), BATCH))
    results = probe_batches(paths, len(files), workers, phash=True)
    for start, batch in zip(range(0, len(files), BATCH), results, strict=False):
        yield [
            BadImage(files[start + i], "not an image file name") if named[start + i] else result
            for i, result in enumerate(batch)
        ]


def _row(ds: Dataset, info: ImageInfo) -> dict[str, object]:
    now = utcnow()
    return {
        "dataset_id": ds.id,
        "path": stored_path(ds, info.path),
        "sha256": info.sha256,
        "width": info.width,
        "height": info.height,
        "orientation": info.orientation,
        "size_bytes": info.size_bytes,
        "phash": info.phash,
        "status": "unlabeled",
        "revision": 1,
        "added_at": now,
        "updated_at": now,
    }


def _insert(session: Session, rows: list[dict[str, object]], report: AddReport) -> None:
    if not rows:
        return
    ids = session.scalars(insert(Image).returning(Image.id), rows).all()
    session.commit()
    report.added += len(rows)
    report.added_ids.extend(ids)
