"""The labelling screen: the image as large as the terminal allows with its boxes, the class
list, the image's labels, a status bar and a footer of keys. This module holds the screen's
state and its moves through the queue; the actions that change labels are in `editing`.

Every store call runs in a thread worker that posts a message back (`annotator.tui.messages`):
moves (locate + read + decode, exclusive: only the newest counts), counts (debounced), the
prefetch of the next images, and changes, which run one at a time in the order they were made.
Each change commits at once through `annotator.store.*`, citing the revision shown."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from annotator.config import Settings
from annotator.errors import AnnotatorError
from annotator.store.edits import SetStatus
from annotator.store.queue import DatasetInfo, ImageView, QueueSpec
from annotator.tui.backend import Backend, Canvas, Change, Timing
from annotator.tui.bindings import LABEL_KEYS, bindings
from annotator.tui.draft import Draft
from annotator.tui.messages import Counted, FrameReady, Refused, Reverted, Saved, Shown, Timed
from annotator.tui.render import Frame, Mode
from annotator.tui.screens.editing import EditingMixin, Revert
from annotator.tui.screens.learning import LearningMixin
from annotator.tui.widgets.canvas import ImageCanvas, Overlay
from annotator.tui.widgets.classlist import ClassList, LabelList
from annotator.tui.widgets.statusbar import Status, StatusBar

RATE_AFTER_H = 1 / 60  # labels per hour is shown once the session is a minute old
SETTLE_S = 0.04  # background work waits this long after an image is shown (it is drawn by then)


class LabellingScreen(EditingMixin, LearningMixin, Screen[None]):
    DEFAULT_CSS = """
    LabellingScreen #main { height: 1fr; }
    LabellingScreen #side { width: 34; height: 1fr; border-left: solid $primary-background;
                            background: $surface; }
    LabellingScreen .title { text-style: bold; padding: 0 1; margin-top: 1; height: 1;
                             color: $text-muted; }
    LabellingScreen #class-scroll { height: auto; max-height: 50%; }
    LabellingScreen #hint { padding: 0 1; height: 7; color: $warning; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*bindings(LABEL_KEYS)]
    AUTO_FOCUS = "ImageCanvas"

    def __init__(self, backend: Backend, info: DatasetInfo, spec: QueueSpec, settings: Settings,
                 mode: Mode, cell_px: tuple[int, int], clock: Callable[[], float],
                 count_delay: float = 0.25) -> None:  # fmt: skip
        super().__init__()
        self.backend, self.info, self.spec, self.settings = backend, info, spec, settings
        self.mode, self.cell_px, self.clock, self.count_delay = mode, cell_px, clock, count_delay
        self.view: ImageView | None = None
        self.frame: Frame | None = None
        self.selected: int | None = None
        self.draft: Draft | None = None
        self.cursor: tuple[float, float] | None = None
        self.active_class = 0
        self.counts: tuple[int, ...] | None = None
        self.steps = 0  # moves asked for and not shown yet (n pressed quickly)
        self.moves = self.shown_move = 0  # moves started / the one shown
        self.writes: deque[Change | Revert | Timing] = deque()
        self.shown_at = clock()  # when the image on screen was shown
        self.worked_on: int | None = None  # it, once the person changed something there
        self.writing = False
        self.labels_made = 0
        self.started = clock()
        self.settled = False  # the first image (or the empty queue) has been shown
        self._count_timer: Timer | None = None
        self._keys_state: tuple[bool, ...] = ()
        self._hint: str | None = None

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="main"):
            yield ImageCanvas(self.mode, id="canvas")
            # fixed sizes: updating the panel on each move repaints it, never re-lays the screen
            with Vertical(id="side"):
                yield Static("Classes", classes="title")
                with VerticalScroll(id="class-scroll"):
                    yield ClassList(len(self.info.classes), id="classes")
                yield Static("Labels on this image", classes="title")
                yield LabelList(id="labels")
                yield Static("", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        canvas = self.canvas
        canvas.palette = {c.name: c for c in self.info.classes}
        canvas.loading_text = "loading…"
        self.refresh_panels()
        self.call_after_refresh(self.go, "first")
        self.read_accuracy()

    @property
    def canvas(self) -> ImageCanvas:
        return self.query_one("#canvas", ImageCanvas)

    def canvas_spec(self) -> Canvas:
        size = self.canvas.size
        return Canvas(max(1, size.width), max(1, size.height), self.mode, self.cell_px)

    # -- moving through the queue ---------------------------------------------------------------

    def go(self, how: str, arg: Any = None) -> None:
        """Start a move; with `step`, quick repeated presses add up instead of racing."""
        self.app.note_activity()  # type: ignore[attr-defined]
        self.backend.busy()
        current = self.view.id if self.view else None
        if how == "step":
            self.steps += int(arg)
            arg = self.steps
        self.moves += 1  # only the newest move's result is shown
        self.load(how, current, arg, self.canvas_spec(), self.moves)

    @property
    def moving(self) -> bool:
        return self.shown_move != self.moves

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, how: str, image_id: int | None, arg: Any, canvas: Canvas, seq: int) -> None:
        worker = get_current_worker()
        view = self.backend.find_view(self.info.id, self.spec, how, image_id, arg)
        if view is None:
            if not worker.is_cancelled:
                self.post_message(Shown(None, None, how, seq, _nothing(how, self.spec)))
            return
        frame = self.backend.frame(view, canvas)
        if not worker.is_cancelled:
            self.post_message(Shown(view, frame, how, seq))

    @on(Shown)
    def shown(self, message: Shown) -> None:
        if message.seq != self.moves:
            return  # a move overtaken by a newer one
        self.shown_move = message.seq
        self.steps = 0
        self.settled = True
        if message.view is None:
            self.backend.calm()
            if self.view is None:
                self.canvas.loading_text = message.note
                self.canvas.show(None)
            else:
                self.notify(message.note, timeout=3)
            self.refresh_panels()
            return
        changed = self.view is None or self.view.id != message.view.id
        if changed:
            self.leave()
        self.view, self.frame = message.view, message.frame
        if changed:
            self.selected, self.draft = None, None
            self.cursor = None
        self.canvas.show(self.frame, self.overlay())
        self.refresh_panels()
        self.schedule_counts()
        # once this image is on screen: tidy up, then decode the next one
        image_id, canvas = self.view.id, self.canvas_spec()
        self.set_timer(SETTLE_S, lambda: self.after_shown(image_id, canvas))

    def after_shown(self, image_id: int, canvas: Canvas) -> None:
        if self.moving or self.view is None or self.view.id != image_id:
            return  # the person has already moved on: the newer move will do this
        self.app.gc.after_frame()  # type: ignore[attr-defined]
        self.backend.calm()
        self.prefetch(image_id, canvas)

    @work(thread=True, exclusive=True, group="prefetch", exit_on_error=False)
    def prefetch(self, image_id: int, canvas: Canvas) -> None:
        worker = get_current_worker()
        self.backend.prefetch(self.spec, image_id, self.settings.prefetch, canvas,
                              lambda: worker.is_cancelled)  # fmt: skip

    def schedule_counts(self) -> None:
        if self._count_timer is not None:
            self._count_timer.stop()
        if self.view is None:
            return
        image_id = self.view.id
        if self.count_delay <= 0:
            self.count(image_id)
        else:
            self._count_timer = self.set_timer(self.count_delay, lambda: self.count(image_id))

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def count(self, image_id: int) -> None:
        figures = self.backend.counts(self.info.id, self.spec, image_id)
        if not get_current_worker().is_cancelled:
            self.post_message(Counted(image_id, *figures))

    @on(Counted)
    def counted(self, message: Counted) -> None:
        if self.view is not None and self.view.id == message.image_id:
            self.counts = (message.position, message.total, message.done, message.images)
            self.refresh_panels()

    @on(ImageCanvas.Resized)
    def resized(self) -> None:
        if self.view is not None:
            self.render_frame(self.view, self.canvas_spec())

    @work(thread=True, exclusive=True, group="render", exit_on_error=False)
    def render_frame(self, view: ImageView, canvas: Canvas) -> None:
        frame = self.backend.frame(view, canvas)
        if not get_current_worker().is_cancelled:
            self.post_message(FrameReady(frame))

    @on(FrameReady)
    def frame_ready(self, message: FrameReady) -> None:
        if self.view is not None and message.frame.image_id == self.view.id:
            self.frame = message.frame
            self.canvas.show(self.frame, self.overlay())

    def set_queue(self, spec: QueueSpec | None) -> None:
        if spec is None or spec == self.spec:
            return
        self.spec = spec
        self.counts = None
        self.notify(f"queue: {self.queue_name()}", timeout=2)
        self.go("first")

    # -- changes, one at a time, in order -------------------------------------------------------

    def submit(self, job: Change | Revert) -> None:
        self.app.note_activity()  # type: ignore[attr-defined]
        if isinstance(job, Change) and self.view is not None and job.image_id == self.view.id:
            self.worked_on = job.image_id
        self.writes.append(job)
        self.pump()

    def leave(self) -> None:
        """The person moves on from the image shown: record the seconds spent on it (when they
        changed something there), on the write worker after the changes before it."""
        if self.view is not None and self.worked_on == self.view.id:
            self.writes.append(Timing(self.view.id, self.clock() - self.shown_at))
            self.pump()
        self.shown_at, self.worked_on = self.clock(), None

    def pump(self) -> None:
        if not self.writing and self.writes:
            self.writing = True
            self.write(self.writes.popleft())

    @work(thread=True, group="write", exit_on_error=False)
    def write(self, job: Change | Revert | Timing) -> None:
        if isinstance(job, Revert):
            self.post_message(self.backend_revert(job))
            return
        if isinstance(job, Timing):
            with contextlib.suppress(AnnotatorError):  # a figure lost, never the labels
                self.backend.record_time(self.info.id, job)
            self.post_message(Timed())
            return
        try:
            view = self.backend.apply(job)
        except AnnotatorError as exc:
            self.backend.forget(job.image_id)
            self.post_message(Refused(job.image_id, exc.message, self._fresh(job.image_id)))
            return
        self.post_message(Saved(view, job.what, 0 if isinstance(job.edit, SetStatus) else 1))

    def backend_revert(self, job: Revert) -> Reverted | Refused:
        try:
            touched = self.backend.revert(self.info.id, job.again)
        except AnnotatorError as exc:
            return Refused(None, exc.message)
        return Reverted(touched, None, "redo" if job.again else "undo")

    def _fresh(self, image_id: int) -> ImageView | None:
        try:
            return self.backend.view(image_id)
        except AnnotatorError:
            return None

    def write_done(self) -> None:
        self.writing = False
        self.pump()

    @on(Timed)
    def timed(self) -> None:
        self.write_done()

    @on(Saved)
    def saved(self, message: Saved) -> None:
        self.labels_made += message.labels_made
        self.apply_view(message.view)
        self.write_done()
        self.schedule_counts()

    @on(Refused)
    def refused(self, message: Refused) -> None:
        self.notify(message.message, title="not saved", severity="warning", timeout=6)
        if message.image_id is not None:
            stale = message.image_id
            self.writes = deque(
                j for j in self.writes if not (isinstance(j, Change) and j.image_id == stale)
            )
        if message.view is not None:
            if self.view is not None and self.view.id == message.view.id and not self.moving:
                self.apply_view(message.view, force=True)
            else:  # the person moved on (or is moving): bring them back to see what changed
                self.go("id", message.view.id)
        self.write_done()

    @on(Reverted)
    def reverted(self, message: Reverted) -> None:
        self.write_done()
        if not message.image_ids:
            self.notify(f"nothing to {message.what}", timeout=2)
            return
        self.notify(f"{message.what}: {len(message.image_ids)} image(s) changed back", timeout=2)
        if self.view is not None and self.view.id in message.image_ids:
            self.go("id", self.view.id)
        else:
            self.go("id", message.image_ids[0])
        self.schedule_counts()

    def apply_view(self, view: ImageView, force: bool = False) -> None:
        """Show a fresher state of the image on screen (never an older one)."""
        if self.view is None or self.view.id != view.id:
            return
        if not force and view.revision < self.view.revision:
            return
        self.view = view
        if self.selected is not None and all(lb.id != self.selected for lb in view.labels):
            self.selected = None
        self.canvas.set_overlay(self.overlay())
        self.refresh_panels()

    @property
    def busy(self) -> bool:
        """Changes not yet committed (quitting waits for them)."""
        return self.writing or bool(self.writes)

    # -- what is drawn --------------------------------------------------------------------------

    def overlay(self) -> Overlay:
        draft, cls = self.draft, self.class_at(self.active_class)
        if draft is not None:
            cls = next((c for c in self.info.classes if c.id == draft.class_id), cls)
        name = cls.name if cls else "?"
        text = f"{'edit' if draft and draft.ann_id else 'new'} {name}"
        labels = self.view.labels if self.view else ()
        return Overlay(labels, self.selected, draft, text, cls.color if cls else "#ffffff",
                       self.cursor if self.info.task == "detection" else None)  # fmt: skip

    def refresh_panels(self) -> None:
        labels = self.view.labels if self.view else ()
        self.query_one(ClassList).show(self.info.classes, labels, self.active_class)
        colors = {c.name: c.color for c in self.info.classes}
        self.query_one(LabelList).show(labels, colors, self.selected)
        hint = self.hint()
        if hint != self._hint:
            self._hint = hint
            self.query_one("#hint", Static).update(hint, layout=False)
        self.query_one(StatusBar).show(self.status())
        keys_state = (self.draft is not None, self.selected is not None)
        if keys_state != self._keys_state:  # the footer is rebuilt only when keys change
            self._keys_state = keys_state
            self.refresh_bindings()

    def queue_name(self) -> str:
        cls = next((c for c in self.info.classes if c.id == self.spec.class_id), None)
        return self.spec.describe(cls.name if cls else None)

    def status(self) -> Status:
        pos, total, done, images = self.counts if self.counts else (None, None, None, None)
        view = self.view
        hours = (self.clock() - self.started) / 3600
        rate = self.labels_made / hours if self.labels_made and hours >= RATE_AFTER_H else None
        file = view.sample.path if view else ""
        size = f"{view.sample.width}×{view.sample.height}" if view else ""
        return Status(self.info.name, self.info.task, self.queue_name(), pos, total, done, images,
                      rate, file, size, view.status if view else "",
                      f"drawing: arrows move {self.draft.part}" if self.draft else "",
                      self.accuracy, (view.suspect or view.duplicate or "") if view else "",
                      self.learning)  # fmt: skip

    def hint(self) -> str:
        """What the keys do now, when that differs from the footer (drawing a box)."""
        if self.draft is None:
            if self.info.task == "detection":
                return "Draw a box: drag with the mouse, or b (keys: ?)"
            if self._pending():
                return "space: accept the prediction\n1-0: choose the class yourself"
            return ""
        return (
            f"Drawing a box ({self.draft.part}):\n arrows move it, shift: x10\n"
            " c: box / top-left / bottom-right\n 1-0: class\n enter: save, esc: cancel"
        )

    def refresh_all(self) -> None:
        self.canvas.set_overlay(self.overlay())
        self.refresh_panels()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.action_enabled(action, parameters)

    # -- errors from any worker, in one place ---------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = (
            str(error) if isinstance(error, AnnotatorError) else f"{type(error).__name__}: {error}"
        )
        self.notify(text, title="error", severity="error", timeout=8)
        if event.worker.group == "write":
            self.write_done()
        if event.worker.group == "learn":
            self.learning_failed()
        if event.worker.group == "load":
            self.steps, self.shown_move, self.settled = 0, self.moves, True
            self.backend.calm()


def _nothing(how: str, spec: QueueSpec) -> str:
    if how == "first":
        return f"The queue is empty ({spec.describe()}): press f to choose another, o for datasets"
    if how == "step":
        return "no more images this way in the queue"
    if how == "unlabeled":
        return "no unlabeled image left"
    if how == "find":
        return "no image with that in its name"
    return "no image there"
