"""The training use case: a scikit-learn logistic regression (one-vs-rest for multilabel) fitted
on the stored embeddings of the images people finished, with their accepted labels as targets.
Cross-validated (stratified k-fold) out-of-fold predictions give the accuracy and per-class
recall it reports; the model fitted on every label then proposes a class for every unlabeled
image with an embedding. The proposals are written as a model run exactly like a prelabel run
(pending labels scored with the classifier's probabilities, per-image uncertainty), so the TUI,
`space`, the uncertainty queue and `evaluate` treat them alike; a new train replaces the pending
proposals of the previous trained runs and never touches accepted labels. A detection dataset
trains on its accepted boxes' crops instead and re-classes the pending boxes of a detector run
(see `train_boxes`). scikit-learn is imported inside functions."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.annotation import Label
from annotator.errors import InvalidInputError, NotFoundError
from annotator.learn.embed import DEFAULT_MODEL, no_embeddings, stored_models
from annotator.prelabel.outputs import margin_uncertainty, threshold_uncertainty
from annotator.prelabel.pipeline import check_run_options
from annotator.store import predictions, training
from annotator.store.embeddings import load_embeddings
from annotator.store.models import Dataset
from annotator.store.predictions import ImagePredictions
from annotator.store.types import ProgressFn, Session

if TYPE_CHECKING:
    import numpy as np

WRITE_BATCH = 500
MIN_LABELS = 2
REGULARISATION = 1.0  # LogisticRegression's C, on standardised features


@dataclass
class TrainOptions:
    """What `annotator train` was asked to do."""

    embeddings: str = DEFAULT_MODEL
    folds: int = 5
    threshold: float = 0.5  # multilabel: propose the classes at least this probable
    # detection only: the run whose boxes to re-class, and how to run the backbone over crops
    run_id: int | None = None
    weights: Path | None = None
    device: str = "auto"
    batch_size: int = 64
    workers: int | None = None  # None: up to 4, one per CPU core

    def check(self) -> None:
        check_run_options(self.batch_size, None, self.device, self.workers)
        if self.folds < 2:
            raise InvalidInputError(f"--folds {self.folds}: must be at least 2")
        if not 0.0 < self.threshold < 1.0:
            raise InvalidInputError(f"--threshold {self.threshold}: must lie in (0, 1)")


@dataclass
class TrainReport:
    """What a training run did: its cross-validated figures and the proposals it wrote."""

    run_id: int
    model: str
    task: str
    labelled: int
    folds: int
    cv_accuracy: float
    recall: dict[str, float | None]
    support: dict[str, int]
    proposed: int = 0
    predictions: int = 0
    unembedded: int = 0  # finished or unlabeled images without a vector (left out)
    retired: int = 0  # images whose older proposals were removed, not replaced
    seconds: float = 0.0
    unit: str = "images"  # what was labelled and proposed for: images, or boxes (detection)
    source_run: int | None = None  # detection: the detector run whose boxes were re-classed
    small: int = 0  # detection: boxes too small to crop (left out)
    reclassed: int = 0  # detection: proposals whose class differs from the box they replace
    unreadable: list[str] = field(default_factory=list)  # detection: images that failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingSet:
    """Embeddings and targets: `y` is class indices (classification) or an N x K 0/1 matrix."""

    classes: list[str]
    multilabel: bool
    image_ids: list[int]
    x: np.ndarray
    y: np.ndarray
    skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    all_ids: list[int] = field(default_factory=list)  # every image with a vector, and its row
    all_x: np.ndarray | None = None


def make_classifier(multilabel: bool) -> Any:
    """Power-normalised features (signed square root, then unit length), standardised, into a
    logistic regression (one per class when multilabel). The square root and unit length
    damp the few large pooled activations; on the digits benchmark they lifted the accuracy
    at every number of labels per class (see benchmarks/learn.py)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    lr = LogisticRegression(C=REGULARISATION, max_iter=2000)
    return make_pipeline(FunctionTransformer(signed_sqrt), Normalizer(), StandardScaler(),
                         OneVsRestClassifier(lr) if multilabel else lr)  # fmt: skip


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    import numpy as np

    out: np.ndarray = np.sign(x) * np.sqrt(np.abs(x))
    return out


