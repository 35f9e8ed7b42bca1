"""The messages workers post back to the labelling screen: small dataclasses, one per result.
The UI thread reacts to these; it never waits on the store or on files itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from annotator.store.queue import ImageView
from annotator.tui.render import Frame


@dataclass
class Shown(Message):
    """A move finished: the image to show now (None: nothing there, `note` says why)."""

    view: ImageView | None
    frame: Frame | None
    how: str
    seq: int
    note: str = ""


@dataclass
class FrameReady(Message):
    """A frame decoded for a new canvas size (after a resize)."""

    frame: Frame


@dataclass
class Counted(Message):
    """Where the image stands: its rank in the queue, the queue's size, dataset progress."""

    image_id: int
    position: int
    total: int
    done: int
    images: int


@dataclass
class Saved(Message):
    """A change was committed; `view` is the image as it is now in the store."""

    view: ImageView
    what: str
    labels_made: int = 1


@dataclass
class Refused(Message):
    """A change was refused (stale revision, deleted label, bad input): the message for the
    user and the image's current state when there is one."""

    image_id: int | None
    message: str
    view: ImageView | None = None


@dataclass
class Timed(Message):
    """The seconds spent on an image were written (a failure loses that figure only)."""


@dataclass
class Reverted(Message):
    """Undo or redo finished: the images it touched and what to show now."""

    image_ids: list[int] = field(default_factory=list)
    view: ImageView | None = None
    what: str = "undo"


@dataclass
class Learning(Message):
    """The retrain worker's progress, as the status bar shows it."""

    text: str


@dataclass
class Retrained(Message):
    """Retraining finished (`report`: the loop's RetrainReport), or the trained model's accuracy
    was read (`report` None)."""

    report: Any
    accuracy: float | None
