"""The help screen (`?`): every binding by section, with the keys it answers to now (after the
user's remapping), what it does, and its id (what the config file's [keys] table uses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from annotator.tui.bindings import ALL_KEYS, effective_keys

KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc",
             "delete": "del", "backspace": "⌫", "left_square_bracket": "[",
             "right_square_bracket": "]"}  # fmt: skip


def show_keys(keys: str) -> str:
    """Textual key names as a person writes them."""
    return " ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def help_table(user_keys: Mapping[str, str]) -> Table:
    table = Table(box=None, expand=True, padding=(0, 1), show_header=True,
                  header_style="bold")  # fmt: skip
    table.add_column("keys", style="bold cyan", no_wrap=True)
    table.add_column("what it does", ratio=1)
    table.add_column(Text("id (config [keys])"), style="dim", no_wrap=True)
    section = ""
    for spec in ALL_KEYS:
        if spec.section != section:
            section = spec.section
            table.add_row(Text(section, style="bold underline"), "", "")
        table.add_row(show_keys(effective_keys(spec, user_keys)), spec.description, spec.id)
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 96; max-width: 100%; height: 90%;
                                  border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help_close"),
    ]

    def __init__(self, user_keys: Mapping[str, str]) -> None:
        super().__init__()
        self.table = help_table(user_keys)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Keys  (remap them in the config file's [keys] table)",
                              style="bold"))  # fmt: skip
            yield Static(self.table)

    def action_close(self) -> None:
        self.dismiss(None)
