"""The queue chooser (`f`): which images to go through (unlabeled, needs review = pending
prelabels, flagged = labels an import refused, suspect labels, near-duplicates, one class, all)
and in which order (file, time added, least confident first; suspect labels and duplicates keep
their own order). Returns the chosen QueueSpec, or None when cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from annotator.store.queue import ORDER_NAMES, ClassInfo, QueueSpec


def filter_options(classes: Sequence[ClassInfo]) -> list[tuple[str, str]]:
    """(option id, text) for every queue filter, one per class included."""
    options = [("unlabeled", "Unlabeled images"),
               ("review", "Needs review (pending prelabels)"),
               ("flagged", "Needs review (flagged: labels refused on import)"),
               ("all", "All images"),
               ("suspects", "Suspect labels (worst first; suggested class in the status bar)"),
               ("duplicates", "Duplicates (near-duplicate groups, a group at a time)")]  # fmt: skip
    options += [(f"class:{c.id}", f"Class {c.name}") for c in classes]
    return options


def spec_from(filter_id: str, order_id: str) -> QueueSpec:
    if filter_id.startswith("class:"):
        return QueueSpec("class", order_id, int(filter_id.split(":", 1)[1]))
    return QueueSpec(filter_id, order_id)


class QueueScreen(ModalScreen[QueueSpec | None]):
    DEFAULT_CSS = """
    QueueScreen { align: center middle; }
    QueueScreen > Vertical { width: 80; height: auto; max-height: 90%; border: round $accent;
                             background: $surface; padding: 1 2; }
    QueueScreen Horizontal { height: auto; }
    QueueScreen OptionList { width: 1fr; height: auto; max-height: 20; margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="queue_cancel"),
        Binding("enter", "apply", "Apply", id="queue_apply", priority=True),
    ]

    def __init__(self, classes: Sequence[ClassInfo], current: QueueSpec) -> None:
        super().__init__()
        self.class_infos = list(classes)
        self.current = current

    def compose(self) -> ComposeResult:
        filters = filter_options(self.class_infos)
        with Vertical():
            yield Label("Choose the queue  (tab: switch list, enter: apply, esc: cancel)")
            with Horizontal():
                yield OptionList(*[Option(t, id=i) for i, t in filters], id="filters")
                yield OptionList(*[Option(t, id=i) for i, t in ORDER_NAMES.items()], id="orders")

    def on_mount(self) -> None:
        current = self.current
        want = f"class:{current.class_id}" if current.filter == "class" else current.filter
        filters = self.query_one("#filters", OptionList)
        filters.highlighted = filters.get_option_index(want)
        orders = self.query_one("#orders", OptionList)
        orders.highlighted = orders.get_option_index(current.order)
        filters.focus()

    @on(OptionList.OptionSelected)
    def selected(self) -> None:
        self.action_apply()

    def action_apply(self) -> None:
        filters = self.query_one("#filters", OptionList)
        orders = self.query_one("#orders", OptionList)
        f_opt = filters.highlighted_option
        o_opt = orders.highlighted_option
        if f_opt is None or o_opt is None or f_opt.id is None or o_opt.id is None:
            return
        self.dismiss(spec_from(f_opt.id, o_opt.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
