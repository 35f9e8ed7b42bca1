"""What a format importer hands the store (`Incoming` images with their labels, `Problem`s) and
`gc_paused`, which bulk jobs on either side use. Standard library and `annotator.annotation`
only: the formats layer loads without SQLAlchemy (an export from a SQLite file never needs it)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from annotator.annotation import Sample

FLAG_LISTED = 10  # refused labels an image's flag names one by one
# the empty list a streamed source's images share until their labels arrive (~170 B an image
# less at 10^6 images): never appended to, always replaced by a list of the image's own
SHARED_EMPTY: list[Any] = []


@dataclass(frozen=True, slots=True)
class Problem:
    """A record that could not be imported: the file, where in it, and why."""

    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.file, self.where, self.reason) if p)


@dataclass(slots=True)
class Incoming:
    """One image to import with its labels, and where each came from (for messages).

    `sample.path` is the image file. Boxes are pixels of the displayed image, or fractions of
    it when `normalized` (YOLO), scaled once the image's size is known. `declared` is the size
    the label file states, checked against the file. An image a label source lists (`labelled`)
    with no labels at all is a known negative; one no source labels stays unlabeled. `refused`
    names each of its labels that was refused: such an image is never a negative, it is stored
    unlabeled and flagged for a person to look at (its good labels are kept)."""

    sample: Sample
    file: str
    where: str = ""
    labelled: bool = True
    normalized: bool = False
    declared: tuple[int, int] | None = None
    label_file: str | None = None
    label_where: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    key: int = -1  # its position in a streamed source (whose labels arrive batch by batch)

    def refuse(self, problems: list[Problem], file: str, where: str, reason: str) -> None:
        """Record a refused label of this image: a problem for the report, a reason for the
        image's flag."""
        problems.append(Problem(file, where, reason))
        self.note_refused(f"{where}: {reason}" if where else reason)

    def note_refused(self, text: str) -> None:
        """Name a refused label in the image's flag."""
        if self.refused is SHARED_EMPTY:
            self.refused = []
        self.refused.append(text)

    def flag(self) -> str | None:
        """Why a person must look at this image (None when no label was refused)."""
        if not self.refused:
            return None
        shown = "; ".join(self.refused[:FLAG_LISTED])
        more = len(self.refused) - FLAG_LISTED
        tail = f"; and {more} more" if more > 0 else ""
        return f"import: {len(self.refused)} labels refused: {shown}{tail}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk job creates ~10^5 objects that all stay
    alive (it would rescan them over and over: a 2x slowdown); our objects hold no cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
