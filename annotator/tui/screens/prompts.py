"""Small modal prompts: go to a position in the queue (`g`), find an image by file name (`/`).
Each returns what was typed (or None when cancelled with escape) through `dismiss`."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

PROMPT_CSS = """
Prompt { align: center middle; }
Prompt > Vertical { width: 60; height: auto; border: round $accent; background: $surface;
                    padding: 1 2; }
Prompt Label { margin-bottom: 1; }
"""


class Prompt(ModalScreen[str | None]):
    """One line of input; enter gives it back, escape cancels."""

    DEFAULT_CSS = PROMPT_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt_cancel")
    ]

    def __init__(self, title: str, placeholder: str = "", integer: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.integer = integer

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(placeholder=self.placeholder, type="integer" if self.integer else "text")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def goto_prompt(total: int | None) -> Prompt:
    size = f" (1–{total:,})" if total else ""
    return Prompt(f"Go to position{size}", "a number", integer=True)


def find_prompt() -> Prompt:
    return Prompt("Find an image by file name (part of its path)", "e.g. dog_0042")
