"""`annotator label` and the settings file: what reaches the app, and the one-line errors for a
bad dataset, queue, settings file or key binding id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from annotator.config import Settings, load_settings
from annotator.errors import InvalidInputError
from annotator.store.queue import QueueSpec
from annotator.tui.bindings import keymap


@pytest.fixture(autouse=True)
def a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's streams are not terminals; the command's own check for one is tested in
    tests/cli/test_errors.py, on a real process."""
    monkeypatch.setattr("annotator.tui.command._require_terminal", lambda: None)


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Apps the command would run (their `run` is replaced: no terminal in the tests)."""
    from annotator.tui.app import AnnotatorApp

    apps: list[Any] = []
    monkeypatch.setattr(AnnotatorApp, "run", lambda self, *a, **k: apps.append(self))
    return apps


@pytest.fixture
def pets(run_cli: Any, make_images: Any) -> None:
    folder = make_images(2)[0].parent
    assert (
        run_cli("init", "pets", "--task", "classification", "--classes", "cat,dog").exit_code == 0
    )
    assert run_cli("add", "pets", str(folder)).exit_code == 0


def test_label_opens_the_app_on_the_queue_asked_for(run_cli: Any, pets: None,
                                                    launched: list[Any]) -> None:  # fmt: skip
    result = run_cli("label", "pets", "--render", "halfblock", "--queue", "class:dog",
                     "--order", "uncertainty")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (app,) = launched
    assert (app.info.name, app.mode, app.cell_px) == ("pets", "halfblock", (1, 2))
    dog = app.info.class_by_name("dog").id
    assert app.spec == QueueSpec("class", "uncertainty", dog)


def test_label_defaults_to_the_unlabeled_queue_by_file(run_cli: Any, pets: None,
                                                       launched: list[Any]) -> None:  # fmt: skip
    assert run_cli("label", "pets").exit_code == 0
    assert launched[0].spec == QueueSpec("unlabeled", "path")
    assert launched[0].mode == "halfblock"  # auto, without a terminal to ask


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["label", "nope"], "no dataset named 'nope'"),
        (["label", "pets", "--queue", "class:bird"], "has no class 'bird'"),
        (
            ["label", "pets", "--queue", "done"],
            "choose unlabeled, review, flagged, all, suspects, duplicates or class:NAME",
        ),
    ],
)
def test_label_refuses_with_one_line(run_cli: Any, pets: None, launched: list[Any],
                                     args: list[str], message: str) -> None:  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert launched == []


def test_a_bad_settings_file_is_named(run_cli: Any, pets: None, launched: list[Any],
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text('[keys]\nnext = "j"\nwarp = "w"\n')
    monkeypatch.setenv("ANNOTATOR_CONFIG", str(config))
    result = run_cli("label", "pets")
    assert result.exit_code == 2
    assert "unknown key binding id 'warp'" in result.stderr
    config.write_text("render = 'kitty'\nadvance_on_assign = false\n[keys]\nnext = 'j, n'\n")
    assert run_cli("label", "pets").exit_code == 0
    (app,) = launched
    assert (app.mode, app.settings.advance_on_assign) == ("kitty", False)
    assert app.user_keys == {"next": "j,n"}


def test_settings_default_when_the_file_is_absent(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml") == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("render = ", "not valid TOML"),
        ("colour = 'red'", "colour: Extra inputs are not permitted"),
        ("render = 'ascii'", "render: Input should be"),
        ("prefetch = 99", "prefetch: Input should be less than or equal to 8"),
    ],
)
def test_bad_settings_are_refused_with_the_file_name(tmp_path: Path, text: str,
                                                     message: str) -> None:  # fmt: skip
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        load_settings(path)
    assert str(path) in err.value.message and message in err.value.message


def test_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("order = 'uncertainty'\nqueue = 'review'\n")
    monkeypatch.setenv("ANNOTATOR_CONFIG", str(path))
    assert load_settings() == Settings(order="uncertainty", queue="review")


def test_keymap_refuses_empty_keys() -> None:
    with pytest.raises(InvalidInputError, match="'undo' has no key"):
        keymap({"undo": " "})
