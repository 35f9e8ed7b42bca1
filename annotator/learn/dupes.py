"""Near-duplicate images, robust to resizing, re-encoding, brightness and crops of up to 10%.
Every image is decoded once per run (threads): its pHash is stored when it had none, and kept in
memory for this run are its shape and, for each of 37 views of it (the whole picture and views
2.5%, 5%, 7.5% and 10% smaller, anchored at each corner, edge and the centre), a pHash, a dHash
and an 8x8 grey thumbnail. A pair is a candidate when one whole picture is within a Hamming
distance of any view of the other by either hash (the two fail on different pictures: pHash on
small, blurred or low-contrast copies, where dHash's neighbour gradients still hold, and the
reverse), and is confirmed when the thumbnails correlate (brightness- and contrast-free), the
two shapes agree as far as a 10% crop allows (the hashes and thumbnails squash every picture
to a square, so a wide and a tall picture of the same texture look alike to them), and by
embedding cosine where both images have one. Groups use complete linkage: a chain of close
pairs A~B~C never puts A and C together unless they are close too.

The search is exact and needs no index library: by the pigeonhole principle two 64-bit hashes
at most d bits apart agree exactly on at least one of d + 1 disjoint bit chunks, so each view
is compared only with the whole pictures sharing a chunk value (found by binary search in the
sorted chunk values), with XOR and popcount. imagehash and numpy are imported inside
functions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from annotator.errors import InvalidInputError, MissingDependencyError
from annotator.store.dupes import (
    HASH_DECODE_SIZE,
    hash_rows,
    replace_groups,
    to_signed,
    write_phashes,
)
from annotator.store.embeddings import embedding_counts, load_embeddings
from annotator.store.images import resolve_path
from annotator.store.models import Dataset
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    import numpy as np

ALIGNMENTS = [(0.0, 0.0, 0.0)] + [
    (cut, fx, fy)
    for cut in (0.025, 0.05, 0.075, 0.1)
    for fy in (0.0, 0.5, 1.0)
    for fx in (0.0, 0.5, 1.0)
]  # (cut, share of the cut left/top): the whole picture, then views 2.5% to 10% smaller
THUMB = 8  # thumbnails are THUMB x THUMB grey pixels
BATCH = 500
MIN_COSINE = 0.9
MIN_CORRELATION = 0.93
MAX_CROP = 0.1  # the largest crop of a side that still makes a near-duplicate
SEARCHED: tuple[str, ...] = ("hashes", "dhashes")  # the Signatures hashes searched
PAIR_BUDGET = 4_000_000  # hash comparisons held in memory at once by the search


@dataclass
class DupesReport:
    hashed: int = 0  # pHashes backfilled by this run
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    images: int = 0  # images searched (those with a pHash)
    pairs: int = 0  # pairs within the distance, confirmed
    rejected_by_pixels: int = 0  # pairs within the distance whose thumbnails or shapes differ
    rejected_by_embedding: int = 0  # of those, pairs the embeddings say differ
    embedding_model: str | None = None
    groups: int = 0
    grouped_images: int = 0
    marked: int = 0  # images still marked duplicates
    seconds: float = 0.0  # the search and grouping, hashing excluded


@dataclass
class Signatures:
    """Per image: its shape, and the pHash, dHash and grey thumbnail of each ALIGNMENTS view."""

    image_ids: list[int]
    hashes: np.ndarray  # n x len(ALIGNMENTS) uint64 pHashes; column 0 the whole picture
    thumbs: np.ndarray  # n x len(ALIGNMENTS) x THUMB**2 uint8
    dhashes: np.ndarray  # n x len(ALIGNMENTS) uint64 dHashes, as `hashes`
    sizes: np.ndarray  # n x 2 (width, height) as decoded (a JPEG at a reduced scale)


class FileSignature(NamedTuple):
    """One image file's part of `Signatures` (hashes unsigned, one per ALIGNMENTS view)."""

    hashes: list[int]
    thumbs: np.ndarray
    dhashes: list[int]
    size: tuple[int, int]


def require_imagehash() -> None:
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "finding near-duplicates needs imagehash: pip install 'annotator[learn]'"
        ) from None


