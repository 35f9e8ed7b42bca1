"""The store's ORM models (SQLAlchemy 2.0, typed). Integrity lives here: foreign keys, check
constraints and a naming convention so Alembic migrations stay stable. Nothing engine-specific:
the same models run on SQLite and PostgreSQL. Must not depend on formats, prelabel, review, cli
or tui; pydantic models live at the edges, not here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TASKS = ("classification", "multilabel", "detection")
STATUSES = ("unlabeled", "labeled", "reviewed", "skipped")
SPLIT_NAMES = ("train", "val", "test")
KINDS = ("label", "box")
SOURCES = ("human", "model")
REVIEWS = ("pending", "accepted", "rejected")
VOTE = "vote"  # a label in one annotator's own layer of an overlap image: counts via consensus
ACTIONS = ("create", "edit", "delete", "review", "status", "split")
GROUP_KINDS = ("do", "undo", "redo")
RESOLUTIONS = ("edited", "confirmed", "superseded")  # how a suspect flag was cleared
BOX_SUSPECTS = ("missing", "swapped", "misplaced")  # what a detection suspect flag doubts


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class Dataset(Base):
    """A named set of images with one task and its classes."""

    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint(_in("task", TASKS), name="task"),
        UniqueConstraint("id", "task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(16))
    root: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    classes: Mapped[list[LabelClass]] = relationship(
        back_populates="dataset", order_by="LabelClass.position", cascade="all, delete-orphan"
    )


class LabelClass(Base):
    """A class of a dataset; `position` is its stable order (hotkeys, export indices)."""

    __tablename__ = "classes"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name"),
        UniqueConstraint("dataset_id", "position"),
        CheckConstraint("position >= 0", name="position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    color: Mapped[str] = mapped_column(String(7))

    dataset: Mapped[Dataset] = relationship(back_populates="classes")


class Image(Base):
    """An image file of a dataset, its displayed size and where it stands."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("dataset_id", "sha256"),
        UniqueConstraint("dataset_id", "path"),
        UniqueConstraint("id", "dataset_id"),
        CheckConstraint("width > 0 AND height > 0", name="size"),
        CheckConstraint("orientation BETWEEN 1 AND 8", name="orientation"),
        CheckConstraint("split IS NULL OR " + _in("split", SPLIT_NAMES), name="split"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint("uncertainty IS NULL OR uncertainty >= 0", name="uncertainty"),
        Index("ix_images_dataset_status", "dataset_id", "status", "id"),
        Index("ix_images_dataset_uncertainty", "dataset_id", "uncertainty"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    orientation: Mapped[int] = mapped_column(Integer, default=1)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    split: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(10), default="unlabeled")
    uncertainty: Mapped[float | None] = mapped_column(Float)
    flag: Mapped[str | None] = mapped_column(Text)  # why a person must look (refused labels)
    phash: Mapped[int | None] = mapped_column(BigInteger)  # 64-bit perceptual hash, as signed
    revision: Mapped[int] = mapped_column(Integer, default=1)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SuspectFlag(Base):
    """A label that cross-validation says may be wrong: the class given, the class a model
    trained on the other folds suggests, and the label's quality (0 worst .. 1); on a detection
    dataset, a box a model run disputes (`kind`, and the box). Open while
    `cleared_at` is null; an edit of the image since (its revision moved on from
    `image_revision`), a confirmation, or a newer `suspects` run clears it, saying how and by
    whom. Rows are never deleted: they are the flags' history."""

    __tablename__ = "suspect_flags"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 1", name="score"),
        CheckConstraint(
            "resolution IS NULL OR " + _in("resolution", RESOLUTIONS), name="resolution"
        ),
        CheckConstraint("kind IS NULL OR " + _in("kind", BOX_SUSPECTS), name="kind"),
        Index("ix_suspect_flags_dataset_open", "dataset_id", "cleared_at", "score"),
        Index("ix_suspect_flags_image", "image_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    annotation_id: Mapped[int | None] = mapped_column(Integer)  # no FK: outlives the label
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    suggested_class_id: Mapped[int | None] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE")
    )
    score: Mapped[float] = mapped_column(Float)
    run: Mapped[int] = mapped_column(Integer)  # the dataset's suspects run that raised it
    image_revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column()
    cleared_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(9))  # detection: BOX_SUSPECTS; NULL: a label
    x: Mapped[float | None] = mapped_column(Float)  # detection: the box in doubt (displayed
    y: Mapped[float | None] = mapped_column(Float)  # pixels): the predicted box of a missing
    w: Mapped[float | None] = mapped_column(Float)  # flag, else the labelled box; its
    h: Mapped[float | None] = mapped_column(Float)  # annotation_id says which annotation


