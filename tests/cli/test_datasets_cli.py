"""The dataset commands as a user runs them: init, add, stats, classes, datasets, db."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_jpeg


def test_init_add_stats_json(run_cli, make_images) -> None:  # type: ignore[no-untyped-def]
    paths = make_images(4)
    result = run_cli("init", "pets", "--task", "classification", "--classes", "cat,dog,bird")
    assert result.exit_code == 0
    assert "created classification dataset 'pets' with 3 classes" in result.stdout
    result = run_cli("add", "pets", str(paths[0].parent))
    assert result.exit_code == 0
    assert "added 4, duplicates 0, rejected 0" in result.stdout
    data = json.loads(run_cli("stats", "pets", "--json").stdout)
    assert data["images"] == 4
    assert data["classes"] == {"cat": 0, "dog": 0, "bird": 0}
    assert data["status"] == {"unlabeled": 4}
    assert data["split"] == {"none": 4}
    table = run_cli("stats", "pets").stdout
    assert "pets (classification): 4 images" in table
    assert "unlabeled" in table


def test_classes_add_rename_remove(run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("init", "pets", "--task", "multilabel", "--classes", "cat,dog,bird")
    result = run_cli("classes", "pets", "--add", "fish", "--rename", "bird=parrot")
    assert result.exit_code == 0
    data = json.loads(run_cli("stats", "pets", "--json").stdout)
    assert list(data["classes"]) == ["cat", "dog", "parrot", "fish"]
    result = run_cli("classes", "pets", "--remove", "dog", "--color", "cat=#00FF00")
    assert result.exit_code == 0
    assert list(json.loads(run_cli("stats", "pets", "--json").stdout)["classes"]) == [
        "cat", "parrot", "fish"]  # fmt: skip
    assert "#00ff00" in result.stdout


def test_user_errors_are_one_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("init", "pets", "--task", "detection")
    cases = [
        (("stats", "nope"), "no dataset named 'nope' (datasets: pets)"),
        (("init", "pets", "--task", "detection"), "dataset 'pets' already exists"),
        (("classes", "pets", "--rename", "x"), "expected OLD=NEW"),
        (("classes", "pets", "--rename", "x=y"), "has no class 'x'"),
        (("add", "pets", "/does/not/exist"), "no such file or folder"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.exit_code == 2, args
        assert result.stderr.strip() == f"error: {message}" or message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_add_exit_code_only_fails_when_nothing_added(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_cli("init", "d", "--task", "classification")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_text("no")
    result = run_cli("add", "d", str(tmp_path / "bad"))
    assert result.exit_code == 1
    assert "rejected" in result.stderr
    write_jpeg(tmp_path / "bad" / "ok.jpg")
    result = run_cli("add", "d", str(tmp_path / "bad"))
    assert result.exit_code == 0
    assert "added 1, duplicates 0, rejected 1" in result.stdout


def test_datasets_and_db_commands(run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("init", "a", "--task", "detection", "--classes", "car")
    run_cli("init", "b", "--task", "multilabel")
    listing = run_cli("datasets").stdout
    assert "a" in listing and "detection" in listing and "multilabel" in listing
    assert "already at the current schema" in run_cli("db", "upgrade").stdout
    from annotator.store.db import head_revision, make_engine

    engine = make_engine("sqlite://")
    head = head_revision(engine)
    engine.dispose()
    assert run_cli("db", "current").stdout.strip() == f"database: {head}; needed: {head}"


def test_db_option_and_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from annotator.main import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "x", "--task", "detection"]).exit_code == 0
    assert (tmp_path / "annotator.db").exists()
    monkeypatch.setenv("ANNOTATOR_DB", str(tmp_path / "env.db"))
    assert runner.invoke(cli, ["init", "y", "--task", "detection"]).exit_code == 0
    assert (tmp_path / "env.db").exists()
    result = runner.invoke(cli, ["--db", "nosuch+driver://x", "stats", "y"])
    assert result.exit_code != 0
