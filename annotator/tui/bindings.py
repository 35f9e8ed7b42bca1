"""Every key of the labelling app as data: an id (what a user remaps in the config file's
[keys] table), the default keys, the action it runs, what it does, and the section of the help
screen it is listed under. Each key belongs to one binding per screen, so remapping one binding
never takes a key from another. Also turns the user's [keys] table into a textual keymap,
refusing unknown ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from textual.binding import Binding

from annotator.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class KeySpec:
    id: str
    keys: str  # textual key names, comma-separated
    action: str
    description: str
    section: str
    footer: str | None = None  # a short label when shown in the footer
    footer_key: str | None = None  # how the footer writes the key, when not the key itself


def _spec(id: str, keys: str, action: str, description: str, section: str,
          footer: str | None = None, footer_key: str | None = None) -> KeySpec:  # fmt: skip
    return KeySpec(id, keys, action, description, section, footer, footer_key)


APP_KEYS: tuple[KeySpec, ...] = (
    _spec(
        "quit",
        "q,ctrl+q",
        "quit",
        "Quit (every change is already saved)",
        "Everywhere",
        "Quit",
        "q",
    ),
    _spec("help", "question_mark", "help", "Show every key", "Everywhere", "Help", "?"),
    _spec("overview", "o", "overview", "Datasets, progress and queues", "Everywhere", "Overview"),
)

_DIGITS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
CLASS_KEYS: tuple[KeySpec, ...] = tuple(
    _spec(f"class_{i + 1}", key, f"digit({i})",
          f"Class {i + 1}: assign it (multilabel: toggle it; boxes: set the box's class)"
          if i == 0 else f"Class {i + 1}", "Labels",
          footer="Class" if i == 0 else None, footer_key="1-0")
    for i, key in enumerate(_DIGITS)
)  # fmt: skip

LABEL_KEYS: tuple[KeySpec, ...] = (
    *CLASS_KEYS,
    _spec("accept_shown", "space", "accept_shown", "Accept the prelabel shown", "Labels", "Accept"),
    _spec("skip", "s", "skip", "Skip this image (status skipped) and move on", "Labels", "Skip"),
    _spec("done", "d", "done", "Mark this image done as it is (even with no labels: a negative) "
          "and move on", "Labels"),
    _spec("undo", "z", "undo", "Undo your last change (any image, even after a restart)",
          "Labels", "Undo"),
    _spec("redo", "Z", "redo", "Redo what you undid", "Labels"),
    _spec("select_next", "tab", "select(1)", "Select the next label or box", "Boxes"),
    _spec("select_prev", "shift+tab", "select(-1)", "Select the previous label or box", "Boxes"),
    _spec("accept", "a", "review('accepted')", "Accept the selected prelabel", "Boxes"),
    _spec("accept_all", "A", "accept_all", "Accept every prelabel on the image", "Boxes",
          "Accept all"),
    _spec("reject", "x", "review('rejected')", "Reject the selected prelabel", "Boxes"),
    _spec("delete", "delete,backspace", "delete", "Delete the selected label or box", "Boxes"),
    _spec("box_start", "b", "box_start", "Start a box at the cursor", "Boxes", "Box"),
    _spec("box_edit", "e", "box_edit", "Move or resize the selected box", "Boxes"),
    _spec("box_part", "c", "box_part",
          "While drawing: arrows move the box / its top-left / its bottom-right corner", "Boxes"),
    _spec("enter", "enter", "enter",
          "Save the box being drawn; else apply the highlighted class (for classes past 10)",
          "Labels"),
    _spec("class_next", "right_square_bracket", "cycle_class(1)",
          "Highlight the next class (boxes drawn get it)", "Labels", footer_key="]"),
    _spec("class_prev", "left_square_bracket", "cycle_class(-1)",
          "Highlight the previous class", "Labels", footer_key="["),
    _spec("cancel", "escape", "cancel", "Cancel the box being drawn; clear the selection",
          "Boxes"),
    _spec("next", "n", "move(1)", "Next image", "Navigation", "Next"),
    _spec("prev", "p", "move(-1)", "Previous image", "Navigation", "Prev"),
    _spec("right", "right", "arrow(1, 0, 1)", "Next image; while drawing: move right",
          "Navigation"),
    _spec("left", "left", "arrow(-1, 0, 1)", "Previous image; while drawing: move left",
          "Navigation"),
    _spec("up", "up", "arrow(0, -1, 1)", "While drawing: move up", "Navigation"),
    _spec("down", "down", "arrow(0, 1, 1)", "While drawing: move down", "Navigation"),
    _spec("right_fast", "shift+right", "arrow(1, 0, 10)", "While drawing: 10 steps right",
          "Navigation"),
    _spec("left_fast", "shift+left", "arrow(-1, 0, 10)", "While drawing: 10 steps left",
          "Navigation"),
    _spec("up_fast", "shift+up", "arrow(0, -1, 10)", "While drawing: 10 steps up", "Navigation"),
    _spec("down_fast", "shift+down", "arrow(0, 1, 10)", "While drawing: 10 steps down",
          "Navigation"),
    _spec("next_unlabeled", "u", "next_unlabeled", "Next unlabeled image", "Navigation"),
    _spec("goto", "g", "goto", "Go to a position in the queue", "Navigation"),
    _spec("find", "slash", "find", "Find an image by file name", "Navigation", "Find", "/"),
    _spec("queue", "f", "choose_queue", "Choose the queue: filter and order", "Navigation",
          "Queue"),
    _spec("retrain", "t", "retrain", "Retrain on your labels (embed new images, train, refresh "
          "the proposals); needs the learn extra", "Model"),
)  # fmt: skip

ALL_KEYS: tuple[KeySpec, ...] = APP_KEYS + LABEL_KEYS


def bindings(specs: Iterable[KeySpec]) -> list[Binding]:
    """Textual bindings for the specs, each carrying its id so a keymap can rebind it."""
    return [
        Binding(s.keys, s.action, s.footer or s.description, show=s.footer is not None,
                key_display=s.footer_key, id=s.id)
        for s in specs
    ]  # fmt: skip


def keymap(keys: Mapping[str, str]) -> dict[str, str]:
    """The user's [keys] table as a textual keymap; an unknown binding id is refused."""
    known = {s.id for s in ALL_KEYS}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown key binding id {unknown[0]!r} in the settings [keys] table "
            f"(ids: {', '.join(sorted(known))})"
        )
    empty = sorted(k for k, v in keys.items() if not v.strip())
    if empty:
        raise InvalidInputError(f"key binding {empty[0]!r} has no key in the settings")
    return {k: ",".join(part.strip() for part in v.split(",")) for k, v in keys.items()}


def effective_keys(spec: KeySpec, user: Mapping[str, str]) -> str:
    """The keys a binding answers to once the user's remapping is applied."""
    return user.get(spec.id, spec.keys)
