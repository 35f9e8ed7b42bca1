"""The side panel's two lists: the classes with their hotkeys (which one the image holds, which
one new boxes get) and the current image's labels (class, box in pixels, who made it, review
state; the selected one marked). Plain text widgets: the screen hands them what to show."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from annotator.annotation import Label
from annotator.store.queue import ClassInfo

HOTKEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
REVIEW_MARKS = {"accepted": "✓", "pending": "?", "rejected": "✗"}


def _window(labels: Sequence[Label], selected: int | None, room: int) -> int:
    """The first label to list so that the selected one is visible."""
    index = next((i for i, lb in enumerate(labels) if lb.id == selected), 0)
    return max(0, min(index - room // 2, len(labels) - room))


class ClassList(Static):
    """Classes with hotkeys. ✓: the image holds it; ?: a prediction waits for review; ▸: the
    class new boxes get (detection)."""

    DEFAULT_CSS = "ClassList { padding: 0 1; }"

    shown: object = None

    def __init__(self, count: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.styles.height = max(1, count) if count else 2

    def show(self, classes: Sequence[ClassInfo], labels: Sequence[Label], active: int | None,
             counts: bool = False) -> None:  # fmt: skip
        held = {lb.class_name for lb in labels if lb.review == "accepted"}
        pending = {lb.class_name for lb in labels if lb.review == "pending"}
        state = (tuple(classes), frozenset(held), frozenset(pending), active)
        if state == self.shown:  # unchanged: spare the re-render
            return
        self.shown = state
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, cls in enumerate(classes):
            hotkey = HOTKEYS[i] if i < len(HOTKEYS) else " "
            marker = "▸" if active == i else " "
            text.append(f"{marker}{hotkey} ", style="bold")
            text.append("■ ", style=cls.color)
            text.append(cls.name, style="bold" if cls.name in held else "")
            if cls.name in held:
                text.append(" ✓", style="green")
            elif cls.name in pending:
                text.append(" ?", style="yellow")
            text.append("\n")
        if not classes:
            text.append("no classes: add some with\nannotator classes NAME --add", style="dim")
        self.update(text, layout=False)


class LabelList(Static):
    """The labels of the image shown, in creation order (two lines each, never wrapped)."""

    DEFAULT_CSS = "LabelList { height: 1fr; padding: 0 1; }"

    shown: object = None

    def show(self, labels: Sequence[Label], colors: dict[str, str], selected: int | None) -> None:
        state = (tuple(labels), selected)
        if state == self.shown:
            return
        self.shown = state
        text = Text(no_wrap=True, overflow="ellipsis")
        room = max(1, (self.size.height - 1) // 2) if self.size.height else len(labels)
        first = _window(labels, selected, room)
        if first:
            text.append(f"  ↑ {first} more\n", style="dim")
        for label in labels[first : first + room]:
            self._line(text, label, colors.get(label.class_name, "#9e9e9e"), label.id == selected)
        if len(labels) > first + room:
            text.append(f"  ↓ {len(labels) - first - room} more (tab)", style="dim")
        if not labels:
            text.append("no labels yet", style="dim")
        self.update(text, layout=False)

    @staticmethod
    def _line(text: Text, label: Label, color: str, selected: bool) -> None:
        style = "reverse" if selected else ""
        text.append("▶" if selected else " ", style="bold")
        text.append("■ ", style=color)
        strike = " strike" if label.review == "rejected" else ""
        text.append(label.class_name, style=style + strike)
        if label.score is not None:
            text.append(f" {label.score:.2f}", style="dim")
        mark = REVIEW_MARKS.get(label.review, "")
        text.append(f" {mark}", style={"✓": "green", "?": "yellow", "✗": "red"}.get(mark, ""))
        text.append("\n    ")
        if label.box is not None:
            b = label.box
            text.append(f"{b.x:.0f},{b.y:.0f} {b.w:.0f}×{b.h:.0f} ", style="dim")
        text.append("human" if label.source == "human" else label.source, style="dim italic")
        text.append("\n")
