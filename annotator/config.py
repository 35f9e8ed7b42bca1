"""User settings: how the labelling app draws images, how it behaves after a label, and which
keys do what. Read from a TOML file ($ANNOTATOR_CONFIG, else ~/.config/annotator/config.toml)
into a validated pydantic model; a missing file means the defaults. Importable without textual:
the key names are checked against the app's binding ids by `annotator.tui.bindings`.

Example config.toml:

    render = "halfblock"        # auto | halfblock | sixel | kitty
    advance_on_assign = true    # move on after a single-label assignment
    queue = "unlabeled"         # unlabeled | review | all
    order = "path"              # path | added | uncertainty

    [keys]                      # binding id = "key[,key...]"
    next = "n,j"
    prev = "p,k"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.errors import InvalidInputError

RenderMode = Literal["auto", "halfblock", "sixel", "kitty"]
RENDER_MODES: tuple[str, ...] = ("auto", "halfblock", "sixel", "kitty")
DEFAULT_PATH = Path("~/.config/annotator/config.toml")


class Settings(BaseModel):
    """Everything a user may set for the labelling app."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    render: RenderMode = "auto"
    """How images are drawn: `auto` picks Kitty graphics or Sixel when the terminal answers that
    it supports them, and coloured half blocks everywhere else (tmux, plain SSH)."""

    advance_on_assign: bool = True
    """After a single-label (classification) assignment, move on to the next image."""

    queue: Literal["unlabeled", "review", "all"] = "unlabeled"
    """The queue the app opens on: unlabeled images, images with pending prelabels, or all."""

    order: Literal["path", "added", "uncertainty"] = "path"
    """The queue's order: by file path, by time added, or least confident prediction first."""

    prefetch: int = Field(default=2, ge=0, le=8)
    """How many upcoming images are decoded and scaled in the background."""

    keys: dict[str, str] = Field(default_factory=dict)
    """Key remapping: binding id -> comma-separated keys (see the help screen, `?`, for ids)."""


def config_path() -> Path:
    """Where the settings are read from: `$ANNOTATOR_CONFIG`, else the XDG-style default."""
    env = os.environ.get("ANNOTATOR_CONFIG")
    return Path(env).expanduser() if env else DEFAULT_PATH.expanduser()


def load_settings(path: Path | None = None) -> Settings:
    """The settings in `path` (default: `config_path()`); defaults when the file is absent.

    A file that is not valid TOML, or holds an unknown or ill-typed setting, is refused with the
    file name and the reason."""
    path = path or config_path()
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the settings file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{path}: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "settings"
    return f"{where}: {err['msg']}"
