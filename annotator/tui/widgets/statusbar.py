"""The status bar: dataset, position in the queue (i/N), how much of the dataset is done, labels
per hour in this session, the trained model's cross-validated accuracy (once there is one), the
queue in force, the file shown and its state, what a suspect flag suggests or which duplicate
group the image is in, and what the keys do while a box is being drawn. Text only; the screen
computes the figures."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class Status:
    dataset: str
    task: str
    queue: str
    position: int | None = None
    total: int | None = None
    done: int | None = None
    images: int | None = None
    rate: float | None = None  # labels per hour; None until there is something to measure
    file: str = ""
    size: str = ""
    state: str = ""
    hint: str = ""
    accuracy: float | None = None  # the trained model's cross-validated accuracy
    note: str = ""  # a suspect flag's suggestion, the image's duplicate group
    work: str = ""  # background work in progress (retraining)


def _figure(value: int | None) -> str:
    return "…" if value is None else f"{value:,}"


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    StatusBar.-hint { background: $warning-darken-2; }
    """

    shown: Status | None = None

    def show(self, st: Status) -> None:
        if st == self.shown:
            return
        self.shown = st
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{st.dataset} ", style="bold")
        text.append(f"({st.task})  ", style="dim")
        text.append(f"{_figure(st.position)}/{_figure(st.total)}", style="bold")
        if st.done is not None and st.images:
            text.append(f"  {100 * st.done / st.images:.0f}% done")
        rate = "—" if st.rate is None else f"{st.rate:,.0f}"
        text.append(f"  {rate} labels/h")
        if st.accuracy is not None:
            text.append(f"  model {100 * st.accuracy:.0f}% (cv)", style="bold")
        if st.work:
            text.append(f"  {st.work}", style="italic")
        text.append(f"  queue: {st.queue}", style="italic")
        if st.note:  # before the file name, which may be long
            text.append(f"  {st.note}", style="bold yellow")
        if st.file:
            text.append(f"  {st.file}", style="bold")
            text.append(f" {st.size} {st.state}", style="dim")
        if st.hint:
            text.append(f"  {st.hint}", style="bold")
        self.set_class(bool(st.hint), "-hint")
        self.update(text, layout=False)
