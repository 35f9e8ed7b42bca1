"""Image embeddings in the store: one float16 vector per image and embedding model (the name of
the backbone that made it, e.g. `mobilenet_v2`), with the hash of the weights used. Writing a
batch replaces those images' vectors of that model and commits, so a killed `embed` leaves whole
batches and a re-run computes only what is missing. Readers get a float32 matrix. numpy is
imported inside functions (it comes with the `ml` extra). Depends on the ORM only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from annotator.errors import InvalidInputError
from annotator.store.models import Embedding, Image, utcnow

if TYPE_CHECKING:
    import numpy as np


def to_bytes(vector: np.ndarray) -> bytes:
    """The stored form of a vector: float16, little-endian."""
    import numpy as np

    return np.asarray(vector, dtype="<f2").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def load_embeddings(session: Session, dataset_id: int, model: str) -> tuple[list[int], np.ndarray]:
    """Every image of the dataset that has an embedding of `model`, by id, and their vectors as
    an N x dim float32 matrix (0 x 0 when there are none)."""
    import numpy as np

    stmt = (
        select(Embedding.image_id, Embedding.dim, Embedding.vector)
        .join(Image, Image.id == Embedding.image_id)
        .where(Image.dataset_id == dataset_id, Embedding.model == model)
        .order_by(Embedding.image_id)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    dims = {dim for _, dim, _ in rows}
    if len(dims) != 1:
        raise InvalidInputError(
            f"embeddings of {model!r} have several lengths ({sorted(dims)}): re-run embed"
        )
    raw = b"".join(vector for _, _, vector in rows)
    matrix = np.frombuffer(raw, dtype="<f2").reshape(len(rows), dims.pop()).astype(np.float32)
    return [image_id for image_id, _, _ in rows], matrix


def embedding_counts(session: Session, dataset_id: int) -> dict[str, int]:
    """How many images of the dataset have an embedding, per embedding model."""
    stmt = (
        select(Embedding.model, func.count())
        .join(Image, Image.id == Embedding.image_id)
        .where(Image.dataset_id == dataset_id)
        .group_by(Embedding.model)
    )
    return {model: int(count) for model, count in session.execute(stmt)}


def images_without(
    session: Session, dataset_id: int, model: str, weights_sha256: str | None
) -> list[Image]:
    """The dataset's images (by id) with no embedding of `model` made with these weights."""
    same_weights = (
        Embedding.weights_sha256.is_(None)
        if weights_sha256 is None
        else Embedding.weights_sha256 == weights_sha256
    )
    done = select(Embedding.image_id).where(Embedding.model == model, same_weights)
    stmt = (
        select(Image)
        .where(Image.dataset_id == dataset_id, Image.id.not_in(done))
        .order_by(Image.id)
    )
    return list(session.scalars(stmt))


def write_embeddings(
    session: Session, model: str, weights_sha256: str | None,
    vectors: Sequence[tuple[int, np.ndarray]],
) -> int:  # fmt: skip
    """Store one batch's vectors (replacing these images' vectors of `model`) and commit.
    Images deleted meanwhile are left out. Returns how many were stored."""
    if not vectors:
        return 0
    ids = [image_id for image_id, _ in vectors]
    alive = set(session.scalars(select(Image.id).where(Image.id.in_(ids))))
    session.execute(delete(Embedding).where(Embedding.model == model, Embedding.image_id.in_(ids)))
    now = utcnow()
    rows = [
        {"image_id": image_id, "model": model, "weights_sha256": weights_sha256,
         "dim": int(vector.shape[-1]), "vector": to_bytes(vector), "created_at": now}
        for image_id, vector in vectors if image_id in alive
    ]  # fmt: skip
    if rows:
        session.execute(insert(Embedding), rows)
    session.commit()
    return len(rows)


def image_count(session: Session, dataset_id: int) -> int:
    stmt = select(func.count()).select_from(Image).where(Image.dataset_id == dataset_id)
    return int(session.scalar(stmt) or 0)


def weights_of(session: Session, dataset_id: int, model: str) -> set[str | None]:
    """The weights hashes the dataset's stored vectors of `model` were made with."""
    stmt = (
        select(Embedding.weights_sha256)
        .join(Image, Image.id == Embedding.image_id)
        .where(Image.dataset_id == dataset_id, Embedding.model == model)
        .distinct()
    )
    return set(session.scalars(stmt))
