"""Near-duplicate images: pHashes backfilled for images added before hashing existed (or whose
pixels failed to decode then), pairs within a Hamming distance found with numpy, confirmed by
embedding cosine where both images have an embedding, and joined into groups (connected
components) that the store keeps.

The search is exact and needs no index library: by the pigeonhole principle two 64-bit hashes
at most d bits apart agree exactly on at least one of d + 1 disjoint bit chunks, so only hashes
sharing a chunk value (neighbours once sorted by it) are compared, with XOR and popcount.
numpy and scipy are imported inside functions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from annotator.errors import InvalidInputError, MissingDependencyError
from annotator.store.dupes import (
    images_without_phash,
    load_phashes,
    phash_file,
    replace_groups,
    write_phashes,
)
from annotator.store.embeddings import embedding_counts, load_embeddings
from annotator.store.images import resolve_path
from annotator.store.models import Dataset
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    import numpy as np

BATCH = 500
MIN_COSINE = 0.9


@dataclass
class DupesReport:
    hashed: int = 0  # pHashes backfilled by this run
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    images: int = 0  # images searched (those with a pHash)
    pairs: int = 0  # pairs within the distance
    rejected_by_embedding: int = 0  # of those, pairs the embeddings say differ
    embedding_model: str | None = None
    groups: int = 0
    grouped_images: int = 0
    marked: int = 0  # images still marked duplicates
    seconds: float = 0.0  # the search and grouping, hashing excluded


def require_imagehash() -> None:
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "finding near-duplicates needs imagehash: pip install 'annotator[learn]'"
        ) from None


def backfill_phashes(
    session: Session, ds: Dataset, progress: ProgressFn | None = None, workers: int = 4
) -> tuple[int, list[tuple[str, str]]]:
    """Compute the pHash of every image of `ds` that has none (threads decode; one commit per
    batch, so a killed run keeps what it did). Returns (hashed, [(path, reason) unreadable])."""
    todo = images_without_phash(session, ds.id)
    hashed, bad = 0, list[tuple[str, str]]()
    if progress:
        progress(0, len(todo))
    for done, results in _hashed_batches(ds, todo, workers):
        ok = [(image_id, value) for image_id, value, _ in results if isinstance(value, int)]
        bad.extend((path, str(value)) for _, value, path in results if isinstance(value, str))
        write_phashes(session, ok)
        hashed += len(ok)
        if progress:
            progress(done, len(todo))
    return hashed, bad


def _hashed_batches(
    ds: Dataset, todo: list[tuple[int, str]], workers: int
) -> Iterator[tuple[int, list[tuple[int, int | str, str]]]]:
    def one(item: tuple[int, str]) -> tuple[int, int | str, str]:
        image_id, stored = item
        path = resolve_path(ds, stored)
        try:
            value = phash_file(str(path))
        except Exception as exc:  # unreadable, vanished or undecodable: reported, not fatal
            return image_id, f"cannot hash ({type(exc).__name__}: {exc})", str(path)
        return image_id, value if value is not None else "imagehash missing", str(path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            yield start + len(chunk), list(pool.map(one, chunk))


def _chunks(max_distance: int) -> list[tuple[int, int]]:
    """(shift, width) of max_distance + 1 disjoint bit chunks covering 64 bits."""
    count = max_distance + 1
    widths = [64 // count + (1 if i < 64 % count else 0) for i in range(count)]
    shifts = [sum(widths[:i]) for i in range(count)]
    return list(zip(shifts, widths, strict=True))


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i < j) of `hashes` (uint64) at most `max_distance` bits apart, as an
    M x 2 array, and their distances. Exact (see the module docstring)."""
    import numpy as np

    if not 0 <= max_distance < 32:
        raise InvalidInputError(f"--max-distance {max_distance}: choose 0 to 31 bits")
    found: list[np.ndarray] = []
    for shift, width in _chunks(max_distance):
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        found.extend(_same_key_pairs(hashes, keys[order], order, max_distance))
    if not found:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    distances = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]]).astype(np.int64)
    return pairs, distances


