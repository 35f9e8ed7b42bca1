"""Use cases for model runs and the predictions they store. A run is a ModelRun row; each
processed image gets a RunImage row, its predictions as Annotation(source='model', run_id, score,
review='pending') with history events, and its uncertainty on Image.uncertainty. Writing a batch
first removes the same model's still-pending predictions on those images (accepted and rejected
ones, and human labels, are never touched) and commits, so a killed run leaves whole batches and
a re-run with the same model, weights and parameters skips what is done. History events of a run
are authored by `model:<model>`, so a person's undo never reverses a prelabelling batch.
Depends on the ORM and the shared annotation type only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from annotator.annotation import Label
from annotator.errors import InvalidInputError, NotFoundError
from annotator.store.history import Group, snapshot
from annotator.store.models import Annotation, Dataset, Image, ModelRun, RunImage, utcnow

RESUME_KEYS = ("threshold", "map", "classes")  # params that change what a run stores
RUN_LOCK = 7_301  # advisory lock class: workers joining a run of a dataset


@dataclass
class ImagePredictions:
    """What a model proposed for one image: labels (boxes in displayed pixels) and how unsure
    it was (>= 0; higher means more worth a person's look)."""

    image_id: int
    labels: list[Label]
    uncertainty: float


@dataclass
class RunPlan:
    """The images a run will process, how many are already done, and the unfinished run of the
    same model, weights and parameters to continue (if any)."""

    images: list[Image]
    already_done: int
    resume: ModelRun | None


def model_author(model: str) -> str:
    return f"model:{model}"[:100]


def _same(run: ModelRun, params: dict[str, Any]) -> bool:
    return all(run.params.get(k) == params.get(k) for k in RESUME_KEYS)


def matching_runs(
    session: Session, ds: Dataset, model: str, weights_sha256: str | None, params: dict[str, Any]
) -> list[ModelRun]:
    """Runs of `model` on `ds` with the same weights and resume parameters, newest first."""
    same_weights = (
        ModelRun.weights_sha256.is_(None)
        if weights_sha256 is None
        else ModelRun.weights_sha256 == weights_sha256
    )
    stmt = (
        select(ModelRun)
        .where(ModelRun.dataset_id == ds.id, ModelRun.model == model, same_weights)
        .order_by(ModelRun.id.desc())
    )
    return [run for run in session.scalars(stmt) if _same(run, params)]


def plan_run(
    session: Session, ds: Dataset, model: str, weights_sha256: str | None,
    params: dict[str, Any], *, only_unlabeled: bool = False, limit: int | None = None,
    force: bool = False,
) -> RunPlan:  # fmt: skip
    """Which images to process: by id; without `force`, skipping those a finished batch of a
    matching run already processed."""
    runs = [] if force else matching_runs(session, ds, model, weights_sha256, params)
    done: set[int] = set()
    if runs:
        ids = select(RunImage.image_id).where(RunImage.run_id.in_([r.id for r in runs]))
        done = set(session.scalars(ids))
    stmt = select(Image).where(Image.dataset_id == ds.id).order_by(Image.id)
    if only_unlabeled:
        stmt = stmt.where(Image.status == "unlabeled")
    candidates = list(session.scalars(stmt))
    todo = [image for image in candidates if image.id not in done]
    resume = next((r for r in runs if r.finished_at is None), None)
    return RunPlan(todo[:limit] if limit else todo, len(candidates) - len(todo), resume)


def open_run(
    session: Session, ds: Dataset, model: str, weights_sha256: str | None,
    params: dict[str, Any], resume: ModelRun | None = None,
) -> ModelRun:  # fmt: skip
    """The run to write into: `resume` (an unfinished matching run), else a new row."""
    if resume is not None:
        return resume
    run = ModelRun(dataset_id=ds.id, model=model, weights_sha256=weights_sha256, params=params,
                   started_at=utcnow(), image_count=0, prediction_count=0)  # fmt: skip
    session.add(run)
    session.commit()
    return run


def write_batch(session: Session, run: ModelRun, results: list[ImagePredictions]) -> int:
    """Store one batch's predictions (replacing the model's pending ones on those images) and
    commit. Returns how many predictions were stored."""
    if not results:
        return 0
    ds = session.get(Dataset, run.dataset_id)
    assert ds is not None
    class_ids = {c.name: c.id for c in ds.classes}
    group = Group(model_author(run.model))
    images = _images(session, [r.image_id for r in results])
    results = [r for r in results if r.image_id in images]  # others were deleted meanwhile
    changed = _remove_pending(session, run, list(images), group)
    stored = 0
    for result in results:
        anns = [_annotation(ds, run, result.image_id, label, class_ids) for label in result.labels]
        session.add_all(anns)
        session.flush()
        for ann in anns:
            group.add(ds.id, "create", image_id=ann.image_id, annotation_id=ann.id,
                      after=snapshot(ann))  # fmt: skip
        if anns:
            changed.add(result.image_id)
        stored += len(anns)
        _mark(session, run, images[result.image_id], result, len(anns))
    for image_id in changed:
        images[image_id].revision += 1
    run.image_count += len(results)
    run.prediction_count += stored
    group.flush(session)
    session.commit()
    return stored


def _images(session: Session, ids: list[int]) -> dict[int, Image]:
    rows = session.scalars(select(Image).where(Image.id.in_(ids)))
    return {image.id: image for image in rows}


def _remove_pending(
    session: Session, run: ModelRun, image_ids: list[int], group: Group
) -> set[int]:
    """Delete the model's pending predictions on `image_ids`; returns the images touched."""
    same_model = select(ModelRun.id).where(
        ModelRun.dataset_id == run.dataset_id, ModelRun.model == run.model
    )
    stmt = select(Annotation).where(
        Annotation.image_id.in_(image_ids),
        Annotation.source == "model",
        Annotation.review == "pending",
        Annotation.run_id.in_(same_model),
    )
    old = list(session.scalars(stmt.with_for_update()))
    for ann in old:
        group.add(ann.dataset_id, "delete", image_id=ann.image_id, annotation_id=ann.id,
                  before=snapshot(ann))  # fmt: skip
    if old:
        ids = [a.id for a in old]
        session.execute(
            delete(Annotation)
            .where(Annotation.id.in_(ids), Annotation.review == "pending")
            .execution_options(synchronize_session=False)
        )
        for ann in old:
            session.expunge(ann)
    return {a.image_id for a in old}


def _annotation(
    ds: Dataset, run: ModelRun, image_id: int, label: Label, class_ids: dict[str, int]
) -> Annotation:
    class_id = class_ids.get(label.class_name)
    if class_id is None:
        raise InvalidInputError(f"dataset {ds.name!r} has no class {label.class_name!r}")
    box = label.box
    if (box is None) == (ds.task == "detection"):
        kind = "a box" if box is not None else "a whole-image label"
        raise InvalidInputError(f"dataset {ds.name!r} is {ds.task}: it cannot hold {kind}")
    score = None if label.score is None else min(1.0, max(0.0, float(label.score)))
    return Annotation(
        dataset_id=ds.id, task=ds.task, image_id=image_id, class_id=class_id,
        kind="box" if box else "label", x=box.x if box else None, y=box.y if box else None,
        w=box.w if box else None, h=box.h if box else None, iscrowd=False, source="model",
        run_id=run.id, score=score, review="pending", author=model_author(run.model), revision=1,
    )  # fmt: skip


def _mark(
    session: Session, run: ModelRun, image: Image, result: ImagePredictions, count: int
) -> None:
    uncertainty = max(0.0, float(result.uncertainty))
    image.uncertainty = uncertainty
    existing = session.get(RunImage, (run.id, image.id))
    if existing is None:
        session.add(RunImage(run_id=run.id, image_id=image.id, uncertainty=uncertainty,
                             predictions=count, processed_at=utcnow()))  # fmt: skip
    else:
        existing.uncertainty, existing.predictions = uncertainty, count
        existing.processed_at = utcnow()


def finish_run(session: Session, run: ModelRun) -> None:
    run.finished_at = utcnow()
    session.commit()


def list_runs(session: Session, ds: Dataset) -> list[ModelRun]:
    stmt = select(ModelRun).where(ModelRun.dataset_id == ds.id).order_by(ModelRun.id)
    return list(session.scalars(stmt))


def get_run(session: Session, ds: Dataset, run_id: int | None = None) -> ModelRun:
    """Run `run_id` of `ds`, or its newest finished run (the newest run when none finished: a run
    that was stopped part-way, e.g. a killed `train`, is never picked while a finished one
    exists)."""
    if run_id is None:
        stmt = (
            select(ModelRun)
            .where(ModelRun.dataset_id == ds.id)
            .order_by(ModelRun.finished_at.is_(None), ModelRun.id.desc())
        )
        run = session.scalars(stmt.limit(1)).first()
        if run is None:
            raise NotFoundError(f"dataset {ds.name!r} has no model runs: run annotator prelabel")
        return run
    run = session.get(ModelRun, run_id)
    if run is None or run.dataset_id != ds.id:
        known = ", ".join(str(r.id) for r in list_runs(session, ds)) or "none"
        raise NotFoundError(f"dataset {ds.name!r} has no run {run_id} (runs: {known})")
    return run


def join_run(
    session: Session, ds: Dataset, model: str, weights_sha256: str | None, params: dict[str, Any]
) -> ModelRun:
    """The run of this model, weights and parameters that workers share: the newest matching
    one (reopened when images were added since it finished; a worker that comes after the others
    finished finds nothing left to do), else a new one, created by the first worker to ask.
    Serialized, so workers starting together join one run: an advisory lock on PostgreSQL, the
    write transaction itself on SQLite. Commits."""
    from annotator.store.leases import remaining

    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(RUN_LOCK, ds.id)))
    runs = matching_runs(session, ds, model, weights_sha256, params)
    if not runs:
        return open_run(session, ds, model, weights_sha256, params)
    found = runs[0]
    if found.finished_at is not None and remaining(
        session, ds.id, found.id, bool(params.get("only_unlabeled"))
    ):
        found.finished_at = None
    session.commit()
    return found


