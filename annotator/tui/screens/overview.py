"""The overview screen (`o`): every dataset with its counts and how much is done, the progress
of the highlighted one per class and per split, its annotators' figures (label changes, images,
labels per hour, median seconds per image), and the queues to start labelling from (enter
opens the labelling screen on it). Counts are read in a worker; the screen never waits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from annotator.store.pace import AnnotatorFigures
from annotator.store.progress import Progress

if TYPE_CHECKING:
    from annotator.tui.backend import Backend

BAR = 24


def bar(part: int, whole: int, width: int = BAR) -> Text:
    filled = round(width * part / whole) if whole else 0
    return Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")


def class_table(p: Progress) -> Table:
    table = Table(title="labels per class", title_justify="left", box=None, padding=(0, 1))
    for name in ("key", "class", "", "accepted", "pending"):
        table.add_column(name, justify="right" if name in ("accepted", "pending") else "left")
    most = max((c.accepted + c.pending for c in p.classes), default=0)
    for c in p.classes:
        key = str((c.position + 1) % 10) if c.position < 10 else ""
        table.add_row(key, Text(c.name, style=c.color), bar(c.accepted, most),
                      f"{c.accepted:,}", f"{c.pending:,}")  # fmt: skip
    return table


def split_table(p: Progress) -> Table:
    table = Table(title="images per split", title_justify="left", box=None, padding=(0, 1))
    for name in ("split", "", "done", "images"):
        table.add_column(name, justify="right" if name in ("done", "images") else "left")
    for split, (images, done) in sorted(p.splits.items()):
        table.add_row(split, bar(done, images), f"{done:,}", f"{images:,}")
    return table


def people_table(people: list[AnnotatorFigures]) -> Table:
    table = Table(title="per annotator", title_justify="left", box=None, padding=(0, 1))
    for name in ("annotator", "changes", "images", "labels/h", "median s"):
        table.add_column(name, justify="left" if name == "annotator" else "right")
    for f in people:
        median = "-" if f.median_seconds is None else f"{f.median_seconds:.1f}"
        table.add_row(f.annotator, f"{f.changes:,}", f"{f.images:,}", f"{f.labels_per_hour:.1f}",
                      median)  # fmt: skip
    return table


def queue_options(p: Progress) -> list[Option]:
    unlabeled = p.status.get("unlabeled", 0)
    options = [
        Option(f"Unlabeled images ({unlabeled:,})", id="unlabeled"),
        Option(f"Needs review: pending prelabels ({p.pending_images:,} images)", id="review"),
        Option(f"All images ({p.images:,})", id="all"),
    ]
    options += [Option(f"Class {c.name} ({c.accepted:,} accepted, {c.pending:,} pending)",
                       id=f"class:{c.name}") for c in p.classes]  # fmt: skip
    return options


class OverviewScreen(Screen[None]):
    DEFAULT_CSS = """
    OverviewScreen DataTable { height: auto; max-height: 12; margin: 0 1; }
    OverviewScreen #detail { height: auto; margin: 1 1; }
    OverviewScreen #detail Static { width: 1fr; }
    OverviewScreen #people { height: auto; max-height: 10; margin: 0 1 1 1; }
    OverviewScreen OptionList { height: auto; max-height: 16; margin: 0 1; }
    OverviewScreen Label { margin: 0 1; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="overview_close")
    ]

    @dataclass
    class Loaded(Message):
        datasets: list[Progress]
        people: dict[str, list[AnnotatorFigures]]

    def __init__(self, backend: Backend, current: str) -> None:
        super().__init__()
        self.backend = backend
        self.current = current
        self.datasets: list[Progress] = []
        self.people: dict[str, list[AnnotatorFigures]] = {}

    def compose(self) -> ComposeResult:
        yield Label("Datasets")
        yield DataTable(cursor_type="row", id="datasets")
        with Horizontal(id="detail"):
            yield Static("counting…", id="classes")
            yield Static("", id="splits")
        yield Static("", id="people")
        yield Label("Start labelling from (enter):")
        yield OptionList(id="queues")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("dataset", "task", "images", "done", "", "pending review")
        self.load()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def load(self) -> None:
        datasets = self.backend.overview()
        self.post_message(self.Loaded(datasets, self.backend.annotators(datasets)))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        self.datasets, self.people = message.datasets, message.people
        table = self.query_one(DataTable)
        table.clear()
        for p in self.datasets:
            table.add_row(p.name, p.task, f"{p.images:,}", f"{p.done:,}", bar(p.done, p.images, 16),
                          f"{p.pending_images:,}", key=p.name)  # fmt: skip
        names = [p.name for p in self.datasets]
        if self.current in names:
            table.move_cursor(row=names.index(self.current))
        self.show(self.current if self.current in names else (names[0] if names else None))
        self.query_one("#queues", OptionList).focus()

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show(str(event.row_key.value))

    def show(self, name: str | None) -> None:
        found = [p for p in self.datasets if p.name == name]
        if not found:
            return
        p = found[0]
        self.query_one("#classes", Static).update(class_table(p))
        self.query_one("#splits", Static).update(split_table(p))
        self.query_one("#people", Static).update(people_table(self.people.get(p.name, [])))
        queues = self.query_one("#queues", OptionList)
        queues.clear_options()
        queues.add_options(queue_options(p))
        queues.highlighted = 0
        self.shown = p.name

    @on(OptionList.OptionSelected, "#queues")
    def start(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or "unlabeled"
        filt, _, class_name = option_id.partition(":")
        self.app.open_queue(self.shown, filt, class_name or None)  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.dismiss(None)
