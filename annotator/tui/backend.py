"""The labelling app's backend: its link to the store and the image files, called from
Textual thread workers (never from the UI thread): locate an image in the queue, read it with
its labels, decode its frame, count where it stands, and apply one change through
`annotator.store.*` (the same use cases the CLI uses), passing the revision the screen showed.

A person's own quick successive edits of one image must not refuse each other: the screen sends
the revision it showed, which lags behind while earlier edits are in flight. The backend knows
which revisions it produced itself and maps them to the latest one; a revision produced by
anyone else still fails with ConflictError. No textual imports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from annotator.errors import ConflictError
from annotator.store import edits, leases, pace
from annotator.store import queue as q
from annotator.store.datasets import list_datasets
from annotator.store.db import Store, reading
from annotator.store.progress import Progress, progress
from annotator.store.types import Session
from annotator.store.undo import redo, undo
from annotator.tui.render import Abandoned, Frame, FrameCache, Mode, frame_key, make_frame

LEASE_AHEAD = 2  # images leased at a time: the one shown and the next (prefetched) one
CLAIM_TRIES = 8  # moves retried when another person leases the image found first
JUMPS = ("id", "find", "at")  # moves to a named image: shown even if someone holds it
TOTALS_CACHED_FROM_IMAGES = 50_000  # smaller datasets' totals are counted every time
TOTALS_EVERY_COST = 20  # larger ones' at most every 20x their cost (<= 5% of a core)


@dataclass(frozen=True, slots=True)
class Change:
    """One user action on the image shown, as the screen asks for it: the edit, the revision
    the screen showed, and what to tell the person once it is saved."""

    image_id: int
    expected_revision: int
    what: str
    edit: edits.Edit


@dataclass(frozen=True, slots=True)
class Timing:
    """The seconds a person spent on an image they changed something on, to record."""

    image_id: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Canvas:
    """What a frame is decoded for: canvas size in cells, mode, cell size in screen pixels."""

    cols: int
    rows: int
    mode: Mode
    cell_px: tuple[int, int]


@dataclass(frozen=True)
class _Totals:
    """A queue's size, the images done and all images, as counted at `at` in `cost` seconds."""

    values: tuple[int, int, int]
    at: float
    cost: float

    def fresh(self, now: float) -> bool:
        big = self.values[2] >= TOTALS_CACHED_FROM_IMAGES
        return big and now - self.at < self.cost * TOTALS_EVERY_COST


def _count_totals(s: Session, dataset_id: int, spec: q.QueueSpec, now: float) -> _Totals:
    started = time.perf_counter()
    images = q.total(s, dataset_id, q.QueueSpec("all", spec.order))
    unlabeled = q.total(s, dataset_id, q.QueueSpec("unlabeled", spec.order))
    size = q.total(s, dataset_id, spec)
    return _Totals((size, images - unlabeled, images), now, time.perf_counter() - started)