def run_items(session: Session, ds: Dataset, ids: list[int]) -> list[Image]:
    """The images `ids` of `ds`, in id order (what a worker claimed)."""
    stmt = select(Image).where(Image.dataset_id == ds.id, Image.id.in_(ids)).order_by(Image.id)
    return list(session.scalars(stmt))


def judged_images(session: Session, run: ModelRun) -> list[Image]:
    """The images `run` processed that a person has judged (status labeled or reviewed, or
    holding an accepted label), by id."""
    accepted = select(Annotation.image_id).where(Annotation.review == "accepted")
    stmt = (
        select(Image)
        .join(RunImage, RunImage.image_id == Image.id)
        .where(RunImage.run_id == run.id)
        .where(or_(Image.status.in_(("labeled", "reviewed")), Image.id.in_(accepted)))
        .order_by(Image.id)
    )
    return list(session.scalars(stmt))


def truth_and_predictions(
    session: Session, run: ModelRun, image_ids: list[int]
) -> tuple[list[Annotation], list[Annotation]]:
    """On the images `image_ids`: the accepted labels, and every label `run` stored."""
    on_images = select(Annotation).where(Annotation.image_id.in_(image_ids))
    truth = list(session.scalars(on_images.where(Annotation.review == "accepted")))
    predicted = list(session.scalars(on_images.where(Annotation.run_id == run.id)))
    return truth, predicted
