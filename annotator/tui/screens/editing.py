"""The labelling screen's actions: what each key does to the labels (assign, toggle, boxes by
keyboard or mouse, review of prelabels, skip, undo/redo) and to the view (selection, moves,
prompts). Changes are queued with `submit` as `Change`s citing the revision shown; nothing here
touches the store directly. Mixed into `LabellingScreen`, whose state it uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotator.annotation import Label
from annotator.store import edits
from annotator.store.queue import ClassInfo, QueueSpec
from annotator.tui.backend import Change
from annotator.tui.draft import Draft
from annotator.tui.screens.prompts import find_prompt, goto_prompt
from annotator.tui.screens.queue import QueueScreen
from annotator.tui.widgets.canvas import ImageCanvas

if TYPE_CHECKING:
    from textual.screen import Screen

    from annotator.config import Settings
    from annotator.store.queue import DatasetInfo, ImageView
    from annotator.tui.render import Frame

    _Base = Screen[None]
else:
    _Base = object

BOX_ONLY = ("box_start", "box_edit", "box_part")


@dataclass(frozen=True, slots=True)
class Revert:
    """Undo (or redo, `again`) the user's newest action."""

    again: bool = False


class EditingMixin(_Base):
    """The actions; the state they use is the screen's."""

    info: DatasetInfo
    spec: QueueSpec
    settings: Settings
    view: ImageView | None
    frame: Frame | None
    selected: int | None
    draft: Draft | None
    cursor: tuple[float, float] | None
    active_class: int
    counts: tuple[int, ...] | None

    if TYPE_CHECKING:

        def go(self, how: str, arg: Any = None) -> None: ...
        def submit(self, job: Change | Revert) -> None: ...
        def refresh_all(self) -> None: ...
        def set_queue(self, spec: QueueSpec | None) -> None: ...

    # -- which keys apply now -------------------------------------------------------------------

    def action_enabled(self, action: str, params: tuple[object, ...]) -> bool | None:
        """True: the key works now; None: not now (dimmed); False: not in this dataset."""
        detection = self.info.task == "detection"
        if action in BOX_ONLY and not detection:
            return False
        if action == "box_part":
            return self.draft is not None
        if action == "arrow" and len(params) == 3 and params[1] != 0:
            return self.draft is not None
        if action == "accept_shown":
            return not detection
        if action == "accept_all":
            return self.info.task != "classification"
        if action in ("review", "delete"):
            return self._selected_label() is not None or None
        if action == "box_edit":
            label = self._selected_label()
            return (label is not None and label.box is not None) or None
        return True

    # -- labels ---------------------------------------------------------------------------------

    def class_at(self, index: int) -> ClassInfo | None:
        return self.info.classes[index] if 0 <= index < len(self.info.classes) else None

    def _change(self, what: str, edit: edits.Edit | Callable[[int], edits.Edit]) -> None:
        """Queue an edit of the image shown, if one is: `edit`, or what it builds from the
        image's id."""
        if self.view is None:
            return
        made = edit(self.view.id) if callable(edit) else edit
        self.submit(Change(self.view.id, self.view.revision, what, made))

    def action_digit(self, index: int) -> None:
        if self.class_at(index) is None:
            self.notify(f"there is no class {index + 1} in {self.info.name}", timeout=2)
            return
        self.apply_class(index)

    def action_cycle_class(self, delta: int) -> None:
        if self.info.classes:
            self.active_class = (self.active_class + delta) % len(self.info.classes)
            self.refresh_all()

    def action_enter(self) -> None:
        if self.draft is not None:
            self.action_box_commit()
        elif self.class_at(self.active_class) is not None:
            self.apply_class(self.active_class)

    def apply_class(self, index: int) -> None:
        """What choosing a class means here: assign, toggle, or the class of a box."""
        cls = self.class_at(index)
        assert cls is not None
        if self.info.task == "detection":
            self._box_class(index, cls)
        elif self.info.task == "multilabel":
            self._change(f"toggled {cls.name}", lambda image: edits.ToggleClass(image, cls.id))
        else:
            self._change(f"labelled {cls.name}", lambda image: edits.AssignClass(image, cls.id))
            if self.settings.advance_on_assign:
                self.go("step", 1)

    def _box_class(self, index: int, cls: ClassInfo) -> None:
        selected = self._selected_label()
        if self.draft is not None:
            self.draft = self.draft.with_class(cls.id)
        elif selected is not None and selected.id is not None:
            self._change(
                f"box is now {cls.name}", edits.EditAnnotation(selected.id, class_id=cls.id)
            )
        self.active_class = index
        self.refresh_all()

    def action_accept_shown(self) -> None:
        pending = self._pending()
        if not pending:
            self.notify("no prelabel to accept on this image", timeout=2)
            return
        if self.info.task == "classification":
            best = max(pending, key=lambda lb: lb.score or 0.0)
            if best.id is not None:
                self._change(f"accepted {best.class_name}", edits.AcceptAsLabel(best.id))
            if self.settings.advance_on_assign:
                self.go("step", 1)
        else:
            ids = tuple(lb.id for lb in pending if lb.id is not None)
            self._change("accepted the prelabels", edits.Review(ids, "accepted"))

    def action_accept_all(self) -> None:
        ids = tuple(lb.id for lb in self._pending() if lb.id is not None)
        if not ids:
            self.notify("no prelabel to accept on this image", timeout=2)
            return
        self._change(f"accepted {len(ids)} prelabels", edits.Review(ids, "accepted"))

    def action_review(self, decision: str) -> None:
        label = self._selected_label()
        if label is None or label.id is None:
            self.notify("select a label first (tab)", timeout=2)
            return
        self._change(f"{decision} {label.class_name}", edits.Review((label.id,), decision))

    def action_delete(self) -> None:
        label = self._selected_label()
        if label is None or label.id is None:
            self.notify("select a label first (tab)", timeout=2)
            return
        self._change(f"deleted {label.class_name}", edits.Delete(label.id))
        self.selected = None
        self.refresh_all()

    def action_skip(self) -> None:
        self._change("skipped", lambda image: edits.SetStatus(image, "skipped"))
        self.go("step", 1)

    def action_done(self) -> None:
        """Reviewed: a person looked and the labels shown (maybe none) are the truth."""
        self._change("reviewed", lambda image: edits.SetStatus(image, "reviewed"))
        self.go("step", 1)

    def action_undo(self) -> None:
        self.submit(Revert(again=False))

    def action_redo(self) -> None:
        self.submit(Revert(again=True))

    def _pending(self) -> list[Label]:
        return [lb for lb in (self.view.labels if self.view else ()) if lb.review == "pending"]

    def _selected_label(self) -> Label | None:
        labels = self.view.labels if self.view else ()
        return next((lb for lb in labels if lb.id == self.selected), None)

    # -- selection and boxes --------------------------------------------------------------------

    def action_select(self, delta: int) -> None:
        labels = list(self.view.labels) if self.view else []
        if not labels:
            return
        ids = [lb.id for lb in labels]
        here = ids.index(self.selected) if self.selected in ids else (-1 if delta > 0 else 0)
        self.selected = ids[(here + delta) % len(ids)]
        self.refresh_all()

    def action_box_start(self) -> None:
        view, cls = self.view, self.class_at(self.active_class)
        if view is None or cls is None or self.frame is None or self.frame.error:
            self.notify("no image to draw on" if cls else "this dataset has no class", timeout=2)
            return
        w, h = view.sample.width or 1, view.sample.height or 1
        x, y = self.cursor or (w / 2, h / 2)
        self.draft = Draft.around(cls.id, x, y, w, h)
        self.refresh_all()

    def action_box_edit(self) -> None:
        label, view = self._selected_label(), self.view
        if label is None or label.box is None or label.id is None or view is None:
            return
        cls = next((c for c in self.info.classes if c.name == label.class_name), None)
        if cls is None:
            return
        self.draft = Draft.of_box(label.id, cls.id, label.box, view.sample.width or 1,
                                  view.sample.height or 1)  # fmt: skip
        self.refresh_all()

    def action_box_part(self) -> None:
        if self.draft is not None:
            self.draft = self.draft.next_part()
            self.refresh_all()

    def action_box_commit(self) -> None:
        draft = self.draft
        if draft is None:
            return
        self.draft = None
        name = next((c.name for c in self.info.classes if c.id == draft.class_id), "?")
        if draft.ann_id is None:
            self._change(
                f"added {name}", lambda image: edits.AddBox(image, draft.class_id, draft.box)
            )
        else:
            moved = edits.EditAnnotation(draft.ann_id, class_id=draft.class_id, box=draft.box)
            self._change(f"moved {name}", moved)
        self.refresh_all()

    def action_cancel(self) -> None:
        if self.draft is not None:
            self.draft = None
        else:
            self.selected = None
        self.refresh_all()

    def action_arrow(self, dx: int, dy: int, times: int) -> None:
        vp = self.frame.viewport if self.frame else None
        if self.draft is not None and vp is not None:
            sx, sy = vp.key_step
            self.draft = self.draft.moved(dx * sx * times, dy * sy * times)
            self.refresh_all()
        elif dx:
            self.action_move(dx)

    def on_image_canvas_dragged(self, message: ImageCanvas.Dragged) -> None:
        """A box drawn with the mouse (handlers named, not decorated: this is a mixin)."""
        cls = self.class_at(self.active_class)
        if self.info.task != "detection" or cls is None or self.draft is not None:
            return
        self._change(f"added {cls.name}", lambda image: edits.AddBox(image, cls.id, message.box))

    def on_image_canvas_clicked(self, message: ImageCanvas.Clicked) -> None:
        self.cursor = (message.x, message.y)
        hits = [lb for lb in (self.view.labels if self.view else ())
                if lb.box is not None and lb.review != "rejected"
                and lb.box.x <= message.x <= lb.box.x + lb.box.w
                and lb.box.y <= message.y <= lb.box.y + lb.box.h]  # fmt: skip
        if hits:  # the smallest box under the click
            self.selected = min(hits, key=lambda lb: lb.box.area if lb.box else 0.0).id
        self.refresh_all()

    # -- moves and prompts ----------------------------------------------------------------------

    def _drafting(self) -> bool:
        if self.draft is not None:
            self.notify("finish the box first: enter saves it, esc cancels", timeout=2)
        return self.draft is not None

    def action_move(self, delta: int) -> None:
        if not self._drafting():
            self.go("step", delta)

    def action_next_unlabeled(self) -> None:
        if not self._drafting():
            self.go("unlabeled")

    def action_goto(self) -> None:
        if self._drafting():
            return
        total = self.counts[1] if self.counts else None

        def done(value: str | None) -> None:
            if value and value.isdigit():
                self.go("at", int(value))

        self.app.push_screen(goto_prompt(total), done)

    def action_find(self) -> None:
        if self._drafting():
            return

        def done(value: str | None) -> None:
            if value:
                self.go("find", value)

        self.app.push_screen(find_prompt(), done)

    def action_choose_queue(self) -> None:
        if self._drafting():
            return

        def done(spec: QueueSpec | None) -> None:
            self.set_queue(spec)

        self.app.push_screen(QueueScreen(self.info.classes, self.spec), done)
