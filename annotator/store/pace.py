"""Per-annotator figures of a dataset (`stats`, the TUI's overview): label changes and images
each person changed, labels per hour and the median seconds they spent per image. The
labelling app records the seconds spent on each image a person changed something on
(`record_time`, from its write worker). Labels per hour: label changes divided by the hours
recorded on images, or (no times recorded: changes made outside the app) by the span from the
person's first to last change, at least a minute. The query is `annotator.store.summary`'s."""

from __future__ import annotations

from annotator.store import summary
from annotator.store.models import ImageTime
from annotator.store.summary import AnnotatorFigures
from annotator.store.types import Session

__all__ = ["AnnotatorFigures", "annotator_figures", "record_time"]


def record_time(session: Session, dataset_id: int, image_id: int, author: str,
                seconds: float) -> None:  # fmt: skip
    """Record that `author` spent `seconds` on an image in the labelling app. Commits."""
    session.add(ImageTime(dataset_id=dataset_id, image_id=image_id, author=author,
                          seconds=max(0.0, float(seconds))))  # fmt: skip
    session.commit()


def annotator_figures(session: Session, dataset_id: int) -> list[AnnotatorFigures]:
    """Every person's figures (model runs and bulk changes such as imports left out), by name;
    the query is `annotator.store.summary`'s, which `stats` runs too."""
    return summary.annotator_figures(summary.session_rows(session), dataset_id)
