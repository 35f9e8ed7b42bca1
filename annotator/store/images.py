"""Use case: registering image files in a dataset. Files are hashed, their headers read and their
perceptual hashes computed by worker processes (`probing`), inserted in batches (one
transaction each, so a kill -9 leaves whole batches), and bad files are reported, never stored.
Re-running after an interruption adds only what is missing. Also where an image's path is
resolved against its dataset's root."""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.imagefile import BadImage, ImageInfo, is_image_name, iter_images
from annotator.store.models import Dataset, Image, utcnow
from annotator.store.types import ProgressFn

BATCH = 500


@dataclass
class AddReport:
    added: int = 0
    duplicates: int = 0
    rejected: list[BadImage] = field(default_factory=list)
    added_ids: array[int] = field(default_factory=lambda: array("q"))  # 8 bytes an image


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


def walk(sources: Iterable[Path], bad: list[BadImage]) -> Iterator[Path]:
    """Image files named by `sources` (files or folders, folders walked recursively, each in
    sorted order), streamed; what cannot be walked is appended to `bad`."""
    for src in sources:
        if src.is_dir():
            yield from iter_images(src, bad)
        else:
            yield src


def add_images(
    session: Session,
    ds: Dataset,
    sources: Iterable[Path],
    progress: ProgressFn | None = None,
    workers: int = 4,
) -> AddReport:
    """Register every image under `sources`; commits after each batch. Memory is bounded by
    a batch (and one folder's names): the files are walked twice (a count for the progress
    bar, then in batches), and each batch is checked against the store's paths and SHA-256."""
    sources = [Path(s).expanduser() for s in sources]
    check_sources(sources)
    if ds.root is None and sources:
        first = sources[0]
        ds.root = str((first if first.is_dir() else first.parent).resolve())
    session.commit()  # a transaction holds the write lock: none is open while folders are walked
    walk_bad: list[BadImage] = []
    total = sum(1 for _ in walk(sources, walk_bad))
    report = AddReport()
    done = 0
    if progress:
        progress(done, total)
    batches = _unknown(session, ds, walk(sources, []), report)
    for walked, batch in _probed_batches(batches, total, workers):
        _insert(session, _new_rows(session, ds, batch, report), report)
        done += walked
        if progress:
            progress(done, total)
    report.rejected[:0] = walk_bad  # what could not be walked first, as it is found first
    return report


def _unknown(
    session: Session, ds: Dataset, files: Iterator[Path], report: AddReport
) -> Iterator[tuple[int, list[Path]]]:
    """`files` in batches of `BATCH`, each less the paths the dataset holds already (counted
    as duplicates): (files walked, files to probe)."""
    while chunk := list(islice(files, BATCH)):
        names = [stored_path(ds, f) for f in chunk]
        held = select(Image.path).where(Image.dataset_id == ds.id, Image.path.in_(set(names)))
        known = set(session.scalars(held))
        session.commit()  # no transaction open while images are probed
        todo = [f for f, name in zip(chunk, names, strict=True) if name not in known]
        report.duplicates += len(chunk) - len(todo)
        yield len(chunk), todo


def _new_rows(
    session: Session, ds: Dataset, batch: list[ImageInfo | BadImage], report: AddReport
) -> list[dict[str, object]]:
    """The rows of a probed batch's new images: bad files are rejected, a file whose
    SHA-256 the dataset holds (or the batch had already) is a duplicate."""
    infos = [item for item in batch if isinstance(item, ImageInfo)]
    report.rejected.extend(item for item in batch if isinstance(item, BadImage))
    shas = {info.sha256 for info in infos}
    held = select(Image.sha256).where(Image.dataset_id == ds.id, Image.sha256.in_(shas))
    seen = set(session.scalars(held)) if shas else set()
    session.commit()
    rows = []
    for info in infos:
        if info.sha256 in seen:
            report.duplicates += 1
        else:
            seen.add(info.sha256)
            rows.append(_row(ds, info))
    return rows


def _probed_batches(
    batches: Iterator[tuple[int, list[Path]]], total: int, workers: int
) -> Iterator[tuple[int, list[ImageInfo | BadImage]]]:
    """Each batch of files probed with its perceptual hash, by `probing` (worker processes
    for all but a few files: the hash decodes the image; batches probed ahead), with the
    count of files walked for it; a symlink without an image's name is refused unread."""
    from annotator.store.probing import probe_batches  # worker processes: only `add` needs them

    fed: deque[tuple[int, list[Path], list[bool]]] = deque()

    def paths() -> Iterator[list[str]]:
        for walked, files in batches:
            named = [not is_image_name(f) and f.is_symlink() for f in files]
            fed.append((walked, files, named))
            yield [str(f) for f in files]

    for results in probe_batches(paths(), total, workers, phash=True):
        walked, files, named = fed.popleft()
        yield (
            walked,
            [
                BadImage(f, "not an image file name") if refused else result
                for f, refused, result in zip(files, named, results, strict=True)
            ],
        )


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