def signature_file(path: str) -> FileSignature:
    """The pHashes (unsigned; the first is `phash_file`'s), thumbnails and dHashes of the
    ALIGNMENTS views of an image file, as displayed, and its decoded size. The pHash is
    imagehash's (the view at 32x32, Lanczos; the 8x8 lowest DCT frequencies against their
    median), all views in one DCT call; the thumbnail is that 32x32 view averaged down; the
    dHash is imagehash's scheme (is each of 9x8 pixels brighter than its left neighbour) on the
    32x32 view."""
    import numpy as np
    import scipy.fftpack
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", HASH_DECODE_SIZE)
        grey = ImageOps.exif_transpose(img).convert("L")
    small = [
        grey.crop(box).resize((32, 32), PILImage.Resampling.LANCZOS) for box in _boxes(*grey.size)
    ]
    pixels = np.stack([np.asarray(view) for view in small])
    low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=1), axis=2)[:, :8, :8]
    bits = low.reshape(len(pixels), 64) > np.median(low.reshape(len(pixels), 64), axis=1)[:, None]
    step = 32 // THUMB
    thumbs = pixels.reshape(len(pixels), THUMB, step, THUMB, step).mean(axis=(2, 4))
    nine = np.stack([np.asarray(v.resize((9, 8), PILImage.Resampling.LANCZOS)) for v in small])
    gradients = (nine[:, :, 1:] > nine[:, :, :-1]).reshape(len(pixels), 64)
    return FileSignature(_packed(bits), thumbs.round().astype(np.uint8).reshape(len(pixels), -1),
                         _packed(gradients), grey.size)  # fmt: skip


def _packed(bits: np.ndarray) -> list[int]:
    import numpy as np

    return [int.from_bytes(np.packbits(row).tobytes(), "big") for row in bits]


def _boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    out = []
    for cut, fx, fy in ALIGNMENTS:
        left, top = round(fx * cut * width), round(fy * cut * height)
        right = max(left + 1, round(width - (1 - fx) * cut * width))
        out.append((left, top, right, max(top + 1, round(height - (1 - fy) * cut * height))))
    return out


def compute_signatures(
    session: Session, ds: Dataset, progress: ProgressFn | None = None, workers: int = 4
) -> tuple[Signatures, int, list[tuple[str, str]]]:
    """Decode every image of `ds` once (threads) for its signature, storing the pHash of those
    that had none (one commit per batch, so a killed run keeps what it did). Returns the
    signatures, how many pHashes were stored, and [(path, reason)] of unreadable images."""
    rows = hash_rows(session, ds.id)
    collected, stored = _Collected(), 0
    if progress:
        progress(0, len(rows))
    for done, results in _signed_batches(ds, rows, workers):
        new = collected.add(results)
        if new:
            write_phashes(session, new)
            stored += len(new)
        if progress:
            progress(done, len(rows))
    return collected.signatures(), stored, collected.bad