def _same_key_pairs(
    hashes: np.ndarray, sorted_keys: np.ndarray, order: np.ndarray, max_distance: int
) -> Iterator[np.ndarray]:
    """Close pairs among runs of equal keys: offset by offset, positions whose key equals the
    key `offset` places further on (a shrinking set: sorted runs end)."""
    import numpy as np

    active = np.arange(len(sorted_keys) - 1)
    offset = 1
    while len(active):
        active = active[active + offset < len(sorted_keys)]
        active = active[sorted_keys[active + offset] == sorted_keys[active]]
        a, b = order[active], order[active + offset]
        close = np.bitwise_count(hashes[a] ^ hashes[b]) <= max_distance
        if close.any():
            yield np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], axis=1)
        offset += 1


def components(count: int, pairs: np.ndarray) -> np.ndarray:
    """The connected-component label of each of `count` nodes joined by `pairs`."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ones = np.ones(len(pairs), dtype=np.int8)
    graph = coo_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels)


def confirm_by_embedding(
    image_ids: list[int], pairs: np.ndarray, vectors: dict[int, np.ndarray], min_cosine: float
) -> np.ndarray:
    """A mask over `pairs`: False where both images have an embedding and their cosine
    similarity is below `min_cosine` (the hashes collide but the pictures differ)."""
    import numpy as np

    keep = np.ones(len(pairs), dtype=bool)
    for row, (i, j) in enumerate(pairs):
        a, b = vectors.get(image_ids[i]), vectors.get(image_ids[j])
        if a is not None and b is not None:
            keep[row] = float(a @ b) >= min_cosine
    return keep


def _unit_vectors(
    session: Session, ds: Dataset, model: str | None
) -> tuple[str | None, dict[int, np.ndarray]]:
    """The dataset's embeddings (of `model`, else the model embedding the most images),
    normalised, by image id."""
    import numpy as np

    counts = embedding_counts(session, ds.id)
    if model is None and counts:
        model = max(counts, key=lambda m: counts[m])
    if model is None:
        return None, {}
    if model not in counts:
        known = ", ".join(sorted(counts)) or "none"
        raise InvalidInputError(f"no embeddings of {model!r} in {ds.name!r} (embedded: {known})")
    ids, matrix = load_embeddings(session, ds.id, model)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.maximum(norms, 1e-12)
    return model, dict(zip(ids, unit, strict=True))


def find_duplicates(
    session: Session, ds: Dataset, *, max_distance: int = 6, embeddings: str | None = None,
    min_cosine: float = MIN_COSINE, progress: ProgressFn | None = None,
) -> DupesReport:  # fmt: skip
    """Backfill missing pHashes, find the near-duplicate groups of `ds` and store them
    (replacing the previous groups; decisions on images still grouped are kept). Commits."""
    require_imagehash()
    report = DupesReport()
    report.hashed, report.unreadable = backfill_phashes(session, ds, progress)
    started = time.perf_counter()
    image_ids, hashes = load_phashes(session, ds.id)
    report.images = len(image_ids)
    pairs, distances = near_pairs(hashes, max_distance)
    report.embedding_model, vectors = _unit_vectors(session, ds, embeddings)
    if vectors and len(pairs):
        keep = confirm_by_embedding(image_ids, pairs, vectors, min_cosine)
        report.rejected_by_embedding = int((~keep).sum())
        pairs, distances = pairs[keep], distances[keep]
    report.pairs = len(pairs)
    groups = group_members(image_ids, pairs, distances)
    report.marked = replace_groups(session, ds, groups)
    report.groups, report.grouped_images = len(groups), sum(len(g) for g in groups)
    report.seconds = time.perf_counter() - started
    return report


def group_members(
    image_ids: list[int], pairs: np.ndarray, distances: np.ndarray
) -> list[list[tuple[int, int]]]:
    """Groups of (image id, distance to its nearest member) from close pairs, by first id."""
    import numpy as np

    if not len(pairs):
        return []
    labels = components(len(image_ids), pairs)
    nearest = np.full(len(image_ids), 64, dtype=np.int64)
    np.minimum.at(nearest, pairs[:, 0], distances)
    np.minimum.at(nearest, pairs[:, 1], distances)
    members: dict[int, list[tuple[int, int]]] = {}
    for index in np.unique(pairs):
        members.setdefault(int(labels[index]), []).append((image_ids[index], int(nearest[index])))
    return sorted((sorted(g) for g in members.values()), key=lambda g: g[0][0])
