"""The FiftyOne side of the mirror: importing FiftyOne lazily (a missing install becomes a
MissingDependencyError that says how to install the extra), the mirror's names, field layout and
schema, and opening or creating the persistent FiftyOne dataset that mirrors a store dataset.
Holds no store logic beyond the dataset's name, task and classes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from annotator.errors import ConflictError, MissingDependencyError
from annotator.store.models import Dataset

INSTALL_HINT = "pip install 'annotator[review]'"
PREFIX = "annotator-"
GROUND_TRUTH, PRELABELS, REJECTED = "ground_truth", "prelabels", "rejected"
LABEL_FIELDS = (GROUND_TRUTH, PRELABELS, REJECTED)
FIELD_FOR_REVIEW = {"accepted": GROUND_TRUTH, "pending": PRELABELS, "rejected": REJECTED}
ID, REVISION = "annotator_id", "annotator_revision"
PUSHED = "annotator_labels"  # sample field: each label as the last push wrote it
TOKEN_KEY = "annotator_token"
DISAGREEMENT = "disagreement"

# tags set in the App that pull turns into decisions
LABEL_DECISIONS = {"accept": "accepted", "reject": "rejected", "fix": "pending"}
SAMPLE_DECISIONS = {"skip": "skipped", "relabel": "unlabeled"}
CONFLICT_TAG = "conflict"
FIX_NOTE = "marked 'fix' in FiftyOne"

# label attribute -> FiftyOne field class name
LABEL_ATTRS = {
    ID: "IntField",
    REVISION: "IntField",
    "source": "StringField",
    "model": "StringField",
    "run_id": "IntField",
    "note": "StringField",
    "iscrowd": "BooleanField",
}
SAMPLE_FIELDS = {
    ID: "IntField",
    REVISION: "IntField",
    "split": "StringField",
    "status": "StringField",
    "uncertainty": "FloatField",
    DISAGREEMENT: "BooleanField",
    PUSHED: "DictField",
}


def require_fiftyone() -> Any:
    """The `fiftyone` module, or a MissingDependencyError naming the extra to install."""
    try:
        import fiftyone
    except ImportError as exc:
        raise MissingDependencyError(
            f"reviewing in FiftyOne needs the review extra: {INSTALL_HINT} ({exc})"
        ) from exc
    return fiftyone


@contextmanager
def quiet() -> Iterator[None]:
    """FiftyOne's INFO logging and progress bars off while our own progress is shown."""
    fo = require_fiftyone()
    logger = logging.getLogger("fiftyone")
    level, bars = logger.level, fo.config.show_progress_bars
    logger.setLevel(logging.WARNING)
    fo.config.show_progress_bars = False
    try:
        yield
    finally:
        logger.setLevel(level)
        fo.config.show_progress_bars = bars


def default_name(dataset_name: str) -> str:
    """The FiftyOne dataset that mirrors a store dataset unless told otherwise."""
    return PREFIX + dataset_name


def target_key(fo_name: str) -> str:
    """The SyncState target of a FiftyOne mirror."""
    return f"fiftyone:{fo_name}"


def label_types(task: str) -> dict[str, str]:
    """The FiftyOne label class of each label field for a task."""
    if task == "detection":
        return dict.fromkeys(LABEL_FIELDS, "Detections")
    gt = "Classification" if task == "classification" else "Classifications"
    return {GROUND_TRUTH: gt, PRELABELS: "Classifications", REJECTED: "Classifications"}


def list_path(task: str, field: str) -> str:
    """Where a field's labels live: `field.detections`, `field.classifications` or `field`."""
    kind = label_types(task)[field]
    if kind == "Classification":
        return field
    return f"{field}.{kind.lower()}"


def dataset_exists(fo_name: str) -> bool:
    return bool(require_fiftyone().dataset_exists(fo_name))


def load(fo_name: str) -> Any:
    return require_fiftyone().load_dataset(fo_name)


def open_mirror(ds: Dataset, fo_name: str, token: str | None, full: bool) -> tuple[Any, bool]:
    """The FiftyOne dataset for `ds` and whether it was (re)created. An existing dataset that
    does not carry `token` mirrors something else: refused unless `full`, which replaces it."""
    fo = require_fiftyone()
    if fo.dataset_exists(fo_name):
        fods = fo.load_dataset(fo_name)
        theirs = fods.info.get(TOKEN_KEY)
        if token is not None and theirs == token:
            return fods, False
        if not full:
            raise ConflictError(
                f"FiftyOne dataset {fo_name!r} exists but does not mirror dataset {ds.name!r} "
                "of this database: push with --full to replace it, or pick --fo-dataset"
            )
        fods.delete()
    return create(ds, fo_name), True


def create(ds: Dataset, fo_name: str) -> Any:
    """A new persistent FiftyOne dataset with our schema, classes and colours."""
    fo = require_fiftyone()
    fods = fo.Dataset(fo_name, persistent=True)
    declare_schema(fods, ds.task)
    fods.create_index(ID, unique=True)
    fods.info = {TOKEN_KEY: uuid.uuid4().hex, "annotator_dataset": ds.name, "task": ds.task}
    fods.save()
    return fods


def declare_schema(fods: Any, task: str) -> None:
    """Every field and label attribute we write, declared up front so views and the App's
    sidebar know them even before a value exists."""
    fo = require_fiftyone()
    for name, kind in SAMPLE_FIELDS.items():
        fods.add_sample_field(name, getattr(fo, kind))
    for field, kind in label_types(task).items():
        fods.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=getattr(fo, kind))
        for attr, attr_kind in LABEL_ATTRS.items():
            fods.add_sample_field(f"{list_path(task, field)}.{attr}", getattr(fo, attr_kind))


def set_classes(fods: Any, ds: Dataset) -> None:
    """The dataset's classes, in order, and their colours in the App."""
    fo = require_fiftyone()
    names = [c.name for c in ds.classes]
    colors = [{"value": c.name, "color": c.color} for c in ds.classes]
    fods.default_classes = names
    fods.app_config.color_scheme = fo.ColorScheme(
        color_by="value",
        fields=[
            {"path": field, "colorByAttribute": "label", "valueColors": colors}
            for field in LABEL_FIELDS
        ],
    )
    fods.save()
