"""The labelling application: builds the screens, applies the user's key remapping, opens the
overview and help, and quits only once every change is committed. `create_app` is the one
factory the command line and the tests use."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import ClassVar

from rich.console import COLOR_SYSTEMS
from textual import work
from textual.app import App
from textual.binding import BindingType

from annotator.config import Settings, load_settings
from annotator.errors import InvalidInputError
from annotator.store.datasets import current_user
from annotator.store.db import Store
from annotator.store.queue import DatasetInfo, QueueSpec, dataset_info
from annotator.tui.backend import Backend
from annotator.tui.bindings import APP_KEYS, bindings, keymap
from annotator.tui.render import Mode, set_color_system
from annotator.tui.screens.help import HelpScreen
from annotator.tui.screens.labelling import LabellingScreen
from annotator.tui.screens.overview import OverviewScreen

QUEUE_NAMES = ("unlabeled", "review", "flagged", "all", "suspects", "duplicates")
DRAIN_TIMEOUT_S = 30.0
GC_TICK_S = 0.25


class CollectWhenIdle:
    """Python's automatic garbage collection, moved off the keystroke path. Each image drawn
    makes some 20,000 objects; a full collection over the app's few hundred thousand objects
    takes a few hundred milliseconds, and landing in the middle of a move it would be a visible
    stall. So automatic collection is paused while the app runs: the newest objects are
    collected once each image is on screen (a few milliseconds), the middle generation at the
    first short pause, everything at a longer one."""

    def __init__(self, clock: Callable[[], float], young_idle_s: float = 0.3,
                 full_idle_s: float = 1.5) -> None:  # fmt: skip
        self.clock, self.young_idle_s, self.full_idle_s = clock, young_idle_s, full_idle_s
        self.last = clock()
        self.done = 2  # the oldest generation collected since the last activity
        self.was_enabled = gc.isenabled()
        gc.disable()

    def touch(self) -> None:
        self.last = self.clock()
        self.done = -1

    def after_frame(self) -> None:
        gc.collect(0)

    def tick(self) -> None:
        idle = self.clock() - self.last
        if idle >= self.full_idle_s and self.done < 2:
            gc.collect()
            self.done = 2
        elif idle >= self.young_idle_s and self.done < 1:
            gc.collect(1)
            self.done = 1

    def stop(self) -> None:
        if self.was_enabled:
            gc.enable()


class AnnotatorApp(App[None]):
    TITLE = "annotator"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [*bindings(APP_KEYS)]

    def __init__(self, store: Store, info: DatasetInfo, spec: QueueSpec, settings: Settings,
                 mode: Mode = "halfblock", cell_px: tuple[int, int] = (1, 2),
                 clock: Callable[[], float] = time.monotonic, count_delay: float = 0.25,
                 author: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.backend = Backend(store, author or current_user())
        self.info, self.spec, self.settings = info, spec, settings
        self.mode, self.cell_px, self.clock, self.count_delay = mode, cell_px, clock, count_delay
        self.user_keys = keymap(settings.keys)

    def on_mount(self) -> None:
        set_color_system(COLOR_SYSTEMS.get(self.console.color_system or "truecolor"))
        self.set_keymap(self.user_keys)
        self.push_screen(self.labelling(self.info, self.spec))
        self.gc = CollectWhenIdle(time.monotonic)
        self.set_interval(GC_TICK_S, self.gc.tick)
        self.set_interval(self.backend.lease_ttl_s / 4, self.keep_leases)

    @work(thread=True, exclusive=True, group="leases", exit_on_error=False)
    def keep_leases(self) -> None:
        """The heartbeat: extends this person's leases while the app is open."""
        self.backend.heartbeat()

    def on_unmount(self) -> None:
        self.gc.stop()

    def note_activity(self) -> None:
        """A key or click that starts work: no full garbage collection right now."""
        self.gc.touch()

    def labelling(self, info: DatasetInfo, spec: QueueSpec) -> LabellingScreen:
        return LabellingScreen(self.backend, info, spec, self.settings, self.mode, self.cell_px,
                               self.clock, self.count_delay)  # fmt: skip

    @property
    def labelling_screen(self) -> LabellingScreen | None:
        found = [s for s in self.screen_stack if isinstance(s, LabellingScreen)]
        return found[-1] if found else None

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.user_keys))

    def action_overview(self) -> None:
        current = self.labelling_screen
        if not isinstance(self.screen, OverviewScreen):
            name = current.info.name if current else self.info.name
            self.push_screen(OverviewScreen(self.backend, name))

    async def drain(self) -> None:
        """Wait until the changes made so far are committed."""
        screen = self.labelling_screen
        waited = 0.0
        while screen is not None and screen.busy and waited < DRAIN_TIMEOUT_S:
            await asyncio.sleep(0.02)
            waited += 0.02

    async def action_quit(self) -> None:
        if self.labelling_screen is not None:
            self.labelling_screen.leave()  # the seconds spent on the last image
        await self.drain()
        await asyncio.to_thread(self.backend.release)
        self.exit()

    def open_queue(self, name: str, filt: str, class_name: str | None) -> None:
        """From the overview: label dataset `name` through the chosen queue."""
        self.open_dataset(name, filt, class_name)

    @work(exclusive=True, group="open", exit_on_error=False)
    async def open_dataset(self, name: str, filt: str, class_name: str | None) -> None:
        info = await asyncio.to_thread(self.backend.dataset, name)
        current = self.labelling_screen
        order = current.spec.order if current else self.settings.order
        spec = resolve_queue(info, f"class:{class_name}" if class_name else filt, order)
        if isinstance(self.screen, OverviewScreen):
            self.pop_screen()
        if current is not None and current.info.id == info.id:
            current.set_queue(spec)
            return
        await self.drain()
        await self.switch_screen(self.labelling(info, spec))


def resolve_queue(info: DatasetInfo, queue: str, order: str) -> QueueSpec:
    """`unlabeled`, `review`, `flagged`, `all`, `suspects`, `duplicates` or `class:NAME` as a
    QueueSpec of the dataset."""
    kind, _, name = queue.partition(":")
    if kind == "class":
        cls = info.class_by_name(name)
        if cls is None:
            known = ", ".join(c.name for c in info.classes) or "none"
            raise InvalidInputError(f"--queue {queue}: dataset {info.name!r} has no class "
                                    f"{name!r} (classes: {known})")  # fmt: skip
        return QueueSpec("class", order, cls.id)
    if kind not in QUEUE_NAMES or name:
        raise InvalidInputError(f"--queue {queue}: choose {', '.join(QUEUE_NAMES)} or class:NAME")
    return QueueSpec(kind, order)


def create_app(store: Store, name: str, *, mode: Mode = "halfblock",
               cell_px: tuple[int, int] = (1, 2), queue: str | None = None,
               order: str | None = None, settings: Settings | None = None,
               clock: Callable[[], float] = time.monotonic, count_delay: float = 0.25,
               author: str | None = None) -> AnnotatorApp:  # fmt: skip
    """The app for dataset `name`; refuses an unknown dataset, class or key binding id before
    anything is drawn."""
    settings = settings or load_settings()
    keymap(settings.keys)
    with store.session() as s:
        info = dataset_info(s, name)
    spec = resolve_queue(info, queue or settings.queue, order or settings.order)
    return AnnotatorApp(store, info, spec, settings, mode, cell_px, clock, count_delay, author)
