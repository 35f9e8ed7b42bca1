"""Suspect labels: out-of-fold class probabilities (k-fold over the finished images, the same
logistic regression on embeddings `train` uses) fed to cleanlab's `find_label_issues`, whose
flags are stored worst first with the class the model suggests instead. Whole-image tasks
(classification and multilabel); a detection dataset's boxes are compared with a model run's
predictions instead (annotator.learn.box_suspects). cleanlab and scikit-learn are imported
inside functions."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from annotator.errors import InvalidInputError, MissingDependencyError
from annotator.learn.embed import DEFAULT_MODEL
from annotator.learn.train import TrainingSet, out_of_fold, training_set
from annotator.store.datasets import current_user
from annotator.store.models import Dataset
from annotator.store.suspects import NewFlag, write_flags
from annotator.store.types import Session

if TYPE_CHECKING:
    import numpy as np

    from annotator.learn.box_suspects import BoxSuspectsReport

MULTILABEL_THRESHOLD = 0.5


@dataclass
class SuspectsReport:
    run: int
    model: str
    labelled: int
    folds: int
    flagged: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"run {self.run}: {self.flagged} suspect labels among {self.labelled} "
                f"({self.folds}-fold, embeddings {self.model}, {self.seconds:.1f} s)")  # fmt: skip


def require_cleanlab() -> None:
    try:
        import cleanlab  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "finding suspect labels needs cleanlab and scikit-learn: pip install 'annotator[learn]'"
        ) from None


def find_suspects(
    session: Session, ds: Dataset, *, embeddings: str = DEFAULT_MODEL, folds: int = 5,
    run: int | None = None,
) -> SuspectsReport | BoxSuspectsReport:  # fmt: skip
    """Rank the finished images' labels by cleanlab's label quality on out-of-fold
    probabilities and store the ones it finds likely wrong as a new run of flags; on a detection
    dataset, compare the accepted boxes with model run `run`'s predictions. Commits."""
    if ds.task == "detection":
        from annotator.learn.box_suspects import find_box_suspects

        return find_box_suspects(session, ds, run)
    if run is not None:
        raise InvalidInputError(
            f"--run {run}: dataset {ds.name!r} is {ds.task}; a model run is compared with "
            "the labels of detection datasets only"
        )
    if folds < 2:
        raise InvalidInputError(f"--folds {folds}: must be at least 2")
    require_cleanlab()
    started = time.perf_counter()
    try:
        found = training_set(session, ds, embeddings)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message.replace("train needs", "suspects needs")) from None
    probs = out_of_fold(found.x, found.y, found.multilabel, folds)
    flags = _flags(ds, found, probs)
    run = write_flags(session, ds, flags, current_user())
    used = min(folds, len(found.y)) if found.multilabel else min(folds, min(_counts(found.y)))
    return SuspectsReport(run, embeddings, len(found.image_ids), used, len(flags),
                          time.perf_counter() - started)  # fmt: skip


def _counts(y: np.ndarray) -> list[int]:
    import numpy as np

    return [int(n) for n in np.bincount(y) if n]


def _flags(ds: Dataset, found: TrainingSet, probs: np.ndarray) -> list[NewFlag]:
    ids = {c.name: c.id for c in ds.classes}
    class_ids = [ids[name] for name in found.classes]
    if found.multilabel:
        return _multilabel_flags(found, probs, class_ids)
    return _classification_flags(found, probs, class_ids)


def _classification_flags(
    found: TrainingSet, probs: np.ndarray, class_ids: list[int]
) -> list[NewFlag]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ranked = find_label_issues(found.y, probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(found.y, probs, method="self_confidence")
    return [
        NewFlag(found.image_ids[i], class_ids[found.y[i]], class_ids[int(probs[i].argmax())],
                float(quality[i]))
        for i in ranked
    ]  # fmt: skip


def _multilabel_flags(found: TrainingSet, probs: np.ndarray, class_ids: list[int]) -> list[NewFlag]:
    """One flag per doubtful image, naming the class whose given 0/1 the model most disputes:
    suggested is that class when it is missing, None when it should go."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    labels = [[int(k) for k in row.nonzero()[0]] for row in found.y]
    ranked = find_label_issues(labels=labels, pred_probs=probs,
                               return_indices_ranked_by="self_confidence")  # fmt: skip
    quality = get_label_quality_scores(labels, probs)
    flags = []
    for i in ranked:
        k = int(abs(found.y[i] - probs[i]).argmax())
        missing = found.y[i][k] == 0 and probs[i][k] >= MULTILABEL_THRESHOLD
        flags.append(NewFlag(found.image_ids[i], class_ids[k],
                             class_ids[k] if missing else None, float(quality[i])))  # fmt: skip
    return flags
