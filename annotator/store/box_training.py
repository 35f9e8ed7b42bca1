"""What training a box classifier on a detection dataset reads and writes: the accepted boxes
(the training set, whoever drew them), the detector run whose boxes it proposes classes for (the
newest run not made by a trained classifier, or one named), the pending boxes to propose for
(that run's, and those earlier trained runs proposed), the files their images live in, and the
write that puts a batch of proposals in place of the pending boxes they re-class (the detector's
pending box is removed in the same commit as the proposal that replaces it, with history;
accepted and rejected boxes are never touched). Depends on the ORM and the predictions store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from annotator.annotation import Box
from annotator.errors import InvalidInputError
from annotator.store import predictions
from annotator.store.history import Group, snapshot
from annotator.store.images import resolve_path
from annotator.store.models import Annotation, Dataset, Image, LabelClass, ModelRun
from annotator.store.predictions import ImagePredictions, model_author
from annotator.store.training import TRAINED_PREFIX


@dataclass(frozen=True)
class BoxRow:
    """One stored box: its annotation, image, class, geometry (displayed pixels), score and
    the run that wrote it (None: drawn by a person)."""

    ann_id: int
    image_id: int
    class_name: str
    box: Box
    score: float | None
    run_id: int | None


@dataclass(frozen=True)
class ImageFile:
    """Where an image's file is and the (width, height) the store shows it at."""

    path: str
    width: int
    height: int


def _boxes(session: Session, ds: Dataset, *where: ColumnElement[bool]) -> list[BoxRow]:
    stmt = (
        select(Annotation, LabelClass.name)
        .join(LabelClass, LabelClass.id == Annotation.class_id)
        .where(Annotation.dataset_id == ds.id, Annotation.kind == "box", *where)
        .order_by(Annotation.image_id, Annotation.id)
    )
    return [
        BoxRow(a.id, a.image_id, name, Box(a.x or 0.0, a.y or 0.0, a.w or 0.0, a.h or 0.0),
               a.score, a.run_id)
        for a, name in session.execute(stmt)
    ]  # fmt: skip


def accepted_boxes(session: Session, ds: Dataset) -> list[BoxRow]:
    """Every accepted box of the dataset (drawn by a person or an accepted prediction)."""
    return _boxes(session, ds, Annotation.review == "accepted")


def detector_run(session: Session, ds: Dataset, run_id: int | None) -> ModelRun | None:
    """Run `run_id` (refused when a trained classifier made it), else the newest run of `ds`
    that a trained classifier did not make (None: there is none)."""
    if run_id is not None:
        run = predictions.get_run(session, ds, run_id)
        if run.model.startswith(TRAINED_PREFIX):
            raise InvalidInputError(
                f"run {run_id} was made by {run.model}, a trained classifier: name a detector "
                "run (annotator runs lists them)"
            )
        return run
    stmt = (
        select(ModelRun)
        .where(ModelRun.dataset_id == ds.id, ModelRun.model.not_like(f"{TRAINED_PREFIX}%"))
        .order_by(ModelRun.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def pending_boxes(
    session: Session, ds: Dataset, run: ModelRun | None, trained: str
) -> list[BoxRow]:
    """The pending boxes of `run` and of the runs of the trained model `trained`."""
    runs = select(ModelRun.id).where(ModelRun.dataset_id == ds.id, ModelRun.model == trained)
    ids = [r for r in session.scalars(runs)] + ([run.id] if run is not None else [])
    if not ids:
        return []
    return _boxes(session, ds, Annotation.review == "pending", Annotation.run_id.in_(ids))


def image_files(session: Session, ds: Dataset, image_ids: Iterable[int]) -> dict[int, ImageFile]:
    """The files of the images `image_ids` of `ds`, by id."""
    wanted = sorted(set(image_ids))
    found: dict[int, ImageFile] = {}
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        stmt = select(Image).where(Image.dataset_id == ds.id, Image.id.in_(chunk))
        for image in session.scalars(stmt):
            path = str(resolve_path(ds, image.path))
            found[image.id] = ImageFile(path, image.width, image.height)
    return found


def write_proposals(
    session: Session, run: ModelRun, batch: list[ImagePredictions], replaced: list[int]
) -> int:
    """Store one batch of box proposals and, in the same commit, remove the still-pending
    boxes `replaced` of other models that they re-class (with history, authored by the run's
    model). Returns how many proposals were stored."""
    group = Group(model_author(run.model))
    stmt = select(Annotation).where(
        Annotation.id.in_(replaced), Annotation.review == "pending", Annotation.source == "model"
    )
    old = [a for a in session.scalars(stmt.with_for_update()) if a.run_id != run.id]
    for ann in old:
        group.add(ann.dataset_id, "delete", image_id=ann.image_id, annotation_id=ann.id,
                  before=snapshot(ann))  # fmt: skip
    if old:
        session.execute(
            delete(Annotation)
            .where(Annotation.id.in_([a.id for a in old]), Annotation.review == "pending")
            .execution_options(synchronize_session=False)
        )
        for ann in old:
            session.expunge(ann)
    group.flush(session)
    return predictions.write_batch(session, run, batch)  # commits both
