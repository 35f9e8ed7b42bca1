"""Snapshots (pytest-textual-snapshot) of the screens a person sees, in half-block mode at a
fixed size with fixed images and a frozen clock: the overview, the labelling screen for a
classification image with prelabels and for a detection image with prelabels (one selected),
and the help screen. Update with `pytest tests/tui/test_snapshots.py --snapshot-update`."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import Fixture, settle

SIZE = (120, 36)


def _after(*keys: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_overview(tui: Fixture, make_app: Any, snap_compare: Any) -> None:
    assert snap_compare(make_app("pets"), terminal_size=SIZE, run_before=_after("o"))


def test_labelling_classification_with_prelabels(tui: Fixture, make_app: Any,
                                                 snap_compare: Any) -> None:  # fmt: skip
    assert snap_compare(make_app("pets", queue="all"), terminal_size=SIZE, run_before=_after("n"))


def test_labelling_detection_with_prelabels(tui: Fixture, make_app: Any, snap_compare: Any) -> None:
    app = make_app("boxes", queue="all")
    assert snap_compare(app, terminal_size=SIZE, run_before=_after("tab"))


def test_help(tui: Fixture, make_app: Any, snap_compare: Any) -> None:
    assert snap_compare(make_app("pets"), terminal_size=SIZE, run_before=_after("question_mark"))
