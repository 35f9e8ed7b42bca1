"""What training a classifier on a dataset's own labels reads and retires: the accepted
whole-image labels of the images people finished (the training set), the images still waiting
for a label (the ones to propose for), the trained runs' figures, and, once a new trained run is
written, the older runs' pending proposals it replaces (accepted and rejected ones, and human
labels, are never touched). Depends on the ORM and `annotator.store.predictions` only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.store.history import Group
from annotator.store.models import Annotation, Dataset, Image, LabelClass, ModelRun
from annotator.store.predictions import _remove_pending, model_author

DONE = ("labeled", "reviewed")
TRAINED_PREFIX = "train:"


@dataclass(frozen=True)
class LabelledImages:
    """The finished images of a dataset and the accepted class names on each (an empty list is
    a finished image with none of the classes: a negative, in multilabel)."""

    classes: list[str]
    labels: dict[int, list[str]]


def trained_model_name(embeddings: str) -> str:
    """The run's model name for a classifier trained on `embeddings` (what `runs` lists)."""
    return f"{TRAINED_PREFIX}{embeddings}"[:200]


def labelled_images(session: Session, ds: Dataset) -> LabelledImages:
    """Images with status labeled or reviewed, with their accepted whole-image labels."""
    classes = sorted(ds.classes, key=lambda c: c.position)
    done = select(Image.id).where(Image.dataset_id == ds.id, Image.status.in_(DONE))
    labels: dict[int, list[str]] = {image_id: [] for image_id in session.scalars(done)}
    stmt = (
        select(Annotation.image_id, LabelClass.name)
        .join(LabelClass, LabelClass.id == Annotation.class_id)
        .where(Annotation.dataset_id == ds.id, Annotation.kind == "label",
               Annotation.review == "accepted")
        .order_by(Annotation.id)
    )  # fmt: skip
    for image_id, name in session.execute(stmt):
        if image_id in labels and name not in labels[image_id]:
            labels[image_id].append(name)
    return LabelledImages([c.name for c in classes], labels)


def unlabeled_ids(session: Session, ds: Dataset) -> set[int]:
    stmt = select(Image.id).where(Image.dataset_id == ds.id, Image.status == "unlabeled")
    return set(session.scalars(stmt))


def retire_older_proposals(session: Session, run: ModelRun, kept: set[int]) -> int:
    """Delete the pending proposals of `run.model`'s other runs on images outside `kept` (the
    images `run` wrote) and commit; returns how many images lost proposals."""
    older = select(ModelRun.id).where(
        ModelRun.dataset_id == run.dataset_id, ModelRun.model == run.model, ModelRun.id != run.id
    )
    stmt = select(Annotation.image_id).where(
        Annotation.run_id.in_(older), Annotation.review == "pending"
    )
    stale = sorted(set(session.scalars(stmt)) - kept)
    group = Group(model_author(run.model))
    touched = _remove_pending(session, run, stale, group) if stale else set()
    for image in session.scalars(select(Image).where(Image.id.in_(touched))):
        image.revision += 1
    group.flush(session)
    session.commit()
    return len(touched)


def latest_trained_run(session: Session, ds: Dataset) -> ModelRun | None:
    """The newest finished run of a classifier trained on this dataset's labels."""
    stmt = (
        select(ModelRun)
        .where(ModelRun.dataset_id == ds.id, ModelRun.model.startswith(TRAINED_PREFIX),
               ModelRun.finished_at.is_not(None))
        .order_by(ModelRun.id.desc())
        .limit(1)
    )  # fmt: skip
    return session.scalars(stmt).first()
