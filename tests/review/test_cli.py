"""`annotator review push|open|pull` through the CLI runner: what a user sees, the errors they
get (no FiftyOne, no dataset, a port in use), and the App served on 127.0.0.1 by default."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest

from annotator.review import app
from annotator.store import labels
from tests.review.conftest import Built, add_prediction

pytestmark = pytest.mark.xdist_group("fiftyone")


def labelled(build: Any, store: Any) -> Built:
    b = build("classification", 3)
    with store.session() as s:
        labels.assign_class(s, b.images[0], b.classes["cat"], "ann")
        b.labels["pred"] = add_prediction(s, b, b.images[1], "dog", 0.9)
    return b


def test_push_then_pull(fo: Any, build: Any, store: Any, run_cli: Any) -> None:
    b = labelled(build, store)
    result = run_cli("review", "push", b.name)
    assert result.exit_code == 0, result.stderr
    assert f"FiftyOne dataset '{b.fo_name}': 3 added, 0 updated, 0 deleted" in result.stdout
    again = run_cli("review", "push", b.name)
    assert "0 added, 0 updated, 0 deleted" in again.stdout
    smp = fo.load_dataset(b.fo_name).match({"annotator_id": b.images[1]}).first()
    smp.prelabels.classifications[0].tags = ["accept"]
    smp.save()
    result = run_cli("review", "pull", b.name)
    assert result.exit_code == 0, result.stderr
    assert "1 reviewed; 0 conflicts" in result.stdout
    with store.session() as s:
        from annotator.store.models import Annotation

        accepted = s.get(Annotation, b.labels["pred"])
        assert accepted is not None and accepted.review == "accepted"
    assert "no changes; 0 conflicts" in run_cli("review", "pull", b.name).stdout


def test_push_to_a_named_fiftyone_dataset_and_full(fo: Any, build: Any, store: Any,
                                                   run_cli: Any) -> None:  # fmt: skip
    b = labelled(build, store)
    name = f"{b.name}-mine"
    try:
        assert run_cli("review", "push", b.name, "--fo-dataset", name).exit_code == 0
        assert len(fo.load_dataset(name)) == 3
        result = run_cli("review", "push", b.name, "--fo-dataset", name, "--full")
        assert f"rebuilt FiftyOne dataset '{name}': 0 added, 3 updated" in result.stdout
    finally:
        fo.delete_dataset(name)


def test_pull_conflicts_are_reported(fo: Any, build: Any, store: Any, run_cli: Any) -> None:
    b = labelled(build, store)
    run_cli("review", "push", b.name)
    smp = fo.load_dataset(b.fo_name).match({"annotator_id": b.images[1]}).first()
    smp.prelabels.classifications[0].tags = ["reject"]
    smp.save()
    with store.session() as s:
        labels.set_status(s, b.images[1], "reviewed", "ann")
        labels.review_annotations(s, [b.labels["pred"]], "accepted", "ann")
    result = run_cli("review", "pull", b.name)
    assert result.exit_code == 0
    assert "1 conflicts" in result.stdout
    assert "conflict: " in result.stderr and "changed in the store since the push" in result.stderr


def test_user_errors(fo: Any, build: Any, store: Any, run_cli: Any) -> None:
    b = build("classification", 1)
    result = run_cli("review", "push", "nope")
    assert result.exit_code == 2 and "no dataset named 'nope'" in result.stderr
    result = run_cli("review", "pull", b.name)
    assert result.exit_code == 2 and "review push" in result.stderr


def test_without_fiftyone_the_user_is_told_what_to_install(
    monkeypatch: pytest.MonkeyPatch, run_cli: Any, store: Any
) -> None:
    monkeypatch.setitem(sys.modules, "fiftyone", None)  # import fiftyone -> ImportError
    for args in (("push", "x"), ("open", "x"), ("pull", "x")):
        result = run_cli("review", *args)
        assert result.exit_code == 2
        assert "pip install 'annotator[review]'" in result.stderr
        assert "Traceback" not in result.stderr
    assert run_cli("datasets").exit_code == 0


def test_open_serves_on_localhost_and_prints_how_to_reach_it(
    fo: Any, build: Any, store: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = labelled(build, store)
    served: dict[str, Any] = {}

    def fake_serve(fo_name: str, port: int, address: str) -> str:
        served.update(fo_name=fo_name, port=port, address=address)
        return "session"

    monkeypatch.setattr(app, "serve", fake_serve)
    monkeypatch.setattr(app, "wait", lambda session: served.update(waited=session))
    result = run_cli("review", "open", b.name, "--port", "5188")
    assert result.exit_code == 0, result.stderr
    assert served == {"fo_name": b.fo_name, "port": 5188, "address": "127.0.0.1",
                      "waited": "session"}  # fmt: skip
    assert f"http://127.0.0.1:5188/datasets/{b.fo_name}" in result.stdout
    assert "ssh -N -L 5188:127.0.0.1:5188 " in result.stdout
    assert "3 added" in result.stdout  # open pushes first


def test_open_refuses_a_port_in_use(fo: Any, build: Any, store: Any, run_cli: Any) -> None:
    b = build("classification", 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("review", "open", b.name, "--port", str(port))
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_app_urls() -> None:
    assert app.app_url("annotator-pets") == "http://127.0.0.1:5151/datasets/annotator-pets"
    assert app.app_url("a b", 8000, "0.0.0.0") == "http://127.0.0.1:8000/datasets/a%20b"
    assert app.ssh_hint(6000).startswith("ssh -N -L 6000:127.0.0.1:6000 ")
    assert app.is_loopback("127.0.0.1") and not app.is_loopback("0.0.0.0")
