"""Every key of the labelling app, driven with Textual's pilot, checked in the store afterwards:
labels and boxes (with their pixel coordinates), review states, statuses and history rows.
`KEY_TESTS` names the test of each binding id; a test fails when a binding has none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from annotator.annotation import Box
from annotator.config import Settings
from annotator.store import labels as store_labels
from annotator.tui.bindings import ALL_KEYS
from annotator.tui.viewport import half_up
from tests.tui.conftest import Fixture, settle

SIZE = (120, 36)
COLOUR = "tests.learn.stub_backbones:colour"
Steps = Callable[[Any], Awaitable[None]]


def drive(app: Any, steps: Steps) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await steps(pilot)
            await settle(pilot)

    asyncio.run(main())


def screen_of(pilot: Any) -> Any:
    return pilot.app.labelling_screen


def shown(pilot: Any) -> str:
    return str(screen_of(pilot).view.sample.path)


# -- classes ------------------------------------------------------------------------------------


def test_class_keys_assign_and_advance(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        for key in ("1", "2", "3"):
            seen.append(shown(pilot))
            await pilot.press(key)
            await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    for name, cls in (("img0.png", "cat"), ("img1.png", "dog"), ("img2.png", "bird")):
        image = tui.image_id("pets", name)
        assert tui.labels(image)[-1] == ("label", cls, "accepted", "human", None)
        assert tui.status(image) == "labeled"
    assert seen == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert [h[:2] for h in tui.history()][:2] == [("create", "tester"), ("status", "tester")]


def test_class_keys_beyond_the_classes_change_nothing(tui: Fixture, make_app: Any) -> None:
    async def steps(pilot: Any) -> None:
        await pilot.press("4", "5", "6", "7", "8", "9", "0")

    drive(make_app("pets", queue="all"), steps)
    assert tui.labels(tui.image_id("pets", "img0.png")) == []
    assert tui.history() == []


def test_class_keys_toggle_in_multilabel(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("tags", "img0.png")
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("1", "2", "3", "3")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("tags", queue="all"), steps)
    assert [lb[1] for lb in tui.labels(img0)] == ["indoor", "outdoor"]
    assert seen == ["img0.png"]  # no advance in multilabel


def test_brackets_and_enter_reach_every_class(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("pets", "img0.png")
    img1 = tui.image_id("boxes", "img1.png")

    async def pets(pilot: Any) -> None:
        await pilot.press("right_square_bracket", "right_square_bracket",
                          "right_square_bracket", "left_square_bracket", "enter")  # fmt: skip

    async def boxes(pilot: Any) -> None:  # the highlighted class is the class of new boxes
        await pilot.press("n", "left_square_bracket", "b", "enter")

    drive(make_app("pets", queue="all"), pets)
    drive(make_app("boxes", queue="all"), boxes)
    assert tui.labels(img0) == [("label", "bird", "accepted", "human", None)]
    assert tui.labels(img1) == [("box", "cat", "accepted", "human", (45, 30, 30, 20))]


def test_class_key_sets_the_class_of_the_selected_box(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("tab", "3")  # the dog prelabel becomes a cat, accepted

    drive(make_app("boxes", queue="all"), steps)
    assert tui.labels(img0)[0] == ("box", "cat", "accepted", "model", (60, 10, 50, 40))
    assert tui.status(img0) == "labeled"


def test_class_key_picks_the_class_of_new_boxes(tui: Fixture, make_app: Any) -> None:
    img1 = tui.image_id("boxes", "img1.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "2", "b", "enter")

    drive(make_app("boxes", queue="all"), steps)
    assert tui.labels(img1) == [("box", "dog", "accepted", "human", (45, 30, 30, 20))]


# -- prelabels ----------------------------------------------------------------------------------


def test_space_accepts_the_classification_prelabel(tui: Fixture, make_app: Any) -> None:
    img1 = tui.image_id("pets", "img1.png")
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "space")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert tui.labels(img1) == [
        ("label", "dog", "accepted", "model", None),
        ("label", "cat", "rejected", "model", None),
    ]
    assert tui.status(img1) == "labeled"
    assert seen == ["img2.png"]
    groups = {h[2] for h in tui.history()}
    assert groups == {"do"} and len(tui.history()) == 3  # two reviews + status: one action

    async def undo(pilot: Any) -> None:
        await pilot.press("z")  # one undo takes the whole acceptance back

    drive(make_app("pets", queue="all"), undo)
    assert [lb[2] for lb in tui.labels(img1)] == ["pending", "pending"]
    assert tui.status(img1) == "unlabeled"


def test_space_accepts_multilabel_prelabels(tui: Fixture, make_app: Any) -> None:
    from tests.tui.conftest import _prelabel

    _prelabel(tui.store, "tags", "img0.png", "night", 0.7)
    img0 = tui.image_id("tags", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("space")

    drive(make_app("tags", queue="all"), steps)
    assert tui.labels(img0) == [("label", "night", "accepted", "model", None)]


def test_a_accepts_the_selected_prelabel(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("tab", "tab", "a")

    drive(make_app("boxes", queue="all"), steps)
    assert [lb[2] for lb in tui.labels(img0)] == ["pending", "accepted"]
    assert tui.status(img0) == "labeled"


def test_shift_a_accepts_every_prelabel(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("A")

    drive(make_app("boxes", queue="all"), steps)
    assert [lb[2] for lb in tui.labels(img0)] == ["accepted", "accepted"]
    assert [h[0] for h in tui.history()] == ["review", "review", "status"]


def test_x_rejects_the_selected_prelabel(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("tab", "x")

    drive(make_app("boxes", queue="all"), steps)
    assert [lb[2] for lb in tui.labels(img0)] == ["rejected", "pending"]
    assert tui.status(img0) == "unlabeled"


def test_tab_and_shift_tab_cycle_the_selection(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("tab", "tab", "tab", "shift+tab", "x")  # 1, 2, 1, back to 2

    drive(make_app("boxes", queue="all"), steps)
    assert [lb[2] for lb in tui.labels(img0)] == ["pending", "rejected"]


def test_delete_removes_the_selected_label(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("boxes", "img0.png")
    left: list[list[str]] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("tab", "delete")
        await settle(pilot)
        left.append([lb[1] for lb in tui.labels(img0)])
        await pilot.press("tab", "backspace")

    drive(make_app("boxes", queue="all"), steps)
    assert left == [["person"]]
    assert tui.labels(img0) == []
    assert [h[0] for h in tui.history()] == ["delete", "delete"]


# -- boxes by keyboard --------------------------------------------------------------------------


def _scale(pilot: Any) -> float:
    return float(screen_of(pilot).frame.viewport.scale)


def test_b_then_enter_saves_a_box_at_the_cursor(tui: Fixture, make_app: Any) -> None:
    img2 = tui.image_id("boxes", "img2.png")

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "n", "b", "enter")

    drive(make_app("boxes", queue="all"), steps)
    # a quarter of the 120x80 image, centred: the first class (person)
    assert tui.labels(img2) == [("box", "person", "accepted", "human", (45, 30, 30, 20))]


def test_arrows_move_the_box_being_drawn(tui: Fixture, make_app: Any) -> None:
    img1, img2 = tui.image_id("boxes", "img1.png"), tui.image_id("boxes", "img2.png")
    scale: list[float] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "b")
        scale.append(_scale(pilot))
        await pilot.press("right", "right", "right", "left", "down", "down", "up", "enter")
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("b", "shift+right", "shift+right", "shift+left", "shift+down",
                          "shift+down", "shift+up", "enter")  # fmt: skip

    drive(make_app("boxes", queue="all"), steps)
    # one arrow = one half-block dot: 1/scale image pixels across, 1/scale down (2 per cell)
    step = 1 / scale[0]
    assert tui.labels(img1) == [("box", "person", "accepted", "human",
                                 (half_up(45 + 2 * step), half_up(30 + step), 30, 20))]  # fmt: skip
    assert tui.labels(img2) == [("box", "person", "accepted", "human",
                                 (half_up(45 + 10 * step), half_up(30 + 10 * step), 30, 20))]  # fmt: skip


def test_c_switches_the_part_the_arrows_move(tui: Fixture, make_app: Any) -> None:
    img1 = tui.image_id("boxes", "img1.png")
    scale: list[float] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "b", "c")  # top-left corner
        scale.append(_scale(pilot))
        await pilot.press("shift+left", "c", "shift+down", "enter")  # then bottom-right

    drive(make_app("boxes", queue="all"), steps)
    step = 10 / scale[0]
    x0, y0, x1, y1 = half_up(45 - step), 30, 75, half_up(50 + step)
    assert tui.labels(img1) == [("box", "person", "accepted", "human",
                                 (x0, y0, x1 - x0, y1 - y0))]  # fmt: skip


def test_e_edits_the_selected_box(tui: Fixture, make_app: Any) -> None:
    img1 = tui.image_id("boxes", "img1.png")
    with tui.store.session() as s:
        store_labels.add_box(s, img1, tui.class_id("boxes", "cat"), Box(10, 10, 20, 20), "someone")
    scale: list[float] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "tab", "e")  # editing starts on the bottom-right corner
        scale.append(_scale(pilot))
        await pilot.press("shift+right", "enter")

    drive(make_app("boxes", queue="all"), steps)
    w = half_up(30 + 10 / scale[0]) - 10
    assert tui.labels(img1) == [("box", "cat", "accepted", "human", (10, 10, w, 20))]
    assert tui.history()[-1][:2] == ("edit", "tester")


def test_escape_cancels_the_box_and_the_selection(tui: Fixture, make_app: Any) -> None:
    img1 = tui.image_id("boxes", "img1.png")
    states: list[tuple[Any, Any]] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n", "b", "right", "escape", "enter")
        screen = screen_of(pilot)
        states.append((screen.draft, screen.selected))
        await pilot.press("p", "tab")
        states.append((screen.draft, screen.selected is not None))
        await pilot.press("escape")
        states.append((screen.draft, screen.selected))

    drive(make_app("boxes", queue="all"), steps)
    assert tui.labels(img1) == []
    assert states == [(None, None), (None, True), (None, None)]
    assert tui.history() == []


def test_moves_wait_while_a_box_is_drawn(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("b", "n")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("boxes", queue="all"), steps)
    assert seen == ["img0.png"]


# -- navigation ---------------------------------------------------------------------------------


def test_n_p_and_arrows_move_through_the_queue(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        for key in ("n", "n", "p", "right", "left", "left", "left"):
            await pilot.press(key)
            await settle(pilot)
            seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert seen == ["img1.png", "img2.png", "img1.png", "img2.png", "img1.png", "img0.png",
                    "img0.png"]  # fmt: skip
    assert tui.history() == []


def test_u_goes_to_the_next_unlabeled_image(tui: Fixture, make_app: Any) -> None:
    with tui.store.session() as s:
        for name in ("img1.png", "img2.png"):
            store_labels.set_status(s, tui.image_id("pets", name), "labeled", "x")
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("u")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert seen == ["img3.png"]


def test_g_goes_to_a_position(tui: Fixture, make_app: Any) -> None:
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("g", "3", "enter")
        await settle(pilot)
        seen.append((shown(pilot), screen_of(pilot).counts[:2]))

    drive(make_app("pets", queue="all"), steps)
    assert seen == [("img2.png", (3, 4))]


def test_slash_finds_an_image_by_name(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("slash", *"IMG3", "enter")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert seen == ["img3.png"]


def test_f_chooses_the_queue(tui: Fixture, make_app: Any) -> None:
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("f", "down", "tab", "down", "down", "enter")  # review, by uncertainty
        await settle(pilot)
        screen = screen_of(pilot)
        seen.append((shown(pilot), screen.spec.filter, screen.spec.order, screen.counts[:2]))

    drive(make_app("pets"), steps)
    assert seen == [("img1.png", "review", "uncertainty", (1, 1))]


def test_t_retrains_and_refreshes_the_proposals(
    tui: Fixture, make_app: Any, monkeypatch: Any
) -> None:
    """Two labels per class, then t: the images without a vector are embedded, a classifier
    is trained off the UI thread, and the image on screen shows its proposal; the status bar
    shows the cross-validated accuracy."""
    import threading

    from annotator.tui.backend import Backend
    from tests.tui.test_learning import build_colours, status_text, told, wait_for

    build_colours(tui)
    seen: list[Any] = []
    threads: list[bool] = []
    retrain = Backend.retrain

    def spy(self: Any, *args: Any) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return retrain(self, *args)

    monkeypatch.setattr(Backend, "retrain", spy)

    async def steps(pilot: Any) -> None:
        screen = screen_of(pilot)
        seen.append((shown(pilot), list(screen.view.labels), screen.accuracy))
        await pilot.press("t")
        await wait_for(pilot, lambda: screen.accuracy is not None and not screen.learning)
        labels = [(lb.class_name, lb.review, lb.source) for lb in screen.view.labels]
        seen.append((shown(pilot), labels, screen.accuracy))
        seen.append((status_text(pilot), told(pilot)))

    drive(make_app("colours"), steps)
    assert threads == [False]
    assert seen[0] == ("blue_002.png", [], None)
    assert seen[1] == ("blue_002.png", [("blue", "pending", "train:" + COLOUR)], 1.0)
    status, notes = seen[2]
    assert "model 100% (cv)" in status
    assert len(notes) == 1 and "cross-validated accuracy 1.000 on 6 labels" in notes[0]
    assert "6 images got a proposal; 3 new images embedded" in notes[0]


def test_s_skips_and_moves_on(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("s")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert tui.status(tui.image_id("pets", "img0.png")) == "skipped"
    assert seen == ["img1.png"]


def test_d_marks_a_negative_done_and_moves_on(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("d")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all"), steps)
    assert tui.status(tui.image_id("pets", "img0.png")) == "reviewed"
    assert seen == ["img1.png"]


def test_z_undoes_and_shift_z_redoes(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("pets", "img0.png")
    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("1")  # cat on img0, then on to img1
        await settle(pilot)
        await pilot.press("z")  # undone: back to img0
        await settle(pilot)
        seen.append((shown(pilot), tui.labels(img0)))
        await pilot.press("Z")
        await settle(pilot)
        seen.append((shown(pilot), tui.labels(img0)))

    drive(make_app("pets", queue="all"), steps)
    assert seen == [("img0.png", []), ("img0.png", [("label", "cat", "accepted", "human", None)])]
    assert [h[2] for h in tui.history()] == ["do", "do", "undo", "undo", "redo", "redo"]


# -- app keys -----------------------------------------------------------------------------------


def test_q_quits_after_saving_what_was_pressed(tui: Fixture, make_app: Any) -> None:
    img0 = tui.image_id("pets", "img0.png")
    app = make_app("pets", queue="all")

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("2", "q")
            await pilot.pause(0.2)

    asyncio.run(main())
    assert app.return_code == 0
    assert tui.labels(img0) == [("label", "dog", "accepted", "human", None)]


def test_question_mark_lists_every_binding(tui: Fixture, make_app: Any) -> None:
    from annotator.tui.screens.help import HelpScreen

    texts: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(pilot.app.screen, HelpScreen)
        from rich.console import Console

        console = Console(width=160, record=True)
        console.print(pilot.app.screen.table)
        texts.append(console.export_text())
        await pilot.press("escape")
        assert not isinstance(pilot.app.screen, HelpScreen)

    drive(make_app("pets", settings=Settings(keys={"next": "j,n"})), steps)
    assert all(spec.id in texts[0] for spec in ALL_KEYS)
    assert "j n" in texts[0]  # the remapped keys are listed
    assert tui.history() == []


def test_o_opens_the_overview_and_starts_a_queue(tui: Fixture, make_app: Any) -> None:
    from annotator.tui.screens.overview import OverviewScreen

    seen: list[Any] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(pilot.app.screen, OverviewScreen)
        await pilot.press("down")  # "Needs review" in the queue list of "pets"
        await pilot.press("enter")
        await settle(pilot)
        screen = screen_of(pilot)
        seen.append((screen.info.name, screen.spec.filter, shown(pilot)))

    drive(make_app("pets"), steps)
    assert seen == [("pets", "review", "img1.png")]
    assert tui.history() == []


def test_remapped_keys_work_and_the_old_ones_do_not(tui: Fixture, make_app: Any) -> None:
    seen: list[str] = []

    async def steps(pilot: Any) -> None:
        await pilot.press("n")
        await settle(pilot)
        seen.append(shown(pilot))
        await pilot.press("j")
        await settle(pilot)
        seen.append(shown(pilot))

    drive(make_app("pets", queue="all", settings=Settings(keys={"next": "j"})), steps)
    assert seen == ["img0.png", "img1.png"]


KEY_TESTS = {
    **{f"class_{i}": "test_class_keys_assign_and_advance" for i in range(1, 4)},
    **{f"class_{i}": "test_class_keys_beyond_the_classes_change_nothing" for i in range(4, 11)},
    "accept_shown": "test_space_accepts_the_classification_prelabel",
    "skip": "test_s_skips_and_moves_on",
    "done": "test_d_marks_a_negative_done_and_moves_on",
    "undo": "test_z_undoes_and_shift_z_redoes",
    "redo": "test_z_undoes_and_shift_z_redoes",
    "select_next": "test_tab_and_shift_tab_cycle_the_selection",
    "select_prev": "test_tab_and_shift_tab_cycle_the_selection",
    "accept": "test_a_accepts_the_selected_prelabel",
    "accept_all": "test_shift_a_accepts_every_prelabel",
    "reject": "test_x_rejects_the_selected_prelabel",
    "delete": "test_delete_removes_the_selected_label",
    "box_start": "test_b_then_enter_saves_a_box_at_the_cursor",
    "box_edit": "test_e_edits_the_selected_box",
    "box_part": "test_c_switches_the_part_the_arrows_move",
    "enter": "test_b_then_enter_saves_a_box_at_the_cursor",
    "class_next": "test_brackets_and_enter_reach_every_class",
    "class_prev": "test_brackets_and_enter_reach_every_class",
    "cancel": "test_escape_cancels_the_box_and_the_selection",
    "next": "test_n_p_and_arrows_move_through_the_queue",
    "prev": "test_n_p_and_arrows_move_through_the_queue",
    "right": "test_n_p_and_arrows_move_through_the_queue",
    "left": "test_n_p_and_arrows_move_through_the_queue",
    "up": "test_arrows_move_the_box_being_drawn",
    "down": "test_arrows_move_the_box_being_drawn",
    "right_fast": "test_arrows_move_the_box_being_drawn",
    "left_fast": "test_arrows_move_the_box_being_drawn",
    "up_fast": "test_arrows_move_the_box_being_drawn",
    "down_fast": "test_arrows_move_the_box_being_drawn",
    "next_unlabeled": "test_u_goes_to_the_next_unlabeled_image",
    "goto": "test_g_goes_to_a_position",
    "find": "test_slash_finds_an_image_by_name",
    "queue": "test_f_chooses_the_queue",
    "retrain": "test_t_retrains_and_refreshes_the_proposals",
    "quit": "test_q_quits_after_saving_what_was_pressed",
    "help": "test_question_mark_lists_every_binding",
    "overview": "test_o_opens_the_overview_and_starts_a_queue",
}


def test_every_binding_has_an_id_and_a_test() -> None:
    ids = [spec.id for spec in ALL_KEYS]
    assert len(ids) == len(set(ids))
    assert set(KEY_TESTS) == set(ids)
    missing = [name for name in KEY_TESTS.values() if name not in globals()]
    assert missing == []
