"""The learning loop as one step, for the labelling app's retrain key: embed the images that have
no vector yet, then train on every accepted label and store the proposals (see `train`). The
embedding model is the one the dataset already has the most vectors of (what the person ran
`annotator embed` with), else `mobilenet_v2`; its weights are found as `embed` finds them.
Vectors made with other weights (`embed --weights FILE`) are never mixed with new ones: the new
images are then left to `annotator embed`, and training uses the vectors there are. On a
detection dataset nothing is embedded ahead: training crops the boxes itself. Decoding
runs in this thread (no worker processes: the caller is a thread of a running app). torch and
scikit-learn are imported inside functions; `missing_extra` names what to install."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from annotator.errors import InvalidInputError, NotFoundError
from annotator.learn.embed import DEFAULT_MODEL, EmbedOptions, embed, load_backbone
from annotator.learn.train import TrainOptions, TrainReport, train
from annotator.store import embeddings as vectors
from annotator.store.models import Dataset
from annotator.store.types import ProgressFn, Session

NEEDED = {"sklearn": "scikit-learn", "torch": "torch", "torchvision": "torchvision"}


@dataclass
class RetrainReport:
    """What one turn of the loop did: the vectors added, the training, and a note when new
    images were left without a vector."""

    model: str
    embedded: int
    train: TrainReport
    note: str = ""


def missing_extra() -> str | None:
    """One line naming what to install when the loop's libraries are missing (None: all are)."""
    missing = [pkg for mod, pkg in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return None
    return (
        f"retraining needs {', '.join(missing)}: install the learn and ml extras "
        "(pip install 'annotator[learn,ml]')"
    )


def embedding_model(session: Session, ds: Dataset) -> str:
    """The model the dataset has the most vectors of; `mobilenet_v2` when it has none."""
    counts = vectors.embedding_counts(session, ds.id)
    return max(counts, key=lambda m: (counts[m], m)) if counts else DEFAULT_MODEL


def retrain(session: Session, ds: Dataset, progress: ProgressFn | None = None) -> RetrainReport:
    """Embed what is missing, then train and store the proposals (each step commits)."""
    lack = missing_extra()
    if lack:
        raise InvalidInputError(lack)
    model = embedding_model(session, ds)
    if ds.task == "detection":
        report = train(session, ds, TrainOptions(embeddings=model, workers=0), progress)
        return RetrainReport(model, 0, report, "(counted in boxes: accepted boxes, and boxes "
                             "of the detector run that got a class)")  # fmt: skip
    embedded, note = _embed_missing(session, ds, model, progress)
    report = train(session, ds, TrainOptions(embeddings=model))
    return RetrainReport(model, embedded, report, note)


def _embed_missing(
    session: Session, ds: Dataset, model: str, progress: ProgressFn | None
) -> tuple[int, str]:
    """Vectors for the images without one: (how many were made, a note when some were not)."""
    have = vectors.embedding_counts(session, ds.id).get(model, 0)
    todo = vectors.image_count(session, ds.id) - have
    if todo <= 0:
        return 0, ""
    if have:
        note = _other_weights(session, ds, model, todo)
        if note:
            return 0, note
    try:
        report = embed(session, ds, EmbedOptions(model=model, workers=0), progress=progress)
    except NotFoundError as exc:
        raise NotFoundError(_no_weights(ds, model, str(exc))) from exc
    return report.embedded, ""


def _other_weights(session: Session, ds: Dataset, model: str, todo: int) -> str:
    """A note when the stored vectors of `model` come from weights this machine cannot load
    by itself (made with `--weights FILE`); empty when new vectors would match them."""
    try:
        found = load_backbone(model).weights_sha256
    except NotFoundError as exc:
        return f"{todo} images have no vector: {_no_weights(ds, model, str(exc))}"
    stored = vectors.weights_of(session, ds.id, model)
    if found in stored:
        return ""
    return (
        f"{todo} images have no vector: the stored ones came from other weights; run annotator "
        f"embed {ds.name} --model {model} --weights FILE"
    )


def _no_weights(ds: Dataset, model: str, why: str) -> str:
    return (
        f"cannot embed with {model} ({why}): run annotator embed {ds.name} --model {model} "
        "--weights FILE, then retrain"
    )