@dataclass
class _Collected:
    ids: list[int] = field(default_factory=list)
    hashes: list[list[int]] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    dhashes: list[list[int]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def add(self, results: list[tuple[tuple[int, str, bool], Signed]]) -> list[tuple[int, int]]:
        """Keep a batch's signatures; returns (image id, signed pHash) of those new to the store."""
        new = []
        for (image_id, _, had), (value, path) in results:
            if isinstance(value, str):
                self.bad.append((path, value))
                continue
            self.ids.append(image_id)
            self.hashes.append(value.hashes)
            self.thumbs.append(value.thumbs)
            self.dhashes.append(value.dhashes)
            self.sizes.append(value.size)
            if not had:
                new.append((image_id, to_signed(value.hashes[0])))
        return new

    def signatures(self) -> Signatures:
        import numpy as np

        if not self.ids:
            views = len(ALIGNMENTS)
            empty = np.zeros((0, views, THUMB**2), dtype=np.uint8)
            no_hashes = np.zeros((0, views), dtype=np.uint64)
            return Signatures([], no_hashes, empty, no_hashes, np.zeros((0, 2), dtype=np.int64))
        hashes, dhashes = (np.array(h, dtype=np.uint64) for h in (self.hashes, self.dhashes))
        return Signatures(self.ids, hashes, np.stack(self.thumbs), dhashes, np.array(self.sizes))


Signed = tuple[FileSignature | str, str]


def _signed_batches(
    ds: Dataset, rows: list[tuple[int, str, bool]], workers: int
) -> Iterator[tuple[int, list[tuple[tuple[int, str, bool], Signed]]]]:
    def one(row: tuple[int, str, bool]) -> Signed:
        path = str(resolve_path(ds, row[1]))
        try:
            return signature_file(path), path
        except Exception as exc:  # unreadable, vanished or undecodable: reported, not fatal
            return f"cannot hash ({type(exc).__name__}: {exc})", path

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            yield start + len(chunk), list(zip(chunk, pool.map(one, chunk), strict=True))


def _chunks(max_distance: int) -> list[tuple[int, int]]:
    """(shift, width) of disjoint bit chunks covering 64 bits, so many (at least 3, and more
    than max_distance / 2) that two hashes at most max_distance bits apart differ in at most
    one bit of some chunk."""
    count = max(3, max_distance // 2 + 1)
    widths = [64 // count + (1 if i < 64 % count else 0) for i in range(count)]
    shifts = [sum(widths[:i]) for i in range(count)]
    return list(zip(shifts, widths, strict=True))


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i < j) of `hashes` (uint64) at most `max_distance` bits apart, as an
    M x 2 array, and their distances. Exact (see the module docstring)."""
    return view_pairs(hashes.reshape(-1, 1), max_distance)


def view_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i < j) of `hashes` (n x views, uint64; column 0 the whole picture) where one
    whole picture is at most `max_distance` bits from any view of the other, as an M x 2 array,
    and the least such distance of each. Exact: every view is looked up among the whole
    pictures whose value of some chunk (see `_chunks`) is its own or one bit from it."""
    import numpy as np

    if not 0 <= max_distance < 32:
        raise InvalidInputError(f"--max-distance {max_distance}: choose 0 to 31 bits")
    count, views = hashes.shape
    queries, owners = hashes.reshape(-1), np.repeat(np.arange(count), views)
    whole, found = hashes[:, 0], [np.zeros((0, 3), dtype=np.int64)]
    for shift, width in _chunks(max_distance):
        mask = np.uint64((1 << width) - 1)
        keys = ((whole >> np.uint64(shift)) & mask).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=1 << width))])
        lookup = ((queries >> np.uint64(shift)) & mask).astype(np.int64)
        for probe in [lookup, *(lookup ^ (1 << bit) for bit in range(width))]:
            runs = (order, starts[probe], starts[probe + 1])
            found.extend(_matches(whole, queries, owners, runs, max_distance))
    return _least_per_pair(np.concatenate(found), count)


def _matches(
    whole: np.ndarray, queries: np.ndarray, owners: np.ndarray,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray], max_distance: int,
) -> Iterator[np.ndarray]:  # fmt: skip
    """(owner, row, distance) of each query within `max_distance` of a whole picture in its
    run [low, high) of `order`, a block of at most PAIR_BUDGET comparisons at a time."""
    import numpy as np

    order, low, high = runs
    sizes = high - low
    ends = np.cumsum(sizes)
    cuts = np.searchsorted(ends, np.arange(PAIR_BUDGET, int(ends[-1]) if len(ends) else 0,
                                           PAIR_BUDGET), "right")  # fmt: skip
    bounds = [0, *np.unique(cuts).tolist(), len(sizes)]
    for start, stop in pairwise(bounds):
        n = sizes[start:stop]
        query = np.repeat(np.arange(start, stop), n)
        first = np.repeat(low[start:stop] - (np.cumsum(n) - n), n)
        row = order[first + np.arange(len(query))]
        distance = np.bitwise_count(queries[query] ^ whole[row]).astype(np.int64)
        keep = (distance <= max_distance) & (owners[query] != row)
        yield np.stack([owners[query][keep], row[keep], distance[keep]], axis=1)