def out_of_fold(x: np.ndarray, y: np.ndarray, multilabel: bool, folds: int) -> np.ndarray:
    """N x K probabilities, each row from a model that never saw that row (k-fold, stratified
    for one label per image; `folds` is lowered to the smallest class's count)."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    if multilabel:
        splitter: Any = KFold(min(folds, len(x)), shuffle=True, random_state=0)
    else:
        smallest = int(min(_class_counts(y)))
        splitter = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=0)
    probs: np.ndarray = cross_val_predict(make_classifier(multilabel), x, y, cv=splitter,
                                          method="predict_proba")  # fmt: skip
    return probs


def _class_counts(y: np.ndarray) -> list[int]:
    import numpy as np

    return [int(n) for n in np.bincount(y)] if y.ndim == 1 else [int(n) for n in y.sum(axis=0)]


def training_set(session: Session, ds: Dataset, embeddings: str) -> TrainingSet:
    """The finished images' vectors and accepted labels; refused when any class has fewer than
    MIN_LABELS (or, multilabel, fewer than MIN_LABELS images without it)."""
    import numpy as np

    ids, matrix = _vectors(session, ds, embeddings)
    labelled = training.labelled_images(session, ds)
    multilabel = ds.task == "multilabel"
    row = {image_id: k for k, image_id in enumerate(ids)}
    usable = [i for i, names in labelled.labels.items() if i in row and (names or multilabel)]
    usable.sort()
    index = {name: k for k, name in enumerate(labelled.classes)}
    if multilabel:
        y = np.zeros((len(usable), len(index)), dtype=np.int64)
        for r, image_id in enumerate(usable):
            y[r, [index[n] for n in labelled.labels[image_id]]] = 1
    else:
        y = np.array([index[labelled.labels[i][0]] for i in usable], dtype=np.int64)
    found = TrainingSet(labelled.classes, multilabel, usable, matrix[[row[i] for i in usable]], y,
                        skipped=sum(1 for i in labelled.labels if i not in row))  # fmt: skip
    found.counts = dict(zip(found.classes, _counts(found), strict=True))
    found.all_ids, found.all_x = ids, matrix
    _refuse_too_few(ds, found)
    return found


def _vectors(session: Session, ds: Dataset, embeddings: str) -> tuple[list[int], np.ndarray]:
    ids, matrix = load_embeddings(session, ds.id, embeddings)
    if not ids:
        raise NotFoundError(no_embeddings(ds, embeddings, stored_models(session, ds)))
    return ids, matrix


def _counts(found: TrainingSet) -> list[int]:
    import numpy as np

    if found.multilabel:
        return [int(n) for n in found.y.sum(axis=0)] if len(found.y) else [0] * len(found.classes)
    return [int(n) for n in np.bincount(found.y, minlength=len(found.classes))]


def _refuse_too_few(ds: Dataset, found: TrainingSet) -> None:
    few = [f"{name} {n}" for name, n in found.counts.items() if n < MIN_LABELS]
    if few:
        raise InvalidInputError(
            f"dataset {ds.name!r}: train needs at least {MIN_LABELS} accepted labels per class "
            f"on images with embeddings; too few: {', '.join(few)}"
        )
    if found.multilabel:
        always = [n for n, c in found.counts.items() if len(found.y) - c < MIN_LABELS]
        if always:
            raise InvalidInputError(
                f"dataset {ds.name!r}: train needs at least {MIN_LABELS} finished images without "
                f"each class; nearly every image has: {', '.join(always)}"
            )


def train(
    session: Session, ds: Dataset, options: TrainOptions, progress: ProgressFn | None = None
) -> TrainReport:
    """Fit, cross-validate, and store proposals for every unlabeled image as a new run (on a
    detection dataset: for the boxes of a detector run; `progress` counts the boxes cropped)."""
    options.check()
    if ds.task == "detection":
        from annotator.learn.train_boxes import train_boxes

        return train_boxes(session, ds, options, progress)
    started = time.perf_counter()
    found = training_set(session, ds, options.embeddings)
    report = cross_validate(found, options)
    classifier = make_classifier(found.multilabel).fit(found.x, found.y)
    _propose(session, ds, options, found, classifier, report)
    report.seconds = time.perf_counter() - started
    return report


def cross_validate(found: TrainingSet, options: TrainOptions) -> TrainReport:
    """Out-of-fold accuracy and per-class recall, as a report to fill in."""
    import numpy as np

    probs = out_of_fold(found.x, found.y, found.multilabel, options.folds)
    if found.multilabel:
        predicted = (probs >= options.threshold).astype(np.int64)
        accuracy = float(np.mean(np.all(predicted == found.y, axis=1)))
        hits = (predicted & found.y).sum(axis=0)
    else:
        predicted = probs.argmax(axis=1)
        accuracy = float(np.mean(predicted == found.y))
        hits = np.bincount(found.y[predicted == found.y], minlength=len(found.classes))
    recall = {name: (float(hits[k]) / n if n else None)
              for k, (name, n) in enumerate(found.counts.items())}  # fmt: skip
    smallest = min(found.counts.values())
    folds = min(options.folds, len(found.y) if found.multilabel else smallest)
    return TrainReport(0, training.trained_model_name(""), "", len(found.y), folds,
                       accuracy, recall, dict(found.counts), unembedded=found.skipped)  # fmt: skip


def _propose(
    session: Session, ds: Dataset, options: TrainOptions, found: TrainingSet, classifier: Any,
    report: TrainReport,
) -> None:  # fmt: skip
    ids, matrix = found.all_ids, found.all_x
    assert matrix is not None
    wanted = training.unlabeled_ids(session, ds)
    rows = [k for k, image_id in enumerate(ids) if image_id in wanted]
    report.unembedded += len(wanted) - len(rows)
    report.model, report.task = training.trained_model_name(options.embeddings), ds.task
    run = predictions.open_run(session, ds, report.model, None, _params(options, found, report))
    report.run_id = run.id
    probs = classifier.predict_proba(matrix[rows]) if rows else None
    for start in range(0, len(rows), WRITE_BATCH):
        chunk = range(start, min(start + WRITE_BATCH, len(rows)))
        batch = [_proposal(ids[rows[k]], probs[k], found, options) for k in chunk]  # type: ignore[index]
        report.predictions += predictions.write_batch(session, run, batch)
        report.proposed += len(batch)
    report.retired = training.retire_older_proposals(session, run, {ids[k] for k in rows})
    predictions.finish_run(session, run)


def _proposal(
    image_id: int, probs: np.ndarray, found: TrainingSet, options: TrainOptions
) -> ImagePredictions:
    scores = [float(p) for p in probs]
    if found.multilabel:
        pairs = zip(found.classes, scores, strict=True)
        labels = [Label(name, score=p, source="model", review="pending")
                  for name, p in pairs if p >= options.threshold]  # fmt: skip
        return ImagePredictions(image_id, labels, threshold_uncertainty(scores, options.threshold))
    best = max(range(len(scores)), key=scores.__getitem__)
    label = Label(found.classes[best], score=scores[best], source="model", review="pending")
    return ImagePredictions(image_id, [label], margin_uncertainty(scores))


def _params(options: TrainOptions, found: TrainingSet, report: TrainReport) -> dict[str, Any]:
    return {
        "task": "multilabel" if found.multilabel else "classification",
        "embeddings": options.embeddings, "classifier": "logistic_regression",
        "threshold": options.threshold, "classes": found.classes, "labelled": report.labelled,
        "folds": report.folds, "cv_accuracy": report.cv_accuracy, "recall": report.recall,
    }  # fmt: skip


def latest_accuracy(session: Session, ds: Dataset) -> float | None:
    """The cross-validated accuracy of the newest trained run of `ds` (None: never trained)."""
    run = training.latest_trained_run(session, ds)
    value = run.params.get("cv_accuracy") if run is not None else None
    return float(value) if isinstance(value, int | float) else None