class Backend:
    """Thread-safe store and file access for one labelling session."""

    def __init__(self, store: Store, author: str) -> None:
        self.store = store
        self.author = author
        self.frames = FrameCache()
        self._lock = threading.Lock()
        self._mine: dict[int, set[int]] = {}
        self._latest: dict[int, int] = {}
        self.lease_ttl_s = leases.DEFAULT_TTL_S
        self.leased_in: set[int] = set()
        self._totals: dict[tuple[int, q.QueueSpec], _Totals] = {}

    def dataset(self, name: str) -> q.DatasetInfo:
        with self.store.session(readonly=True) as s:
            return q.dataset_info(s, name)

    def find_view(self, dataset_id: int, spec: q.QueueSpec, how: str, image_id: int | None,
                  arg: Any = None) -> q.ImageView | None:  # fmt: skip
        """The image a move leads to, read fresh with its labels (None: there is none).
        A move through the queue skips images another person holds and leases the image
        served (and the next few) to this person; a jump to a named image shows it anyway."""
        spec = replace(spec, holder=self.author)
        with self.store.session() as s:
            target = _locate(s, dataset_id, spec, how, image_id, arg)
            if how in JUMPS:
                if target is not None:
                    self._claim(s, dataset_id, spec, target)
            else:
                target = self._claimed(s, dataset_id, spec, target, lambda: _locate(
                    s, dataset_id, spec, how, image_id, arg))  # fmt: skip
            return q.load_view(s, target, self.author) if target is not None else None

    def _claimed(self, s: Any, dataset_id: int, spec: q.QueueSpec, target: int | None,
                 again: Callable[[], int | None]) -> int | None:  # fmt: skip
        """`target`, or the next image the move finds, once this person holds it: an image
        of the queue is never served to two people (short of overlap) at once."""
        for _ in range(CLAIM_TRIES):
            if target is None or self._claim(s, dataset_id, spec, target):
                return target
            target = again()
        raise ConflictError("other people are taking the next images right now: move again")

    def _claim(self, s: Any, dataset_id: int, spec: q.QueueSpec, target: int) -> bool:
        """Lease `target` and the images after it in the queue; False if someone else got
        `target` first. Releases this person's leases on images it moved away from."""
        window = [target]
        while len(window) < LEASE_AHEAD:
            after = q.step(s, spec, window[-1])
            if after is None or after in window:
                break
            window.append(after)
        got = leases.claim(s, dataset_id, window, self.author, ttl_s=self.lease_ttl_s)
        self.leased_in.add(dataset_id)
        leases.keep_only(s, dataset_id, self.author, got)
        return target in got

    def heartbeat(self) -> None:
        """Keep this person's leases alive while the app is open."""
        with self.store.session() as s:
            for dataset_id in sorted(self.leased_in):
                leases.heartbeat(s, dataset_id, self.author, ttl_s=self.lease_ttl_s)

    def release(self) -> None:
        """Give this person's images back to the queue (quitting)."""
        with self.store.session() as s:
            for dataset_id in sorted(self.leased_in):
                leases.release(s, dataset_id, self.author)
        self.leased_in.clear()

    def view(self, image_id: int) -> q.ImageView:
        with self.store.session(readonly=True) as s:
            return q.load_view(s, image_id, self.author)

    def frame(self, view: q.ImageView, canvas: Canvas, urgent: bool = True,
              cancelled: Callable[[], bool] = bool) -> Frame:  # fmt: skip
        """The image decoded and scaled for the canvas, from the cache when prefetched."""
        key = frame_key(view.id, (canvas.cols, canvas.rows), canvas.mode)
        size = (view.sample.width or 1, view.sample.height or 1)

        def make(pause: Callable[[], None]) -> Frame:
            return make_frame(view.id, view.file, view.sample.orientation, size,
                              (canvas.cols, canvas.rows), canvas.mode, canvas.cell_px,
                              pause)  # fmt: skip

        return self.frames.obtain(key, make, urgent, cancelled)

    def busy(self) -> None:
        """The UI is showing a move: background decodes wait."""
        self.frames.quiet.clear()

    def calm(self) -> None:
        self.frames.quiet.set()

    def prefetch(self, spec: q.QueueSpec, image_id: int, count: int, canvas: Canvas,
                 cancelled: Callable[[], bool]) -> None:  # fmt: skip
        """Decode the next `count` images of the queue ahead of time (those not cached),
        stopping as soon as `cancelled()` says the user has moved on."""
        current: int | None = image_id
        for _ in range(count):
            with self.store.session(readonly=True) as s:
                current = q.step(s, spec, current) if current is not None else None
                if current is None or cancelled():
                    return
                key = frame_key(current, (canvas.cols, canvas.rows), canvas.mode)
                cached = self.frames.get(key) is not None
                view = None if cached else q.load_view(s, current, self.author)
            if view is not None:
                try:
                    self.frame(view, canvas, urgent=False, cancelled=cancelled)
                except Abandoned:
                    return

    def counts(self, dataset_id: int, spec: q.QueueSpec, image_id: int) -> tuple[int, ...]:
        """(position, queue size, images done, images) for the status bar; done = every
        status but unlabeled. Index range counts, run after the person pauses. The three
        totals are counted again each time on a dataset under TOTALS_CACHED_FROM_IMAGES
        images; on a larger one at most every TOTALS_EVERY_COST times what counting them took
        (a queue of a million images would otherwise keep a core busy while a person labels),
        so there the sizes in the status bar may lag the last few edits."""
        with self.store.session(readonly=True) as s:
            position = q.position(s, spec, image_id)
            key = (dataset_id, spec)
            cached = self._totals.get(key)
            now = time.monotonic()
            if cached is None or not cached.fresh(now):
                cached = _count_totals(s, dataset_id, spec, now)
                self._totals[key] = cached
            return (position, *cached.values)

    def apply(self, change: Change) -> q.ImageView:
        """Commit one change; returns the image as it is afterwards."""
        expected = self._expected(change.image_id, change.expected_revision)
        with self.store.session() as s:
            edits.apply(s, change.edit, self.author, expected)
            reading(s)  # the change is committed: reading it back waits for no writer
            view = q.load_view(s, change.image_id, self.author)
        self._produced(change.image_id, expected, view.revision)
        return view

    def revert(self, dataset_id: int, again: bool) -> list[int]:
        """Undo (or redo, `again`) the author's newest action; the images it touched."""
        with self.store.session() as s:
            touched = (redo if again else undo)(s, dataset_id, self.author)
            reading(s)
            for image_id in touched:
                rev = q.load_view(s, image_id, self.author).revision
                self._produced(image_id, rev - 1, rev)
        return touched

    def forget(self, image_id: int) -> None:
        """After a refusal: the screen's next revision comes fresh from the store."""
        with self._lock:
            self._mine.pop(image_id, None)
            self._latest.pop(image_id, None)

    def _expected(self, image_id: int, shown: int) -> int:
        with self._lock:
            if shown in self._mine.get(image_id, ()):
                return self._latest[image_id]
            return shown

    def _produced(self, image_id: int, before: int, after: int) -> None:
        with self._lock:
            self._mine.setdefault(image_id, set()).update((before, after))
            self._latest[image_id] = after

    def record_time(self, dataset_id: int, timing: Timing) -> None:
        """Record the seconds this person spent on an image (per-annotator figures)."""
        with self.store.session() as s:
            pace.record_time(s, dataset_id, timing.image_id, self.author, timing.seconds)

    def annotators(self, datasets: list[Progress]) -> dict[str, list[pace.AnnotatorFigures]]:
        """Per dataset (by name): each person's figures (for the overview screen)."""
        with self.store.session(readonly=True) as s:
            return {ds.name: pace.annotator_figures(s, ds.id) for ds in list_datasets(s)
                    if ds.name in {p.name for p in datasets}}  # fmt: skip

    def overview(self) -> list[Progress]:
        """Progress of every dataset in the database (for the overview screen)."""
        with self.store.session(readonly=True) as s:
            return [progress(s, ds) for ds in list_datasets(s)]

    def accuracy(self, dataset_id: int) -> float | None:
        """The cross-validated accuracy of the dataset's newest trained model (None: none)."""
        from annotator.learn.train import latest_accuracy
        from annotator.store.models import Dataset

        with self.store.session(readonly=True) as s:
            return latest_accuracy(s, s.get_one(Dataset, dataset_id))

    def retrain(self, dataset_id: int, progress: Callable[[int, int], None]) -> Any:
        """Embed the images without a vector, train on the accepted labels and store the
        proposals (`annotator.learn.loop`); returns its RetrainReport."""
        from annotator.learn.loop import retrain
        from annotator.store.models import Dataset

        with self.store.session() as s:
            return retrain(s, s.get_one(Dataset, dataset_id), progress)


def _locate(s: Any, dataset_id: int, spec: q.QueueSpec, how: str, image_id: int | None,
            arg: Any) -> int | None:  # fmt: skip
    """The id of the image a move leads to."""
    if how == "step" and image_id is not None:
        return _walk(s, spec, image_id, int(arg))
    if how == "unlabeled" and image_id is not None:
        return q.next_unlabeled(s, spec, image_id)
    if how == "at":
        return q.at_position(s, dataset_id, spec, int(arg))
    if how == "find":
        return q.find(s, dataset_id, str(arg), image_id)
    if how == "id":
        return int(arg)
    return q.first(s, dataset_id, spec)


def _walk(session: Any, spec: q.QueueSpec, image_id: int, steps: int) -> int | None:
    """`steps` images on (negative: back); stops at the end of the queue. None if no move."""
    current, moved = image_id, None
    for _ in range(abs(steps)):
        found = q.step(session, spec, current, forward=steps > 0)
        if found is None:
            break
        current = moved = found
    return moved
