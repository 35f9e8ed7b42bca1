"""Perceptual hashes and near-duplicate groups in the store. An image's pHash (imagehash's, of
the image as displayed) is computed when it is added and kept in `images.phash` as a signed
64-bit integer; `dupes` backfills the rest. Groups of near-duplicates are stored per image
(`duplicates`); an image marked a duplicate (`kept` false) is left out of exports, a group whose
exported images lie in two splits is train/val leakage, and `split` keeps a group together.
imagehash and numpy are imported inside functions. Depends on the ORM only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from annotator.errors import NotFoundError
from annotator.store.models import Dataset, DuplicateMember, Image, utcnow

HASH_DECODE_SIZE = (64, 64)  # JPEGs decode at a reduced scale: pHash looks at 32x32 only
SIGN = 1 << 63


def to_signed(value: int) -> int:
    """A 64-bit hash as the signed integer a BIGINT column holds."""
    return value - (1 << 64) if value >= SIGN else value


def phash_of(img: Any) -> int | None:
    """imagehash's pHash of an opened PIL image as displayed (EXIF orientation applied), as a
    signed 64-bit integer; None when imagehash is not installed."""
    try:
        import imagehash
    except ImportError:
        return None
    from PIL import ImageOps

    if img.format == "JPEG":
        img.draft("L", HASH_DECODE_SIZE)  # greyscale, 1/2 to 1/8 scale: what pHash uses
    upright = ImageOps.exif_transpose(img)
    bits = imagehash.phash(upright).hash.flatten()
    return to_signed(int("".join("1" if b else "0" for b in bits), 2))


def phash_file(path: str) -> int | None:
    """The pHash of an image file (see `phash_of`)."""
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        return phash_of(img)


def hash_rows(session: Session, dataset_id: int) -> list[tuple[int, str, bool]]:
    """(id, stored path, whether it has a pHash) of each of the dataset's images, by id."""
    stmt = (
        select(Image.id, Image.path, Image.phash.is_not(None))
        .where(Image.dataset_id == dataset_id)
        .order_by(Image.id)
    )
    return [(int(i), str(p), bool(h)) for i, p, h in session.execute(stmt)]


def write_phashes(session: Session, values: Sequence[tuple[int, int]]) -> None:
    """Store (image id, signed pHash) pairs and commit."""
    for image_id, value in values:
        session.execute(update(Image).where(Image.id == image_id).values(phash=value))
    session.commit()


@dataclass
class Member:
    image_id: int
    path: str
    split: str | None
    distance: int
    kept: bool


@dataclass
class DuplicateGroup:
    id: int
    members: list[Member] = field(default_factory=list)

    def exported_splits(self) -> set[str]:
        return {m.split for m in self.members if m.kept and m.split is not None}


def replace_groups(
    session: Session, ds: Dataset, groups: Sequence[Sequence[tuple[int, int]]]
) -> int:
    """Store `groups` (each a list of (image id, distance)) as the dataset's duplicate groups,
    replacing the previous ones; an image marked a duplicate before stays marked while it is
    still in a group. Commits; returns how many images stay marked."""
    marked = set(
        session.scalars(
            select(DuplicateMember.image_id).where(
                DuplicateMember.dataset_id == ds.id, DuplicateMember.kept.is_(False)
            )
        )
    )
    session.execute(delete(DuplicateMember).where(DuplicateMember.dataset_id == ds.id))
    now, rows = utcnow(), []
    for group in groups:
        group_id = min(image_id for image_id, _ in group)
        for image_id, distance in group:
            rows.append({"image_id": image_id, "dataset_id": ds.id, "group_id": group_id,
                         "distance": distance, "kept": image_id not in marked,
                         "found_at": now})  # fmt: skip
    for start in range(0, len(rows), 1000):
        session.execute(insert(DuplicateMember), rows[start : start + 1000])
    session.commit()
    return sum(1 for r in rows if not r["kept"])


def list_groups(session: Session, ds: Dataset) -> list[DuplicateGroup]:
    """The dataset's duplicate groups, by group id, members by image id."""
    stmt = (
        select(DuplicateMember.group_id, Image.id, Image.path, Image.split,
               DuplicateMember.distance, DuplicateMember.kept)
        .join(Image, Image.id == DuplicateMember.image_id)
        .where(DuplicateMember.dataset_id == ds.id)
        .order_by(DuplicateMember.group_id, Image.id)
    )  # fmt: skip
    groups: dict[int, DuplicateGroup] = {}
    for group_id, image_id, path, split, distance, kept in session.execute(stmt):
        group = groups.setdefault(group_id, DuplicateGroup(group_id))
        group.members.append(Member(image_id, path, split, distance, bool(kept)))
    return list(groups.values())


def _members_of_group_with(session: Session, ds: Dataset, image_id: int) -> list[DuplicateMember]:
    member = session.get(DuplicateMember, image_id)
    if member is None or member.dataset_id != ds.id:
        raise NotFoundError(f"image {image_id} is in no duplicate group of {ds.name!r}")
    stmt = select(DuplicateMember).where(
        DuplicateMember.dataset_id == ds.id, DuplicateMember.group_id == member.group_id
    )
    return list(session.scalars(stmt))


def keep_only(session: Session, ds: Dataset, image_id: int) -> int:
    """Keep `image_id` and mark the rest of its group duplicates (left out of exports).
    Commits; returns the group id."""
    members = _members_of_group_with(session, ds, image_id)
    for m in members:
        m.kept = m.image_id == image_id
    session.commit()
    return members[0].group_id


def restore_group(session: Session, ds: Dataset, image_id: int) -> int:
    """Undo `keep_only`: every image of the group of `image_id` is kept again. Commits."""
    members = _members_of_group_with(session, ds, image_id)
    for m in members:
        m.kept = True
    session.commit()
    return members[0].group_id


def keep_groups_together(
    session: Session, dataset_id: int, current: dict[int, str | None], chosen: dict[int, str]
) -> dict[int, str]:
    """`chosen` (new splits by image id) changed so every duplicate group lies in one split:
    the split a member keeps (one not being assigned), else the one chosen for its first
    member. `current` is every image's split before the assignment."""
    groups: dict[int, list[int]] = defaultdict(list)
    stmt = select(DuplicateMember.group_id, DuplicateMember.image_id).where(
        DuplicateMember.dataset_id == dataset_id
    )
    for group_id, image_id in session.execute(stmt):
        groups[group_id].append(image_id)
    out = dict(chosen)
    for members in groups.values():
        fixed = [current[m] for m in sorted(members) if m not in chosen and current.get(m)]
        moving = sorted(m for m in members if m in chosen)
        if moving:
            target = fixed[0] if fixed else chosen[moving[0]]
            out.update((m, target) for m in moving if target is not None)
    return out
