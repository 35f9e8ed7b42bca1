"""Two labelling apps on one database, as two people of a team: each is served different
images (leases), and quitting gives an app's images back to the queue."""

from __future__ import annotations

import asyncio
from typing import Any

from annotator.store import leases
from tests.tui.conftest import Fixture, settle

SIZE = (120, 36)


def _shown(pilot: Any) -> str:
    return str(pilot.app.labelling_screen.view.sample.path)


def test_two_apps_are_served_different_images(tui: Fixture, make_app: Any) -> None:
    seen: dict[str, list[str]] = {"alice": [], "bob": []}

    async def main() -> None:
        alice, bob = make_app("pets", author="alice"), make_app("pets", author="bob")
        async with alice.run_test(size=SIZE) as a, bob.run_test(size=SIZE) as b:
            await settle(a)
            await settle(b)
            seen["alice"].append(_shown(a))
            seen["bob"].append(_shown(b))
            await a.press("n")
            await settle(a)
            seen["alice"].append(_shown(a))
            await a.press("q")
            await settle(a)
            with tui.store.session() as s:  # alice quit: only bob holds images now
                holders = {h.holder for h in leases.holders(s, bob.info.id)}
            assert holders == {"bob"}

    asyncio.run(main())
    assert not set(seen["alice"]) & set(seen["bob"])
    assert seen["alice"][0] == "img0.png"  # the queue's first image goes to whoever comes first
