"""A command opens the database through `Context.session` and leaves it closed: on SQLite the
file stands alone once the command ends (its write-ahead log checkpointed and removed, which
happens only when no connection is left open), whether the work succeeded or failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.context import Context
from annotator.errors import AnnotatorError, NotFoundError
from annotator.store.datasets import create_dataset, get_dataset


def _files(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.glob(db.name + "*"))


def test_commands_leave_the_database_closed(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "test.db"
    assert run_cli("init", "pets", "--task", "classification", "--classes", "cat").exit_code == 0
    for args in (("classes", "pets", "--add", "dog"), ("stats", "pets"), ("snapshots", "pets")):
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        assert _files(db) == ["test.db"], args


def test_a_failed_unit_of_work_still_closes_the_database(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    ctx = Context(str(db))
    with pytest.raises(RuntimeError), ctx.session(create=True) as s:
        create_dataset(s, "pets", "classification", ["cat"])
        raise RuntimeError("interrupted")
    assert _files(db) == ["a.db"]
    with ctx.session(readonly=True) as s:
        assert get_dataset(s, "pets").name == "pets"  # committed before the failure


def test_a_readonly_session_cannot_write(tmp_path: Path) -> None:
    ctx = Context(str(tmp_path / "a.db"))
    with ctx.session(create=True) as s:
        create_dataset(s, "pets", "classification", ["cat"])
    with pytest.raises(AnnotatorError, match="read-only"), ctx.session(readonly=True) as s:
        create_dataset(s, "birds", "classification", ["owl"])


def test_an_absent_database_is_created_only_when_asked(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    with pytest.raises(NotFoundError), Context(str(db)).session():
        pass
    assert not db.exists()