def _least_per_pair(found: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    low, high = np.minimum(found[:, 0], found[:, 1]), np.maximum(found[:, 0], found[:, 1])
    key = low * count + high
    order = np.lexsort((found[:, 2], key))
    first = np.unique(key[order], return_index=True)[1]
    chosen = order[first]
    return np.stack([low[chosen], high[chosen]], axis=1), found[chosen, 2]


def thumbnail_scores(thumbs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair (i, j): the best correlation of one's whole-picture thumbnail with any view of
    the other's (1: the same picture up to brightness and contrast)."""
    import numpy as np

    out = np.zeros(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), 50_000):
        block = pairs[start : start + 50_000]
        a, b = _standardised(thumbs[block[:, 0]]), _standardised(thumbs[block[:, 1]])
        one = np.einsum("md,mvd->mv", a[:, 0], b).max(axis=1)
        other = np.einsum("md,mvd->mv", b[:, 0], a).max(axis=1)
        out[start : start + len(block)] = np.maximum(one, other)
    return out


def _standardised(thumbs: np.ndarray) -> np.ndarray:
    import numpy as np

    x = thumbs.astype(np.float32)
    x -= x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


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
    signatures, report.hashed, report.unreadable = compute_signatures(session, ds, progress)
    started = time.perf_counter()
    report.images = len(signatures.image_ids)
    pairs, distances = confirmed_pairs(signatures, max_distance, report)
    report.embedding_model, vectors = _unit_vectors(session, ds, embeddings)
    if vectors and len(pairs):
        keep = confirm_by_embedding(signatures.image_ids, pairs, vectors, min_cosine)
        report.rejected_by_embedding = int((~keep).sum())
        pairs, distances = pairs[keep], distances[keep]
    report.pairs = len(pairs)
    groups = group_members(signatures.image_ids, pairs, distances)
    report.marked = replace_groups(session, ds, groups)
    report.groups, report.grouped_images = len(groups), sum(len(g) for g in groups)
    report.seconds = time.perf_counter() - started
    return report


def confirmed_pairs(
    signatures: Signatures, max_distance: int, report: DupesReport | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of `view_pairs` by pHash or dHash (the distance: the lesser of the two) whose
    thumbnails agree (MIN_CORRELATION) and whose shapes agree (`shapes_agree`)."""
    import numpy as np

    found = [np.column_stack(view_pairs(getattr(signatures, name), max_distance))
             for name in SEARCHED]  # fmt: skip
    pairs, distances = _least_per_pair(np.concatenate(found), len(signatures.image_ids))
    keep = thumbnail_scores(signatures.thumbs, pairs) >= MIN_CORRELATION
    keep &= shapes_agree(signatures.sizes, pairs)
    if report is not None:
        report.rejected_by_pixels = int((~keep).sum())
    return pairs[keep], distances[keep]


def shapes_agree(sizes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A mask over `pairs`: True where the two pictures' width/height ratios differ by no more
    than cropping MAX_CROP off one side makes, give or take half a pixel on each side."""
    import numpy as np

    w, h = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1))
    rounding = 0.5 / np.maximum(w, 1) + 0.5 / np.maximum(h, 1)
    a, b = pairs[:, 0], pairs[:, 1]
    allowed = -np.log1p(-MAX_CROP) + rounding[a] + rounding[b]
    return np.asarray(np.abs(aspect[a] - aspect[b]) <= allowed)


def group_members(
    image_ids: list[int], pairs: np.ndarray, distances: np.ndarray
) -> list[list[tuple[int, int]]]:
    """Groups of (image id, distance to its nearest member) from close pairs, by first id.
    Complete linkage, closest pairs first: an image joins a group only when it is close to
    every member, so A~B and B~C with A and C apart never puts A and C together."""
    import numpy as np

    close = {(int(i), int(j)): int(d) for (i, j), d in zip(pairs, distances, strict=True)}
    group_of: dict[int, list[int]] = {}
    for row in np.argsort(distances, kind="stable"):
        i, j = int(pairs[row, 0]), int(pairs[row, 1])
        if i not in group_of and j not in group_of:
            group_of[i] = group_of[j] = [i, j]
        for new, old in ((i, j), (j, i)):
            group = group_of.get(old)
            if new not in group_of and group and all(_pair(new, m) in close for m in group):
                group.append(new)
                group_of[new] = group
    unique = {id(g): g for g in group_of.values()}.values()
    return sorted(
        (sorted((image_ids[m], _nearest(m, g, close)) for m in g) for g in unique),
        key=lambda g: g[0][0],
    )


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _nearest(member: int, group: list[int], close: dict[tuple[int, int], int]) -> int:
    return min(close[_pair(member, m)] for m in group if m != member)