class DuplicateMember(Base):
    """An image's place in a group of near-duplicates found by `dupes`. `group_id` is the
    smallest image id of the group; `kept` false marks the image a duplicate of the one kept,
    left out of exports (undoable)."""

    __tablename__ = "duplicates"
    __table_args__ = (
        CheckConstraint("distance >= 0", name="distance"),
        Index("ix_duplicates_dataset_group", "dataset_id", "group_id"),
    )

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(Integer)
    distance: Mapped[int] = mapped_column(Integer)  # Hamming distance to its nearest member
    kept: Mapped[bool] = mapped_column(default=True)
    found_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelRun(Base):
    """One prelabelling run of a model over some images of a dataset."""

    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    prediction_count: Mapped[int] = mapped_column(Integer, default=0)


class Annotation(Base):
    """A whole-image label or a box on an image, from a person or a model run.

    `dataset_id` and `task` are carried so the schema itself can refuse a box outside a detection
    dataset (a composite foreign key onto datasets(id, task) plus a check)."""

    __tablename__ = "annotations"
    __table_args__ = (  # AUTOINCREMENT: an id is never reused after a delete (mirrors cite ids)
        ForeignKeyConstraint(
            ["dataset_id", "task"],
            ["datasets.id", "datasets.task"],
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        ForeignKeyConstraint(
            ["image_id", "dataset_id"], ["images.id", "images.dataset_id"], ondelete="CASCADE"
        ),
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint(_in("source", SOURCES), name="source"),
        CheckConstraint(_in("review", (*REVIEWS, VOTE)), name="review"),
        CheckConstraint(
            f"(review = '{VOTE}' AND layer IS NOT NULL) OR (review <> '{VOTE}' AND layer IS NULL)",
            name="layer",
        ),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= 1)", name="score"),
        CheckConstraint(
            "(kind = 'label' AND x IS NULL AND y IS NULL AND w IS NULL AND h IS NULL)"
            " OR (kind = 'box' AND task = 'detection' AND x IS NOT NULL AND y IS NOT NULL"
            " AND w > 0 AND h > 0)",
            name="box",
        ),
        CheckConstraint(
            "(source = 'human' AND run_id IS NULL) OR (source = 'model' AND run_id IS NOT NULL)",
            name="run",
        ),
        CheckConstraint("revision >= 1", name="revision"),
        Index("ix_annotations_image", "image_id"),
        Index("ix_annotations_dataset_review", "dataset_id", "review"),
        Index("ix_annotations_run", "run_id"),
        Index("ix_annotations_class", "class_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[int] = mapped_column(Integer)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(5))
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    w: Mapped[float | None] = mapped_column(Float)
    h: Mapped[float | None] = mapped_column(Float)
    iscrowd: Mapped[bool] = mapped_column(default=False)
    points: Mapped[list[float] | None] = mapped_column(JSON)  # a polygon's x,y pairs (pixels)
    source: Mapped[str] = mapped_column(String(5), default="human")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"))
    score: Mapped[float | None] = mapped_column(Float)
    review: Mapped[str] = mapped_column(String(8), default="accepted")
    note: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    layer: Mapped[str | None] = mapped_column(String(100))  # whose vote (overlap); NULL: shared


class HistoryEvent(Base):
    """Append-only record of one change. Events of one user action share `group_id`; undo and
    redo write new groups whose `target_group` names the group they reverse. No foreign keys:
    history outlives what it describes."""

    __tablename__ = "history"
    __table_args__ = (
        CheckConstraint(_in("action", ACTIONS), name="action"),
        CheckConstraint(_in("group_kind", GROUP_KINDS), name="group_kind"),
        Index("ix_history_dataset_author", "dataset_id", "author", "id"),
        Index("ix_history_image", "image_id"),
        Index("ix_history_group", "group_id"),
        Index("ix_history_target", "target_group"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int | None] = mapped_column(Integer)
    annotation_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(8))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    group_id: Mapped[str] = mapped_column(String(32))
    group_kind: Mapped[str] = mapped_column(String(4), default="do")
    target_group: Mapped[str | None] = mapped_column(String(32))


class Snapshot(Base):
    """A named point of a dataset's history (`annotator snapshot`): the history position, the
    classes as they were and the counts; the images as they were are in `snapshot_images`."""

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("dataset_id", "tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)  # max history id at the time
    author: Mapped[str] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    classes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class SnapshotImage(Base):
    """An image of a dataset as it was when a snapshot was taken (split and status included),
    kept even when the image is removed later, so an export at the snapshot can name it."""

    __tablename__ = "snapshot_images"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    orientation: Mapped[int] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(10))
    flag: Mapped[str | None] = mapped_column(Text)


class SyncState(Base):
    """Where an external mirror (a FiftyOne dataset, ...) stands: the history position it
    reflects. Keyed by dataset and mirror name."""

    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("dataset_id", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RunImage(Base):
    """That a model run processed an image (with or without predictions): what lets a killed
    run resume, and what the image's uncertainty came from."""

    __tablename__ = "run_images"
    __table_args__ = (
        CheckConstraint("uncertainty IS NULL OR uncertainty >= 0", name="uncertainty"),
        CheckConstraint("predictions >= 0", name="predictions"),
        Index("ix_run_images_image", "image_id"),
    )

    run_id: Mapped[int] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    uncertainty: Mapped[float | None] = mapped_column(Float)
    predictions: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Embedding(Base):
    """One image's feature vector from one embedding model (a backbone's pooled features),
    stored as float16 bytes of length 2 * dim. Keyed by image and model name; `weights_sha256`
    says which weights made it, so other weights recompute it."""

    __tablename__ = "embeddings"
    __table_args__ = (CheckConstraint("dim > 0", name="dim"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """That `holder` is working on an image until `expires_at`: a person labelling it (scope
    "label") or a prelabelling worker processing it for a run (scope "run:<id>"). An expired
    lease counts for nothing; a killed holder's images return to the queue when it expires."""

    __tablename__ = "leases"
    __table_args__ = (
        UniqueConstraint("scope", "image_id", "holder"),
        Index("ix_leases_dataset_scope", "dataset_id", "scope", "expires_at"),
        Index("ix_leases_image", "image_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class OverlapImage(Base):
    """An image to be labelled independently by `annotators` people (`annotator overlap`):
    each one's labels are votes in their own layer until consensus writes the shared layer."""

    __tablename__ = "overlap_images"
    __table_args__ = (
        CheckConstraint("annotators >= 2", name="annotators"),
        Index("ix_overlap_images_dataset", "dataset_id", "image_id"),
    )

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    annotators: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer)
    marked_by: Mapped[str] = mapped_column(String(100))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class OverlapDone(Base):
    """That `annotator` has finished their layer of an overlap image (a label given, or the
    image marked done as it is: an empty vote). They are not served it again."""

    __tablename__ = "overlap_done"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("overlap_images.image_id", ondelete="CASCADE"), primary_key=True
    )
    annotator: Mapped[str] = mapped_column(String(100), primary_key=True)
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImageTime(Base):
    """Seconds a person spent on an image in the labelling app (shown until they moved on),
    recorded when they changed something there: the per-annotator figures read it."""

    __tablename__ = "image_times"
    __table_args__ = (
        CheckConstraint("seconds >= 0", name="seconds"),
        Index("ix_image_times_dataset_author", "dataset_id", "author"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(100))
    seconds: Mapped[float] = mapped_column(Float)
    shown_at: Mapped[datetime] = mapped_column(default=utcnow)
