"""Near-duplicates: pHash at add and backfilled, an exact Hamming search, candidates by pHash or
dHash, a shape check, resized copies grouped and unrelated images not, confirmation by embeddings, marking duplicates out of exports, export
refusing train/val leakage, and split keeping a group in one split."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from annotator.learn import dupes as dupes_module
from annotator.learn.dupes import (
    ALIGNMENTS,
    THUMB,
    Signatures,
    confirmed_pairs,
    find_duplicates,
    group_members,
    near_pairs,
    signature_file,
    view_pairs,
)
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import Store
from annotator.store.dupes import phash_file, to_signed
from annotator.store.embeddings import write_embeddings
from annotator.store.images import add_images
from annotator.store.models import Image
from tests.conftest import needs_postgres


def smooth_picture(seed: int, size: tuple[int, int] = (240, 180)) -> object:
    """A photo-like picture: a random coarse colour field, smoothly interpolated."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    return PILImage.fromarray(coarse).resize(size, PILImage.Resampling.BICUBIC)


def write_set(folder: Path, originals: int, copies: int) -> dict[str, int]:
    """`originals` distinct pictures and a resized, re-encoded copy of the first `copies`;
    returns file name -> the seed of the picture it shows."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = {}
    for seed in range(originals):
        picture = smooth_picture(seed)
        picture.save(folder / f"orig{seed:03d}.png")  # type: ignore[attr-defined]
        shown[f"orig{seed:03d}.png"] = seed
        if seed < copies:
            small = picture.resize((168, 126))  # type: ignore[attr-defined]
            small.save(folder / f"copy{seed:03d}.jpg", quality=50)
            shown[f"copy{seed:03d}.jpg"] = seed
    return shown


Make = Callable[..., tuple[int, dict[str, int]]]


@pytest.fixture
def photos(store: Store, tmp_path: Path) -> Make:
    def make(originals: int = 6, copies: int = 2, name: str = "p") -> tuple[int, dict[str, int]]:
        folder = tmp_path / name
        shown = write_set(folder, originals, copies)
        with store.session() as s:
            ds = create_dataset(s, name, "classification", ["a", "b"], folder)
            add_images(s, ds, [folder])
            return ds.id, shown

    return make


def _names(store: Store, ds_id: int) -> dict[int, str]:
    with store.session() as s:
        rows = s.execute(select(Image.id, Image.path).where(Image.dataset_id == ds_id))
        return {i: Path(p).name for i, p in rows}


def test_signature_starts_with_imagehash_phash_of_the_whole_picture(tmp_path: Path) -> None:
    picture = smooth_picture(7)
    picture.save(tmp_path / "a.png")  # type: ignore[attr-defined]
    picture.crop((10, 8, 230, 172)).save(tmp_path / "b.jpg", quality=40)  # type: ignore[attr-defined]
    for name, size in (("a.png", (240, 180)), ("b.jpg", (110, 82))):  # a JPEG at half scale
        found = signature_file(str(tmp_path / name))
        assert to_signed(found.hashes[0]) == phash_file(str(tmp_path / name))
        assert len(found.hashes) == len(found.dhashes) == len(ALIGNMENTS)
        assert found.thumbs.shape == (len(ALIGNMENTS), THUMB**2) and found.size == size
    # the copy cropped by about 8% is nearer to one of the original's smaller views, by each hash
    copy, original = (
        signature_file(str(tmp_path / "b.jpg")),
        signature_file(str(tmp_path / "a.png")),
    )
    for whole, views in ((copy.hashes[0], original.hashes), (copy.dhashes[0], original.dhashes)):
        distances = [bin(whole ^ view).count("1") for view in views]
        assert min(distances[1:]) < distances[0]


def _two_pictures(phash_bits: int, dhash_bits: int, sizes: list[tuple[int, int]]) -> Signatures:
    """Two images with the same thumbnails (every view alike), their hashes `phash_bits` and
    `dhash_bits` bits apart, of the given sizes."""
    rng = np.random.default_rng(0)
    views = len(ALIGNMENTS)
    thumbs = rng.integers(0, 256, size=(1, views, THUMB**2), dtype=np.uint8).repeat(2, axis=0)
    hashes = np.zeros((2, views), dtype=np.uint64)
    dhashes = np.zeros((2, views), dtype=np.uint64)
    hashes[1] = np.uint64((1 << phash_bits) - 1)
    dhashes[1] = np.uint64((1 << dhash_bits) - 1)
    return Signatures([1, 2], hashes, thumbs, dhashes, np.array(sizes))


def test_a_copy_is_a_candidate_by_either_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = [(200, 100), (150, 75)]
    for phash_bits, dhash_bits, distance in ((4, 30, 4), (30, 2, 2), (3, 1, 1)):
        pairs, distances = confirmed_pairs(_two_pictures(phash_bits, dhash_bits, wide), 6)
        assert pairs.tolist() == [[0, 1]] and distances.tolist() == [distance]
    assert len(confirmed_pairs(_two_pictures(10, 10, wide), 6)[0]) == 0
    monkeypatch.setattr(dupes_module, "SEARCHED", ("hashes",))  # pHash alone misses it
    assert len(confirmed_pairs(_two_pictures(30, 2, wide), 6)[0]) == 0


@pytest.mark.parametrize(
    ("other", "grouped"),
    [((180, 100), True), ((200, 90), True), ((100, 200), False), ((150, 100), False),
     ((20, 11), True), ((20, 14), False)],
)  # fmt: skip
def test_pictures_of_other_shapes_are_not_duplicates(other: tuple[int, int], grouped: bool) -> None:
    # a 10% crop of one side still matches (give or take rounding at small sizes); a wide and a
    # tall picture with alike thumbnails (both squashed to a square) do not
    pairs, _ = confirmed_pairs(_two_pictures(2, 2, [(200, 100), other]), 6)
    assert (len(pairs) == 1) is grouped


def test_near_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, size=400, dtype=np.int64).view(np.uint64) * np.uint64(2)
    flips = rng.integers(0, 64, size=(60, 5))
    near = hashes[:60].copy()
    for row, bits in enumerate(flips):
        for b in bits[: row % 6]:
            near[row] ^= np.uint64(1) << np.uint64(b)
    hashes = np.concatenate([hashes, near])
    pairs, distances = near_pairs(hashes, 6)
    d = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    expected = {(i, j) for i, j in zip(*np.nonzero(d <= 6), strict=True) if i < j}
    assert {(int(i), int(j)) for i, j in pairs} == expected
    assert len(expected) >= 50  # the planted copies, found
    assert all(distances == d[pairs[:, 0], pairs[:, 1]])


@pytest.mark.parametrize("max_distance", [0, 5, 7, 12])
def test_view_pairs_matches_brute_force(max_distance: int) -> None:
    # a whole picture (column 0) near another image's cropped view (columns 1, 2) is found
    rng = np.random.default_rng(max_distance)
    hashes = rng.integers(0, 2**63, size=(300, 3), dtype=np.int64).view(np.uint64)
    for row in range(3, 300, 3):
        noise = int(rng.integers(0, 2**63)) & 0x0F0F0101_00030001
        hashes[row, 0] = hashes[row - 1, row % 3] ^ np.uint64(noise)
    pairs, distances = view_pairs(hashes, max_distance)
    d = np.bitwise_count(hashes[:, 0][:, None, None] ^ hashes[None, :, :]).min(axis=2)
    d = np.minimum(d, d.T)
    expected = {(i, j) for i, j in zip(*np.nonzero(d <= max_distance), strict=True) if i < j}
    assert {(int(i), int(j)) for i, j in pairs} == expected
    assert max_distance < 5 or len(expected) >= 15  # the planted near views, found
    assert all(distances == d[pairs[:, 0], pairs[:, 1]])


def test_a_chain_of_close_pairs_does_not_join_its_ends() -> None:
    # A~B (2 bits) and B~C (4 bits) but A and C are not close: C must not join A's group
    pairs, distances = np.array([[0, 1], [1, 2], [3, 4]]), np.array([2, 4, 1])
    groups = group_members([10, 11, 12, 13, 14], pairs, distances)
    assert groups == [[(10, 2), (11, 2)], [(13, 1), (14, 1)]]
    # once A~C is close too, the three are one group
    closed = group_members([10, 11, 12], np.array([[0, 1], [1, 2], [0, 2]]), np.array([2, 4, 5]))
    assert closed == [[(10, 2), (11, 2), (12, 4)]]


def test_add_hashes_and_a_resized_copy_is_grouped(store: Store, photos: Make, run_cli) -> None:
    photos(originals=6, copies=2)
    with store.session() as s:
        assert s.scalar(select(Image.id).where(Image.phash.is_(None))) is None
    result = run_cli("dupes", "p", "--json")
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)["groups"]
    found = sorted(sorted(Path(m["path"]).name for m in g["images"]) for g in groups)
    assert found == [["copy000.jpg", "orig000.png"], ["copy001.jpg", "orig001.png"]]


def test_images_added_before_hashing_are_backfilled(store: Store, photos: Make) -> None:
    photos(originals=4, copies=1)
    with store.session() as s:
        s.execute(update(Image).values(phash=None))
        s.commit()
        seen: list[tuple[int, int]] = []
        report = find_duplicates(s, get_dataset(s, "p"), progress=lambda d, t: seen.append((d, t)))
    assert report.hashed == 5 and report.groups == 1 and report.grouped_images == 2
    assert seen[-1] == (5, 5)


def test_embeddings_veto_a_hash_match_between_different_pictures(
    store: Store, photos: Make
) -> None:
    ds_id, _ = photos(originals=4, copies=1)
    names = {v: k for k, v in _names(store, ds_id).items()}
    with store.session() as s:
        orig, copy = names["orig000.png"], names["copy000.jpg"]
        write_embeddings(s, "m", None, [(orig, np.array([1.0, 0.0])), (copy, np.array([0.0, 1.0]))])
        report = find_duplicates(s, get_dataset(s, "p"))
    assert (
        report.groups == 0 and report.rejected_by_embedding == 1 and report.embedding_model == "m"
    )


def _split(store: Store, ds_id: int, splits: dict[str, str]) -> dict[str, int]:
    ids = {v: k for k, v in _names(store, ds_id).items()}
    with store.session() as s:
        for name, split in splits.items():
            s.execute(
                update(Image).where(Image.id == ids[name]).values(split=split, status="labeled")
            )
        s.commit()
    return ids


def test_export_refuses_a_group_across_splits_until_one_is_kept(
    store: Store, photos: Make, run_cli, tmp_path: Path
) -> None:
    ds_id, shown = photos(originals=3, copies=1)
    ids = _split(store, ds_id, {n: "train" for n in shown} | {"copy000.jpg": "val"})
    assert run_cli("dupes", "p").exit_code == 0
    refused = run_cli("export", "imagefolder", "p", str(tmp_path / "out"))
    assert refused.exit_code == 2
    assert "orig000.png (train)" in refused.stderr and "copy000.jpg (val)" in refused.stderr
    assert "--allow-leakage" in refused.stderr
    allowed = run_cli("export", "imagefolder", "p", str(tmp_path / "leaky"), "--allow-leakage")
    assert allowed.exit_code == 0, allowed.output
    assert run_cli("dupes", "p", "--keep", str(ids["orig000.png"])).exit_code == 0
    kept = run_cli("export", "imagefolder", "p", str(tmp_path / "out"))
    assert kept.exit_code == 0, kept.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["left_out"]["duplicate"] == 1
    assert not list((tmp_path / "out").rglob("copy000*"))
    assert run_cli("dupes", "p", "--restore", str(ids["copy000.jpg"])).exit_code == 0
    assert run_cli("export", "imagefolder", "p", str(tmp_path / "again")).exit_code == 2


def test_split_keeps_a_group_in_one_split(store: Store, photos: Make, run_cli) -> None:
    photos(originals=30, copies=10)
    assert run_cli("dupes", "p").exit_code == 0
    result = run_cli("split", "p", "--ratios", "train=0.5,val=0.5", "--seed", "3")
    assert result.exit_code == 0, result.output
    with store.session() as s:
        split = dict(s.execute(select(Image.path, Image.split)).tuples().all())
    pairs = [(f"orig{i:03d}.png", f"copy{i:03d}.jpg") for i in range(10)]
    assert all(split[a] == split[b] for a, b in pairs), split
    assert {split[a] for a, _ in pairs} == {"train", "val"}  # groups are spread, not lumped


def test_dupes_of_an_unknown_image_is_one_error_line(photos: Make, run_cli) -> None:
    photos(originals=2, copies=0)
    result = run_cli("dupes", "p", "--keep", "999")
    assert result.exit_code == 2 and result.stderr.startswith("error: image 999 is in no")


def test_dupes_backfills_and_groups_on_postgres(pg_url: str, tmp_path: Path) -> None:
    from annotator.store.db import open_store
    from annotator.store.dupes import list_groups

    store = open_store(pg_url)
    try:
        write_set(tmp_path / "p", originals=4, copies=1)
        with store.session() as s:
            add_images(s, create_dataset(s, "p", "classification", ["a"], tmp_path / "p"),
                       [tmp_path / "p"])  # fmt: skip
            s.execute(update(Image).values(phash=None))
            s.commit()
            report = find_duplicates(s, get_dataset(s, "p"))
            groups = list_groups(s, get_dataset(s, "p"))
            hashed = s.scalar(select(Image.id).where(Image.phash.is_(None)))
    finally:
        store.close()
    assert report.hashed == 5 and report.groups == 1 and hashed is None
    assert [sorted(Path(m.path).name for m in g.members) for g in groups] == [
        ["copy000.jpg", "orig000.png"]
    ]


for _mark in needs_postgres:
    test_dupes_backfills_and_groups_on_postgres = _mark(test_dupes_backfills_and_groups_on_postgres)
